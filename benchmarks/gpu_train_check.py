"""raylm's own training loop (train_worker with the no-Ray LocalSession) on one device: bf16
autocast, fused AdamW, optional torch.compile and activation checkpointing, a checkpoint, and a
real process exit after it (raylm's RAYLM_FAIL_AT hook) followed by a resume that must continue
the same loss sequence as an uninterrupted run. For a GPU machine that has PyTorch but no Ray;
runs on CPU too (fp32) so the script itself is tested here.

Writes `gpu_train_check[_compile][_actckpt].json`: per-step losses of an uninterrupted run and of a run stopped at
the checkpoint and resumed, their largest difference, tokens/s and peak memory.

Usage: python -m benchmarks.gpu_train_check [--steps 40] [--compile] [--act-ckpt]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import torch

from benchmarks._common import write_result
from raylm.data import shards
from raylm.data.tokenize import char_tokenizer
from raylm.model.gpt import GPTConfig
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.trainer import fit

TEXT = Path(__file__).resolve().parents[1] / "raylm" / "assets" / "tinyshakespeare-slice.txt"


def build_shards(out: Path) -> Path:
    """Char-level shards of the Shakespeare slice: one document per paragraph, every tenth in val."""
    text = TEXT.read_text()
    paras = [p for p in text.split("\n\n") if p.strip()]
    docs = pa.table({"id": [f"d{i:05d}" for i in range(len(paras))], "text": paras,
                     "split": ["val" if i % 10 == 0 else "train" for i in range(len(paras))]})
    shards.write_local(docs, char_tokenizer(text), out)
    return out


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--act-ckpt", action="store_true")
    ap.add_argument("--work", help=argparse.SUPPRESS)  # internal: the run that gets killed
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    work = Path(args.work or tempfile.mkdtemp(prefix="raylm-gpucheck-"))
    data = work / "shards" if args.work else build_shards(work / "shards")
    model = GPTConfig(n_layer=4, n_head=4, n_embd=256, block_size=256, vocab_size=0, dropout=0.0,
                      activation_checkpointing=args.act_ckpt)
    half = args.steps // 2

    def cfg(max_steps: int) -> TrainConfig:
        return TrainConfig(max_steps=max_steps, batch_size=16, num_workers=0, use_gpu=gpu,
                           precision="bf16" if gpu else "fp32", compile=args.compile, eval_interval=half,
                           eval_batches=4, log_interval=1, keep_checkpoints=0, cpus_per_worker=2,
                           optim=OptimConfig(lr=1e-3), schedule=ScheduleConfig(warmup_steps=5))

    if args.work:  # the child: RAYLM_FAIL_AT makes it exit hard a few steps after the checkpoint
        fit(model, cfg(args.steps), str(data), str(work / "resumed"), seed=7)
        return
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    full = fit(model, cfg(args.steps), str(data), str(work / "full"), seed=7)
    wall = time.perf_counter() - t
    env = {**os.environ, "RAYLM_FAIL_AT": f"{half + 3}:0:{work / 'failed'}"}
    cmd = [sys.executable, "-m", "benchmarks.gpu_train_check", "--steps", str(args.steps), "--work", str(work)]
    child = subprocess.run(cmd + ["--compile"] * args.compile + ["--act-ckpt"] * args.act_ckpt, env=env,
                           cwd=TEXT.parents[2], stdout=subprocess.DEVNULL)  # the repository root
    if child.returncode != 17:
        sys.exit(f"the run meant to die at step {half + 3} exited with {child.returncode}")
    resumed = fit(model, cfg(args.steps), str(data), str(work / "resumed"), seed=7)
    a, b = losses(work / "full"), losses(work / "resumed")
    diff = max(abs(a[s] - b[s]) for s in a)
    rec = {"metric": "train_loop_resume_max_loss_diff", "value": diff, "device": (
        torch.cuda.get_device_name(0) if gpu else "cpu"), "precision": "bf16" if gpu else "fp32",
        "compile": args.compile, "activation_checkpointing": args.act_ckpt, "steps": args.steps,
        "killed_after_step": half + 3, "resumed_from": half, "final_val_loss": full["metrics"].get("val_loss"),
        "resumed_final_val_loss": resumed["metrics"].get("val_loss"),
        "tokens_per_s": full["metrics"].get("tokens_per_s"), "mfu": full["metrics"].get("mfu"),
        "baseline": {"name": "the uninterrupted run (0 = resume identical; CPU resume is exact, tested)", "value": 0.0},
        "wall_s_full_run": wall, "losses_full": a, "losses_resumed": b,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if gpu else None}
    print(json.dumps({k: v for k, v in rec.items() if not k.startswith("losses")}, indent=1), flush=True)
    write_result("gpu_train_check" + "_compile" * args.compile + "_actckpt" * args.act_ckpt, rec)
    shutil.rmtree(work, ignore_errors=True)
    if sorted(a) != sorted(b):
        sys.exit(f"resumed run logged steps {sorted(b)} but the full run {sorted(a)}")


if __name__ == "__main__":
    main()
