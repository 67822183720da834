"""CPU training throughput, fp32 against bf16 autocast (`train.precision: bf16`), same run.

raylm's GPT and AdamW (build_optimizer), the training step of raylm.train.loop (autocast around
forward + loss, backward, clip, step), on random tokens, for a few small model shapes at the
sizes the SST-2 transfer benchmark uses (block 64, vocab 4096, batch 32). Baseline named in the
results file: the same step in fp32. CPUs with AVX512-BF16 or AMX run bf16 matmuls natively
(oneDNN); elsewhere bf16 autocast is emulated and can be slower than fp32, which this script
shows too.

Also trains each shape for --fit-steps steps on one fixed batch in both precisions from the same
initial weights and reports both final losses: bf16 autocast must track fp32. Timings run in
ABBA order (fp32, bf16, bf16, fp32; median step of each, mean of the two per precision), so a
drift in the machine's speed does not favour either, and a plain matmul of the model's shape
is timed in both precisions for reference.

  .venv/bin/python -m benchmarks.cpu_bf16                 # ~5 min on 2 cores
Writes benchmarks/results/cpu_bf16.json (figure `cpu_bf16_speedup`: the tokens/s ratio at 4L/256,
the shape of the SST-2 transfer model; every shape's ratio alongside).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from benchmarks._common import write_result
from raylm.model.gpt import GPT, GPTConfig
from raylm.train.config import OptimConfig
from raylm.train.optim import build_optimizer, decay_groups

SHAPES = [(4, 128), (4, 256), (6, 256)]  # (n_layer, n_embd)
HEADLINE = "4L/256"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if "bf16" in f or f.startswith("amx"))
    except OSError:
        pass
    return []


def build(n_layer: int, n_embd: int, precision: str, a: argparse.Namespace):
    """A fresh model (seed 0) and its training step in `precision`."""
    cfg = GPTConfig(n_layer=n_layer, n_head=max(1, n_embd // 32), n_embd=n_embd, block_size=a.block,
                    vocab_size=a.vocab, dropout=0.1)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = build_optimizer(decay_groups(model, 0.1), OptimConfig(lr=1e-3))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step(inp: torch.Tensor) -> float:
        with autocast:
            _, loss = model(inp[:, :-1], inp[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return model, step


def fit(n_layer: int, n_embd: int, precision: str, a: argparse.Namespace, batch: torch.Tensor) -> list[float]:
    """Loss before and after --fit-steps steps on one batch (learnable by memorising)."""
    _, step = build(n_layer, n_embd, precision, a)
    losses = [step(batch) for _ in range(a.fit_steps)]
    return [round(losses[0], 4), round(losses[-1], 4)]


def time_steps(n_layer: int, n_embd: int, precision: str, a: argparse.Namespace, x: torch.Tensor) -> float:
    """Median seconds per training step over --steps steps after --warmup."""
    _, step = build(n_layer, n_embd, precision, a)
    times = []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        step(x[i % len(x)])
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_gflops(n_embd: int, a: argparse.Namespace, dtype: torch.dtype, reps: int = 50) -> float:
    """A (batch*block, n_embd) x (n_embd, 4*n_embd) matmul, the MLP's first, in `dtype`."""
    m, k, n = a.batch * a.block, n_embd, 4 * n_embd
    x, w = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(5):
        x @ w
    t = time.perf_counter()
    for _ in range(reps):
        x @ w
    return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9


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
    if min(a.steps, a.fit_steps) < 1 or a.warmup < 0:
        p.error("--steps and --fit-steps must be >= 1, --warmup >= 0")
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, a.vocab, (9, a.batch, a.block + 1), generator=g)
    rows = []
    for n_layer, n_embd in SHAPES:
        sec = {"fp32": [], "bf16": []}
        for prec in ("fp32", "bf16", "bf16", "fp32"):  # ABBA
            sec[prec].append(time_steps(n_layer, n_embd, prec, a, x))
        tok_s = {prec: a.batch * a.block / statistics.mean(v) for prec, v in sec.items()}
        losses = {prec: fit(n_layer, n_embd, prec, a, x[0]) for prec in ("fp32", "bf16")}
        mm = {prec: round(matmul_gflops(n_embd, a, dt), 1) for prec, dt in (("fp32", torch.float32),
                                                                          ("bf16", torch.bfloat16))}
        speed = tok_s["bf16"] / tok_s["fp32"]
        rows.append({"shape": f"{n_layer}L/{n_embd}", "speedup": round(speed, 3),
                     "tokens_per_s": {k: round(v, 1) for k, v in tok_s.items()},
                     "step_s_rounds": {k: [round(t, 5) for t in v] for k, v in sec.items()},
                     "fit_loss_first_last": losses, "mlp_matmul_gflops": mm})
        print(f"{n_layer}L/{n_embd}: fp32 {tok_s['fp32']:.0f} tok/s, bf16 {tok_s['bf16']:.0f} tok/s (x{speed:.2f}); "
              f"fit loss {losses['fp32'][1]} / {losses['bf16'][1]}; matmul GFLOP/s {mm}", flush=True)
    head = next(r for r in rows if r["shape"] == HEADLINE)
    write_result("cpu_bf16", {
        "metric": "cpu_bf16_speedup", "value": head["speedup"], "unit": "bf16 / fp32 training tokens per second",
        "baseline": {"name": "the same training step in fp32, same run (ABBA rounds)", "value": 1.0},
        "shape": HEADLINE, "shapes": rows, "cpu_bf16_flags": cpu_flags(), "threads": a.threads,
        "batch": a.batch, "block": a.block, "vocab": a.vocab, "fit_steps": a.fit_steps})


if __name__ == "__main__":
    main()
