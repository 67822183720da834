"""Single-GPU step time and MFU of a GPT-2-small shaped model (124M parameters, context 1024),
bf16 autocast, fused attention (SDPA), torch.compile: today's step (`reference`) against
candidate changes, side by side in one run (issue 28, item 1). Needs PyTorch, not Ray: the
model and the optimizer are raylm's own, imported without Ray.

Variants, each one change against the reference, measured alone:
- `reference`: raylm's step as the loop runs it today: compile (default mode), fused AdamW,
  logits then fp32 cross-entropy.
- `fused_loss`: `train.fused_loss` (raylm/model/fused_loss.py): head + cross-entropy in chunks,
  no (tokens x vocab) logits.
- `foreach_adamw`: AdamW's multi-tensor (foreach) path instead of the fused kernel.
- `cuda_graphs`: torch.compile mode="reduce-overhead" (CUDA graphs).
- `max_autotune`: mode="max-autotune" (Triton GEMM autotuning and CUDA graphs; minutes of
  compile, so not in the default list).

The variants run in turn at each batch size, in reverse order at every other one (A B C at 16,
C B A at 64), each timed by the median of `--steps` steps after `--warmup`. Then every variant
trains `--curve-steps` steps from the same seed on the same 8 batches (a fixed cycle, so the loss
falls; the smallest batch size, whose compiled graphs Inductor's cache already holds) and its
curve is compared with the reference's: the largest relative gap must stay under 1%. About 6
minutes on an H200 with Inductor's cache cold.

Figures (benchmarks/results/gpu_mfu.json): `gpu_step_speedup`, the reference's step time over
the fastest variant whose curve matched, at the batch size where it is fastest; `gpu_mfu`, that
variant's model FLOP/s (6N + 12LTC per token) over the GPU's dense bf16 peak. Every variant's
raw numbers are in `runs`. On a machine without a GPU it says so, writes nothing and exits 0;
`--device cpu --size tiny` runs the plumbing on the CPU (fp32, eager, numbers meaningless) into
`gpu_mfu_cpu_plumbing.json`.

Usage: python -m benchmarks.gpu_mfu [--batch 16 64] [--variants fused_loss foreach_adamw cuda_graphs]
       RAYLM_RESULTS_DIR=DIR puts the results file elsewhere.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks._common import write_result
from raylm.model.gpt import GPT, GPTConfig
from raylm.train.config import OptimConfig
from raylm.train.worker import KNOWN_PEAK
from raylm.train.optim import build_optimizer, decay_groups

BASELINE = {"name": "llm.c GPT-2 124M on H100 (reported)", "value": 0.60}
VARIANTS = ("reference", "fused_loss", "foreach_adamw", "cuda_graphs", "max_autotune")
CURVE_TOLERANCE = 0.01


def build(variant: str, size: str, vocab: int, dev: torch.device, seed: int = 0):
    """(the raw model, the module the step calls, its optimizer) for one variant."""
    cfg = GPTConfig(size=size, block_size=1024 if size == "gpt2" else 64, vocab_size=vocab, dropout=0.0)
    torch.manual_seed(seed)
    model = GPT(cfg).to(dev)
    model.fused_loss = variant == "fused_loss"
    ocfg = OptimConfig(lr=6e-4, weight_decay=0.1, beta2=0.95)
    if variant == "foreach_adamw":
        opt = torch.optim.AdamW(decay_groups(model, 0.1), lr=ocfg.lr, betas=(ocfg.beta1, ocfg.beta2), foreach=True)
    else:
        opt = build_optimizer(decay_groups(model, 0.1), ocfg)
    if dev.type == "cpu":
        return model, model, opt  # the plumbing check: eager
    mode = {"cuda_graphs": "reduce-overhead", "max_autotune": "max-autotune"}.get(variant)
    return model, torch.compile(model, mode=mode) if mode else torch.compile(model), opt


def step(model, step_model, opt, x, y, dev) -> torch.Tensor:
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        _, loss = step_model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def fresh(dev: torch.device) -> None:
    torch._dynamo.reset()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def time_steps(variant: str, batch: int, steps: int, warmup: int, a) -> dict:
    """Median step time of forward + backward + clip + AdamW on random tokens."""
    dev = torch.device(a.device)
    fresh(dev)
    model, step_model, opt = build(variant, a.size, a.vocab, dev)
    T = model.cfg.block_size
    x = torch.randint(0, a.vocab, (batch, T + 1), device=dev)
    times, t0 = [], time.perf_counter()
    for i in range(warmup + steps):
        sync(dev)
        t = time.perf_counter()
        loss = step(model, step_model, opt, x[:, :-1], x[:, 1:], dev)
        sync(dev)
        if i == 0:
            first = time.perf_counter() - t0
        if i >= warmup:
            times.append(time.perf_counter() - t)
    r = {"variant": variant, "batch": batch, "step_ms": statistics.median(times) * 1e3, "first_step_s": first,
         "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None,
         "loss": loss.item(), "flops_per_token": model.flops_per_token(), "tokens_per_step": batch * T}
    print(f"{variant:14s} batch {batch:3d}: {r['step_ms']:.1f} ms/step, first step {first:.1f} s", flush=True)
    del model, step_model, opt
    return r


def curve(variant: str, steps: int, batch: int, a) -> list[float]:
    """Losses of `steps` steps from seed 0 on a fixed cycle of 8 batches (seeded)."""
    dev = torch.device(a.device)
    fresh(dev)
    model, step_model, opt = build(variant, a.size, a.vocab, dev)
    g = torch.Generator(device="cpu").manual_seed(1234)
    data = torch.randint(0, a.vocab, (8, batch, model.cfg.block_size + 1), generator=g).to(dev)
    out = [step(model, step_model, opt, data[i % 8, :, :-1], data[i % 8, :, 1:], dev).item() for i in range(steps)]
    del model, step_model, opt
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--variants", nargs="+", default=["fused_loss", "foreach_adamw", "cuda_graphs"],
                    choices=VARIANTS[1:], help="candidates, each against the reference")
    ap.add_argument("--curve-steps", type=int, default=200)
    ap.add_argument("--curve-batch", type=int, default=0, help="0: the smallest --batch")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="gpt2", help="a raylm model size (tiny: the CPU plumbing check)")
    ap.add_argument("--vocab", type=int, default=50304)
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        # nothing written: benchmarks/results/gpu_mfu.json holds a GPU machine's run
        print("no CUDA GPU here: gpu_mfu not measured (the script is ready for a GPU machine)")
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu (plumbing check)"
    peak = next((v for k, v in KNOWN_PEAK.items() if k in name), None)
    order = ["reference", *a.variants]
    runs: list[dict] = []
    for i, b in enumerate(a.batch):
        for v in order if i % 2 == 0 else order[::-1]:
            runs.append(time_steps(v, b, a.steps, a.warmup, a))
    curves = {v: curve(v, a.curve_steps, a.curve_batch or min(a.batch), a) for v in order}
    gap = {v: max(abs(x - r) / r for x, r in zip(curves[v], curves["reference"])) for v in order}
    ms = {(r["variant"], r["batch"]): r["step_ms"] for r in runs}
    ok = [v for v in a.variants if gap[v] <= CURVE_TOLERANCE]
    best_v, best_b = min(((v, b) for v in ok for b in a.batch), key=lambda vb: ms[vb] / vb[1],
                         default=(None, None))
    ref_b = best_b or min(a.batch, key=lambda b: ms[("reference", b)] / b)
    speedup = ms[("reference", ref_b)] / ms[(best_v, best_b)] if best_v else None
    fpt, T = runs[0]["flops_per_token"], runs[0]["tokens_per_step"] // runs[0]["batch"]
    mfu = {f"{v}@{b}": fpt * b * T / (ms[(v, b)] / 1e3) / peak if peak else None for v in order for b in a.batch}
    common = {"gpu": name, "peak_flops": peak, "block_size": T,
              "size": a.size, "step_ms": {f"{v}@{b}": t for (v, b), t in ms.items()}, "mfu": mfu,
              "curve_gap": gap, "curve_tolerance": CURVE_TOLERANCE, "curve_steps": a.curve_steps,
              "curves": curves, "runs": runs}
    ref_ms = ms[("reference", ref_b)]
    write_result("gpu_mfu" if a.device == "cuda" else "gpu_mfu_cpu_plumbing", [
        {"metric": "gpu_step_speedup", "value": speedup, "variant": best_v, "batch": ref_b,
         "baseline": {"name": f"raylm's step today (reference), batch {ref_b}, same run", "value": ref_ms},
         "target": 1.15, **common},
        {"metric": "gpu_mfu", "value": mfu[f"{best_v or 'reference'}@{ref_b}"], "variant": best_v or "reference",
         "batch": ref_b, "target": 0.45, "baseline": BASELINE, **common},
    ])
    print(f"speedup {speedup} ({best_v} at batch {ref_b}); curve gaps {gap}", flush=True)


if __name__ == "__main__":
    main()
