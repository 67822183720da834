"""LoRA against full fine-tuning on SST-2, from the same pretrained checkpoint (issue 26).

One run, same machine: pretrain a GPT the way benchmarks/transfer_sst2.py does (byte-level BPE,
SST-2 training phrases without the held-out selection sentences plus AG News texts, unlabelled),
then fine-tune a classifier from that one checkpoint twice with the same data, steps, batch and
schedule: every weight (full), and LoRA adapters (finetune.lora, r 8, all four Linear layers of
every block) with the head. Each arm tries its own learning rates (LoRA's higher, as is usual)
and keeps the one with the best accuracy on 1,000 held-out whole SST-2 sentences
(tools/sst2_sentences.py). Accuracy is on test.tsv (872 sentences, GLUE's dev set), which never
chooses anything.

Figures: `sst2_lora_gap` (full minus LoRA test accuracy; issue 26 target <= 0.015), each arm's
accuracy, trainable parameters and seconds per optimizer step. Step time is the loop's own
(`step_s`: training steps only, evaluation and saving excluded), measured in alternating short
runs of the two arms (ABAB rounds, median), so load from other jobs on the machine hits both
alike; each accuracy run's own mean step time is recorded too.

  .venv/bin/python -m benchmarks.sst2_lora            # ~20 min on 2 idle cores (pretraining ~10)
  .venv/bin/python -m benchmarks.sst2_lora --quick    # a minute or two: plumbing only, numbers meaningless
A pretraining run left in --out is reused (its first run's record is kept in pretrain.json).
Writes benchmarks/results/sst2_lora.json (sst2_lora_wte.json when the embedding is adapted too:
  .venv/bin/python -m benchmarks.sst2_lora --targets attn.c_attn attn.c_proj mlp.c_fc mlp.c_proj wte).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks._common import write_result
from benchmarks.tools import sst2_sentences
from benchmarks.transfer_sst2 import AG_TRAIN_ROWS, build_shards, finetune, labelled, pretrain, sst2_config
from raylm.data.shards import read_manifest
from raylm.model.gpt import GPTConfig
from raylm.train.checkpoint import read_model_config
from raylm.train.classify_data import tokenizer_path
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.finetune import run_classify
from raylm.train.lora import MODEL_TARGETS, TARGETS, LoraConfig

REPO = Path(__file__).resolve().parents[1]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data dir")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_sst2_lora"), help="work dir (checkpoints)")
    p.add_argument("--pretrain-checkpoint", help="skip pretraining: use this raylm checkpoint")
    p.add_argument("--pretrain-steps", type=int, default=4000, help="x batch 32 x block 64 tokens (~10 CPU min)")
    p.add_argument("--finetune-steps", type=int, default=1000, help="both arms")
    p.add_argument("--full-lrs", type=float, nargs="+", default=[1e-4, 5e-4], help="full fine-tuning lrs tried")
    p.add_argument("--lora-lrs", type=float, nargs="+", default=[1e-3, 3e-3], help="LoRA lrs tried")
    p.add_argument("--r", type=int, default=8, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha (scale alpha / r)")
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=[*TARGETS, *MODEL_TARGETS],
                   help="adapted layers; with wte (the tied embedding) the results file is sst2_lora_wte.json")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timing-rounds", type=int, default=4, help="ABAB step-time rounds")
    p.add_argument("--timing-steps", type=int, default=40, help="optimizer steps per timing run")
    p.add_argument("--quick", action="store_true", help="tiny sizes and steps: plumbing check, numbers meaningless")
    a = p.parse_args()
    # what transfer_sst2's pretrain() and finetune() read
    a.gpu, a.precision, a.selection, a.pretrain_schedule, a.seeds = False, "fp32", "sentences", "cosine", 1
    a.vocab, a.n_layer, a.n_embd, a.block = 4096, 4, 128, 64
    if a.quick:
        a.vocab, a.n_layer, a.n_embd, a.pretrain_steps, a.finetune_steps = 512, 1, 32, 30, 30
        a.full_lrs, a.lora_lrs = a.full_lrs[:1], a.lora_lrs[:1]
        a.timing_rounds, a.timing_steps = 1, 5
    return a


def setup(a) -> tuple[Path, Path, dict, str, str]:
    """Torch threads, the work dir and the held-out sentence split (this and sst2_encoder.py):
    (data, out, split record, train sentences file, validation sentences file)."""
    torch.set_num_threads(a.threads)
    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    split = sst2_sentences.write_split(data / "sst2", out, 1000, seed=0)
    return data, out, split, str(out / "train_sent.tsv"), str(out / "val_sent.tsv")


def pretrained(a, data: Path, out: Path, train_sent: str, arch: str = "decoder") -> tuple[str, dict]:
    """The pretraining checkpoint (transfer_sst2's corpus and recipe; `arch` decoder: next-token,
    encoder: masked tokens, on the same shards) and its record; a run already in `out` is reused."""
    name = "pretrain" if arch == "decoder" else f"pretrain_{arch}"
    if a.pretrain_checkpoint and arch == "decoder":
        return a.pretrain_checkpoint, {"given": a.pretrain_checkpoint}
    record = out / f"{name}.json"
    if record.is_file():
        pre = json.loads(record.read_text())
        return pre["checkpoint"], {**pre, "reused": True}
    ag = labelled(str(data / "agnews" / "dev.tsv"), False, "text")[0][:AG_TRAIN_ROWS]
    texts = labelled(train_sent, True, "sentence")[0] + ag  # the held-out sentences stay unseen
    shards_dir = build_shards(texts, out / "shards", a.vocab, 1)
    model_cfg = GPTConfig(n_layer=a.n_layer, n_head=max(1, a.n_embd // 32), n_embd=a.n_embd, block_size=a.block,
                          dropout=0.1, arch=arch)  # vocab_size 0: the tokenizer's (+ [MASK] for an encoder)
    ckpt_dir, pre = pretrain(a, shards_dir, model_cfg, out / name)
    pre.update(checkpoint=ckpt_dir, steps=a.pretrain_steps,
               corpus_tokens={k: v["tokens"] for k, v in read_manifest(shards_dir)["splits"].items()},
               corpus=f"unlabelled SST-2 train+dev phrases minus the held-out sentences' trees + AG News "
                      f"dev[:{AG_TRAIN_ROWS}] texts")
    record.write_text(json.dumps(pre, indent=2))
    return ckpt_dir, pre


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def arm(a, ft, ckpt_dir: str, out: Path, name: str, lrs: list[float]) -> dict:
    """Fine-tune at each lr (fresh folders: a finished run would be resumed, not timed); keep the
    lr with the best validation accuracy."""
    tried = {}
    for lr in lrs:
        run_dir = out / f"{name}_lr{lr:g}"
        shutil.rmtree(run_dir, ignore_errors=True)
        r = finetune(a, ft, ckpt_dir, read_model_config(ckpt_dir), run_dir, lr)
        f = r["final"]
        tried[f"{lr:g}"] = {"lr": lr, "val_accuracy": f["best_val"], "best_step": f["best_step"],
                            "test_accuracy": r["test"]["accuracy"], "test_macro_f1": r["test"]["macro_f1"],
                            "trainable_params": f["trainable_params"], "step_s": f["step_s"],
                            "seconds": r["seconds"], "load_avg_after": load()}
    best = max(tried.values(), key=lambda t: t["val_accuracy"])
    return {**best, "by_lr": tried}


def step_times(a, arms: dict, ckpt_dir: str, out: Path) -> dict:
    """Seconds per optimizer step of each arm: `--timing-rounds` rounds of short runs, the arms
    alternating (A B B A ...), on the first 2,000 training rows; median over rounds."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    order = list(arms)
    for i in range(a.timing_rounds):
        for name in order if i % 2 == 0 else order[::-1]:
            ft = replace(arms[name], val_file=None, max_train_examples=2000, max_eval_examples=64)
            tc = TrainConfig(max_steps=a.timing_steps, batch_size=a.batch, eval_interval=a.timing_steps,
                             log_interval=a.timing_steps, num_workers=0, cpus_per_worker=a.threads,
                             keep_checkpoints=1, optim=OptimConfig(lr=1e-4),
                             schedule=ScheduleConfig(warmup_steps=0, min_lr=1e-5))
            run_dir = out / f"timing_{name}"
            shutil.rmtree(run_dir, ignore_errors=True)
            times[name].append(run_classify(ft, tc, str(run_dir), 1, ckpt_dir)["final"]["step_s"])
    return {name: {"median_step_s": statistics.median(t), "rounds": t} for name, t in times.items()}


