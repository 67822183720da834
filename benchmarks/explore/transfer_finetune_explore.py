"""Fine-tuning recipe exploration for the SST-2 transfer benchmark (issue 7): variants of the
classification recipe run from one pretraining checkpoint and from random init, chosen on the
held-out validation sentences only (test.tsv is printed, never used to choose).

  .venv/bin/python -m benchmarks.explore.transfer_finetune_explore \
      --checkpoint runs/bench_transfer_sent/pretrain/checkpoints/step-10000 \
      --split-dir runs/bench_transfer_sent --variant aux0.5 --seeds 1 2
The recipe is transfer_sst2.py's own finetune() (--selection sentences), with the variant's changes.
Appends one JSON line per run to <out>/explore.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks import transfer_sst2
from raylm.train.checkpoint import read_model_config
from raylm.train.classify_data import tokenizer_path

REPO = Path(__file__).resolve().parents[2]
VARIANTS = {  # name -> (FinetuneConfig changes, transfer_sst2 option changes)
    "base": ({}, {}),
    "aux0.5": ({"lm_loss_weight": 0.5}, {}),
    "aux0.2": ({"lm_loss_weight": 0.2}, {}),
    "steps3000": ({}, {"finetune_steps": 3000}),
    "aux0.5_steps3000": ({"lm_loss_weight": 0.5}, {"finetune_steps": 3000}),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split-dir", required=True, help="dir with train_sent.tsv / val_sent.tsv of transfer_sst2.py")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--variant", nargs="+", required=True)
    p.add_argument("--arms", nargs="+", default=["pretrained", "random_init"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--out", default=str(REPO / "runs" / "explore"))
    a = p.parse_args()
    torch.set_num_threads(2)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    arch = read_model_config(a.checkpoint)
    base = transfer_sst2.sst2_config(Path(a.data), f"{a.split_dir}/train_sent.tsv", f"{a.split_dir}/val_sent.tsv",
                                     tokenizer_path(a.checkpoint, None), lowercase=False)
    for v in a.variant:
        ftc, opts = VARIANTS[v]
        # the options transfer_sst2.finetune reads, as its defaults give them
        bench = argparse.Namespace(**{"quick": False, "selection": "sentences", "finetune_steps": 1500, "batch": 32,
                                      "threads": 2, "gpu": False,
                                      "precision": a.precision, **opts})
        for seed in a.seeds:
            for arm in a.arms:
                # runs resume from their directory: one per precision, or a bf16 rerun reads an fp32 run
                run_dir = out / (f"{v}_{arm}_lr{a.lr:g}_seed{seed}" + ("_bf16" if a.precision == "bf16" else ""))
                t0 = time.time()
                r = transfer_sst2.finetune(bench, replace(base, **ftc), a.checkpoint if arm == "pretrained" else None,
                                           arch, run_dir, a.lr, seed)
                rec = {"variant": v, "arm": arm, "lr": a.lr, "seed": seed, "precision": a.precision,
                       "checkpoint": a.checkpoint,
                       "val": r["final"]["best_val"], "best_step": r["final"].get("best_step"),
                       "test": r["test"]["accuracy"], "seconds": round(time.time() - t0, 1)}
                print("RESULT", json.dumps(rec), flush=True)
                with open(out / "explore.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
