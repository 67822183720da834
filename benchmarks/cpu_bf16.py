"""CPU training throughput, fp32 against bf16 autocast (`train.precision: bf16`), same run.

raylm's GPT and AdamW (build_optimizer), the training step of raylm.train.loop (autocast around
forward + loss, backward, clip, step), on random tokens, for a few small model shapes at the
sizes the SST-2 transfer benchmark uses (block 64, vocab 4096, batch 32). Baseline named in the
results file: the same step in fp32. CPUs with AVX512-BF16 or AMX run bf16 matmuls natively
(oneDNN); elsewhere bf16 autocast is emulated and can be slower than fp32, which this script
shows too.

Also trains each shape for --fit-steps steps on one fixed batch in both precisions from the same
initial weights and reports both final losses: bf16 autocast must track fp32.

  .venv/bin/python benchmarks/cpu_bf16.py                 # ~3 min on 2 cores
Writes benchmarks/results/cpu_bf16.json (figure `cpu_bf16_speedup`: best tokens/s ratio).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from raylm.model.gpt import GPT, GPTConfig  # noqa: E402
from raylm.train.config import OptimConfig  # noqa: E402
from raylm.train.optim import build_optimizer  # noqa: E402

SHAPES = [(4, 128), (4, 256), (6, 256)]  # (n_layer, n_embd)


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if "bf16" in f or f.startswith("amx"))
    except OSError:
        pass
    return []


def run(n_layer: int, n_embd: int, precision: str, a: argparse.Namespace, x: torch.Tensor) -> dict:
    cfg = GPTConfig(n_layer=n_layer, n_head=max(1, n_embd // 32), n_embd=n_embd, block_size=a.block,
                    vocab_size=a.vocab, dropout=0.1)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = build_optimizer(model, OptimConfig(lr=1e-3))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step(inp: torch.Tensor) -> float:
        with autocast:
            _, loss = model(inp[:, :-1], inp[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    fixed = x[0]  # the fit check: one batch, learnable by memorising
    first = step(fixed)
    for _ in range(a.fit_steps - 1):
        last = step(fixed)
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        step(x[1 + i % (len(x) - 1)])
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return {"n_layer": n_layer, "n_embd": n_embd, "precision": precision, "params": model.num_params(),
            "step_s": round(sec, 5), "tokens_per_s": round(a.batch * a.block / sec, 1),
            "fit_loss_first": round(first, 4), "fit_loss_last": round(last, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--steps", type=int, default=40, help="timed steps per shape and precision (median kept)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--fit-steps", type=int, default=30)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, a.vocab, (9, a.batch, a.block + 1), generator=g)
    rows = []
    for n_layer, n_embd in SHAPES:
        r = {prec: run(n_layer, n_embd, prec, a, x) for prec in ("fp32", "bf16")}
        speed = r["bf16"]["tokens_per_s"] / r["fp32"]["tokens_per_s"]
        rows.append({"shape": f"{n_layer}L/{n_embd}", "speedup": round(speed, 3), **{k: v for k, v in r.items()}})
        print(f"{n_layer}L/{n_embd}: fp32 {r['fp32']['tokens_per_s']:.0f} tok/s, bf16 {r['bf16']['tokens_per_s']:.0f} "
              f"tok/s (x{speed:.2f}); fit loss {r['fp32']['fit_loss_last']} / {r['bf16']['fit_loss_last']}",
              flush=True)
    best = max(rows, key=lambda r: r["speedup"])
    write_result("cpu_bf16", {
        "metric": "cpu_bf16_speedup", "value": best["speedup"], "unit": "bf16 / fp32 training tokens per second",
        "baseline": {"name": "the same training step in fp32, same run", "value": 1.0},
        "best_shape": best["shape"], "shapes": rows, "cpu_bf16_flags": cpu_flags(), "threads": a.threads,
        "batch": a.batch, "block": a.block, "vocab": a.vocab})


if __name__ == "__main__":
    main()