def main() -> None:
    a = parse()
    t0 = time.time()
    data, out, split, train_sent, val_sent = setup(a)
    ckpt_dir, pre = pretrained(a, data, out, train_sent)
    ft = sst2_config(data, train_sent, val_sent, tokenizer_path(ckpt_dir, None), lowercase=False)
    lora = LoraConfig(r=a.r, alpha=a.alpha, dropout=a.lora_dropout, targets=a.targets)
    load_start = load()
    full = arm(a, ft, ckpt_dir, out, "full", a.full_lrs)
    low = arm(a, replace(ft, lora=lora), ckpt_dir, out, "lora", a.lora_lrs)
    timing = step_times(a, {"full": ft, "lora": replace(ft, lora=lora)}, ckpt_dir, out)
    step_s = {name: t["median_step_s"] for name, t in timing.items()}
    arch = read_model_config(ckpt_dir)
    recipe = {"model": {"n_layer": arch.n_layer, "n_embd": arch.n_embd, "block_size": arch.block_size,
                        "vocab_size": arch.vocab_size},
              "lora": {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "targets": lora.targets},
              "finetune_steps": a.finetune_steps, "batch": a.batch, "threads": a.threads, "quick": a.quick,
              "lrs": {"full": full["lr"], "lora": low["lr"]}}
    details = {"full": full, "lora_arm": low, "step_time": timing, "selection": split, "pretrain": pre,
               "load_avg_start": load_start, "load_avg_end": load(), "wall_seconds": round(time.time() - t0, 1)}
    records = [  # the run's details once, in the first record
        {"metric": "sst2_lora_gap", "value": full["test_accuracy"] - low["test_accuracy"],
         "unit": "fraction of test.tsv (full minus LoRA accuracy)",
         "baseline": {"name": "issue 26 target (<= 0.015)", "value": 0.015}, **recipe, **details},
        {"metric": "sst2_accuracy_lora", "value": low["test_accuracy"], "unit": "fraction of test.tsv",
         "baseline": {"name": "full fine-tuning of the same checkpoint", "value": full["test_accuracy"]}, **recipe},
        {"metric": "sst2_lora_trainable_params", "value": low["trainable_params"], "unit": "parameters",
         "baseline": {"name": "full fine-tuning", "value": full["trainable_params"]}, **recipe},
        {"metric": "sst2_lora_step_s", "value": step_s["lora"],
         "unit": "seconds per optimizer step (median of ABAB rounds)",
         "baseline": {"name": "full fine-tuning", "value": step_s["full"]}, **recipe},
    ]
    write_result("sst2_lora" + ("_wte" if "wte" in a.targets else "") + ("_quick" if a.quick else ""), records)
    print(json.dumps({r["metric"]: r["value"] for r in records} | {"full_accuracy": full["test_accuracy"]},
                     indent=2))


if __name__ == "__main__":
    main()
