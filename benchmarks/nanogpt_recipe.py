"""nanoGPT's own training recipe, reimplemented in a few lines on raylm's model, scored the way
benchmarks/shakespeare_char.py scores raylm: a reference for `shakespeare_char_val_loss`.

nanoGPT's CPU shakespeare-char config (4 layers, 4 heads, 128 wide, context 64, batch 12, 2000
iterations, AdamW lr 1e-3 -> 1e-4 cosine, warmup 100, beta2 0.99, weight decay 0.1, clip 1.0,
dropout 0, no biases) with nanoGPT's data sampling (random offsets, with replacement, from the
first 90% of the characters) and nanoGPT's character vocabulary (65 symbols). The loss is over
the whole last 10% (non-overlapping 64-character windows), not nanoGPT's 20-batch estimate.
No Ray, one process. Figure `nanogpt_recipe_val_loss` (mean over --seeds), per-seed values in
the file; baseline: nanoGPT's published 1.88.

    .venv/bin/python -m benchmarks.nanogpt_recipe [--seeds 1337 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import write_result
from raylm.model.gpt import GPT, GPTConfig
from raylm.train.config import OptimConfig, ScheduleConfig
from raylm.train.optim import build_optimizer, decay_groups, lr_at

REPO = Path(__file__).resolve().parents[1]
T, B, ITERS = 64, 12, 2000


def run(train: np.ndarray, val: np.ndarray, vocab: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=T, vocab_size=vocab, dropout=0.0, bias=False))
    opt = build_optimizer(decay_groups(model, 0.1), OptimConfig(lr=1e-3, weight_decay=0.1, beta2=0.99))
    sched = ScheduleConfig(warmup_steps=100, min_lr=1e-4, decay_steps=ITERS)
    gen = torch.Generator().manual_seed(seed)
    tr = torch.from_numpy(train)
    for it in range(ITERS):
        for g in opt.param_groups:
            g["lr"] = lr_at(it, 1e-3, sched, ITERS)
        ix = torch.randint(len(train) - T, (B,), generator=gen).tolist()  # nanoGPT's get_batch
        x = torch.stack([tr[i:i + T] for i in ix])
        y = torch.stack([tr[i + 1:i + T + 1] for i in ix])
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    va = torch.from_numpy(val)
    n_win = (len(val) - 1) // T
    total = 0.0
    with torch.no_grad():
        for b in range(0, n_win, 256):
            idx = range(b, min(n_win, b + 256))
            x = torch.stack([va[i * T:i * T + T] for i in idx])
            y = torch.stack([va[i * T + 1:i * T + T + 1] for i in idx])
            total += model(x, y)[1].item() * len(idx)
    return total / n_win


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    text = Path(args.data).read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    n = int(0.9 * len(data))
    losses = {}
    for s in args.seeds:
        t0 = time.perf_counter()
        losses[s] = run(data[:n], data[n:], len(chars), s)
        print(f"seed {s}: whole-val loss {losses[s]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    vals = list(losses.values())
    write_result("nanogpt_recipe", {
        "metric": "nanogpt_recipe_val_loss", "value": statistics.mean(vals),
        "baseline": {"name": "nanoGPT published CPU shakespeare_char (20-batch estimate)", "value": 1.88},
        "seed_losses": losses, "seed_stdev": statistics.stdev(vals) if len(vals) > 1 else None,
        "eval": "whole val split, non-overlapping 64-char windows (as shakespeare_char.py)",
        "config": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": T, "batch_size": B, "iters": ITERS,
                   "sampling": "random offsets with replacement (nanoGPT get_batch)", "vocab": len(chars)}})


if __name__ == "__main__":
    main()
