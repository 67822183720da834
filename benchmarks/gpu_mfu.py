"""Single-GPU step time and MFU of a GPT-2-small shaped model (124M parameters, context 1024),
bf16 autocast, fused attention (SDPA), fused AdamW, torch.compile. Needs PyTorch, not Ray: the
model and the optimizer are raylm's own, imported without Ray.

Figure `gpu_mfu` (benchmarks/results/gpu_mfu.json): model FLOP/s (6N + 12LTC per token, as
nanoGPT/llm.c count) over the GPU's dense bf16 peak, best over the batch sizes tried. Baseline
named in the file: llm.c's reported ~60% for this size on H100; same-run reference: the same
step without torch.compile. Runs in about 3-5 minutes on an H100/H200; on a machine without a
GPU it writes a result saying so and exits 0.

Usage: python -m benchmarks.gpu_mfu [--steps 40] [--batch 16 32] [--no-compile]
       RAYLM_RESULTS_DIR=DIR puts the results file elsewhere.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks._common import write_result
from raylm.model.gpt import GPT, GPTConfig
from raylm.train.config import OptimConfig
from raylm.train.loop import KNOWN_PEAK
from raylm.train.optim import build_optimizer, decay_groups

BASELINE = {"name": "llm.c GPT-2 124M on H100 (reported)", "value": 0.60}


def measure(batch: int, steps: int, warmup: int, compile: bool, peak: float | None) -> dict:
    """Median step time of forward + backward + clip + fused AdamW on random tokens."""
    dev = torch.device("cuda")
    torch._dynamo.reset()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    cfg = GPTConfig(size="gpt2", block_size=1024, vocab_size=50304, dropout=0.0)
    torch.manual_seed(0)
    model = GPT(cfg).to(dev)
    opt = build_optimizer(decay_groups(model, 0.1), OptimConfig(lr=6e-4, weight_decay=0.1, beta2=0.95))
    step_model = torch.compile(model) if compile else model
    T = cfg.block_size
    x = torch.randint(0, cfg.vocab_size, (batch, T + 1), device=dev)
    times, t_first = [], time.perf_counter()
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = step_model(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i == 0:
            first = time.perf_counter() - t_first
        if i >= warmup:
            times.append(time.perf_counter() - t)
    dt = sorted(times)[len(times) // 2]
    tok_s = batch * T / dt
    mfu = model.flops_per_token() * tok_s / peak if peak else None
    r = {"batch": batch, "compile": compile, "step_ms": dt * 1e3, "tokens_per_s": tok_s, "mfu": mfu,
         "first_step_s": first, "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30,
         "loss": loss.item(), "params": model.num_params()}
    print(f"batch {batch:3d} compile={compile}: {dt * 1e3:.1f} ms/step, {tok_s:,.0f} tokens/s, "
          f"MFU {mfu:.1%}" if mfu is not None else f"batch {batch}: {tok_s:,.0f} tokens/s", flush=True)
    del model, opt, step_model
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--reference", action="store_true", help="also time the smallest batch without compile")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: gpu_mfu not measured (the script is ready for a GPU machine)")
        write_result("gpu_mfu", {"metric": "gpu_mfu", "value": None, "status": "no GPU available on this machine",
                                 "baseline": BASELINE})
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in KNOWN_PEAK.items() if k in name), None)
    runs = [measure(b, args.steps, args.warmup, not args.no_compile, peak) for b in args.batch]
    if args.reference and not args.no_compile:
        runs.append(measure(min(args.batch), args.steps, args.warmup, False, peak))
    best = max((r for r in runs if r["compile"] == (not args.no_compile)), key=lambda r: r["tokens_per_s"])
    write_result("gpu_mfu", {"metric": "gpu_mfu", "value": best["mfu"], "tokens_per_s": best["tokens_per_s"],
                             "step_ms": best["step_ms"], "batch": best["batch"], "block_size": 1024,
                             "compile": best["compile"], "gpu": name, "peak_flops": peak,
                             "params": best["params"], "peak_mem_gb": best["peak_mem_gb"], "runs": runs,
                             "target": 0.45, "baseline": BASELINE})


if __name__ == "__main__":
    main()
