"""Single-GPU step time and MFU of a GPT-2-small shaped model (124M parameters, context 1024),
bf16 autocast, fused attention, torch.compile. Needs PyTorch, not Ray (the model and the
optimizer are raylm's own, imported without Ray).

Figure `gpu_mfu` (benchmarks/results/gpu_mfu.json): model FLOP/s (6N + 12LTC per token, as
nanoGPT/llm.c count) over the GPU's dense bf16 peak. Baseline named in the file: llm.c's
reported ~60% for this size on H100. Runs in about 2-4 minutes on an H100/H200; on a machine
without a GPU it writes a result saying so and exits 0.

Usage: python benchmarks/gpu_mfu.py [--steps 60] [--batch 16] [--no-compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from raylm.model.gpt import GPT, GPTConfig  # noqa: E402
from raylm.train.config import OptimConfig  # noqa: E402
from raylm.train.loop import KNOWN_PEAK  # noqa: E402
from raylm.train.optim import build_optimizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: gpu_mfu not measured (the script is ready for a GPU machine)")
        write_result("gpu_mfu", {"metric": "gpu_mfu", "value": None, "status": "no GPU available on this machine",
                                 "baseline": {"name": "llm.c GPT-2 124M on H100 (reported)", "value": 0.60}})
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    peak = next((v for k, v in KNOWN_PEAK.items() if k in name), None)
    cfg = GPTConfig(size="gpt2", block_size=1024, vocab_size=50304, dropout=0.0)
    torch.manual_seed(0)
    model = GPT(cfg).to(dev)
    opt = build_optimizer(model, OptimConfig(lr=6e-4, weight_decay=0.1, beta2=0.95))
    step_model = model if args.no_compile else torch.compile(model)
    B, T = args.batch, cfg.block_size
    x = torch.randint(0, cfg.vocab_size, (B, T + 1), device=dev)
    times = []
    for i in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = step_model(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    dt = sorted(times)[len(times) // 2]
    tok_s = B * T / dt
    flops = model.flops_per_token() * tok_s
    mfu = flops / peak if peak else None
    print(f"{name}: {model.num_params() / 1e6:.1f}M params, {dt * 1e3:.1f} ms/step, {tok_s:,.0f} tokens/s, "
          f"MFU {mfu:.1%}" if mfu else f"{name}: unknown peak; {tok_s:,.0f} tokens/s")
    write_result("gpu_mfu", {"metric": "gpu_mfu", "value": mfu, "tokens_per_s": tok_s, "step_ms": dt * 1e3,
                             "gpu": name, "peak_flops": peak, "compile": not args.no_compile, "batch": B,
                             "block_size": T, "params": model.num_params(),
                             "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30,
                             "baseline": {"name": "llm.c GPT-2 124M on H100 (reported)", "value": 0.60}})


if __name__ == "__main__":
    main()
