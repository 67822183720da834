"""An encoder against a decoder on SST-2, same pretraining text and compute (issue 26).

One run, same machine. Both models are raylm GPTs of one shape (4 layers, 128 wide, context 64,
byte-level BPE 4,096), pretrained on the same shards (benchmarks/sst2_lora.py's corpus:
unlabelled SST-2 training phrases without the held-out selection sentences' trees, plus AG News
texts) for the same steps, batch, learning rate and schedule, so the same tokens and the same
FLOPs per token (the encoder has one more embedding row, its [MASK] token):

- decoder: `model.arch: decoder`, next-token loss (the checkpoint sst2_lora.py made is reused
  when it is in --out, so the two benchmarks compare against the same decoder);
- encoder: `model.arch: encoder`, `train.objective: mlm` (BERT's 15% / 80-10-10).

Each is then fine-tuned for classification, every weight, from its checkpoint: the learning rate
and the pooling (decoder: last; encoder: first or mean) are chosen on 1,000 held-out whole
SST-2 sentences (tools/sst2_sentences.py) with fine-tuning seed 1, then the chosen recipe is run
with seeds 1, 2 and 3; the figure is the mean test accuracy over the 3 seeds (test.tsv, 872
sentences, GLUE's dev set, which never chooses anything). The baseline of both is bag-of-words
logistic regression (uni+bigrams, C chosen on the same held-out sentences) trained on the same
sentence split. The 3 seeds are fine-tuning seeds of one pretraining per architecture: a
pretraining per seed (6 x ~13 min here) was out of this machine's budget.

  .venv/bin/python -m benchmarks.sst2_encoder            # ~40 min on 2 idle cores (pretraining ~13 each)
  .venv/bin/python -m benchmarks.sst2_encoder --quick    # a few minutes: plumbing only, numbers meaningless
Writes benchmarks/results/sst2_encoder.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks._common import write_result
from benchmarks.sst2_lora import pretrained, setup
from benchmarks.tools import transfer_bow
from benchmarks.transfer_sst2 import int_labels, finetune, labelled, sst2_config
from raylm.train.checkpoint import read_model_config
from raylm.train.classify_data import tokenizer_path

REPO = Path(__file__).resolve().parents[1]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data dir")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_sst2_lora"),
                   help="work dir; shared with sst2_lora.py so both use one decoder checkpoint")
    p.add_argument("--pretrain-steps", type=int, default=4000, help="x batch 32 x block 64 tokens, each arch")
    p.add_argument("--finetune-steps", type=int, default=1000)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 5e-4], help="fine-tuning lrs tried")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds of the chosen recipe")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny sizes and steps: plumbing check, numbers meaningless")
    a = p.parse_args()
    # what transfer_sst2's pretrain() / finetune() and sst2_lora's pretrained() read
    a.gpu, a.precision, a.selection, a.pretrain_schedule = False, "fp32", "sentences", "cosine"
    a.vocab, a.n_layer, a.n_embd, a.block = 4096, 4, 128, 64
    a.pretrain_checkpoint = None
    if a.quick:
        a.vocab, a.n_layer, a.n_embd, a.pretrain_steps, a.finetune_steps = 512, 1, 32, 30, 30
        a.lrs, a.seeds = a.lrs[:1], 2
        a.out = str(Path(a.out).with_name(Path(a.out).name + "_quick"))
    return a


def recipe_runs(a, ft, ckpt: str, out: Path, tag: str, poolings: list[str]) -> dict:
    """Choose lr x pooling on the held-out sentences (seed 1), then run the chosen one with every
    seed; mean and per-seed test accuracy."""
    cfg = read_model_config(ckpt)
    tried = {}
    for pooling in poolings:
        for lr in a.lrs:
            r = finetune(a, replace(ft, pooling=pooling), ckpt, cfg, out / f"{tag}_{pooling}_lr{lr:g}_s1", lr, 1)
            tried[(pooling, lr)] = r
            print(f"[{tag}] {pooling} lr {lr:g}: val {r['final']['best_val']:.4f} "
                  f"test {r['test']['accuracy']:.4f}", flush=True)
    pooling, lr = max(tried, key=lambda k: tried[k]["final"]["best_val"])
    runs = {1: tried[(pooling, lr)]}
    for s in range(2, a.seeds + 1):
        runs[s] = finetune(a, replace(ft, pooling=pooling), ckpt, cfg, out / f"{tag}_{pooling}_lr{lr:g}_s{s}", lr, s)
    per_seed = [{"seed": s, "val_accuracy": r["final"]["best_val"], "best_step": r["final"]["best_step"],
                 "test_accuracy": r["test"]["accuracy"], "test_macro_f1": r["test"]["macro_f1"],
                 "step_s": r["final"]["step_s"]} for s, r in runs.items()]
    accs = [p["test_accuracy"] for p in per_seed]
    return {"pooling": pooling, "lr": lr, "test_accuracy_mean": statistics.fmean(accs),
            "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "per_seed": per_seed,
            "selection": {f"{p}_lr{lr_:g}": {"val_accuracy": r["final"]["best_val"],
                                             "test_accuracy": r["test"]["accuracy"]}
                          for (p, lr_), r in tried.items()}}


def bag_of_words(data: Path, train_sent: str, val_sent: str, quick: bool) -> dict:
    def split(path: str) -> tuple[list[str], list[int]]:
        return int_labels(labelled(path, True, "sentence"))

    test = split(str(data / "sst2" / "test.tsv"))
    bow = transfer_bow.run(split(train_sent), split(val_sent), test, 2, (1.0,) if quick else transfer_bow.GRID)
    return {"C": bow["C"], "val_accuracy": bow["dev_accuracy"], "features": bow["features"],
            "test_accuracy": float((bow["test_pred"] == np.asarray(test[1])).mean())}


def main() -> None:
    a = parse()
    t0 = time.time()
    data, out, split, train_sent, val_sent = setup(a)
    dec_ckpt, dec_pre = pretrained(a, data, out, train_sent)
    enc_ckpt, enc_pre = pretrained(a, data, out, train_sent, arch="encoder")
    ft = sst2_config(data, train_sent, val_sent, tokenizer_path(dec_ckpt, None), lowercase=False)
    bow = bag_of_words(data, train_sent, val_sent, a.quick)
    dec = recipe_runs(a, ft, dec_ckpt, out, "ft_decoder", ["last"])
    enc = recipe_runs(a, ft, enc_ckpt, out, "ft_encoder", ["first", "mean"])
    keep = ("seconds", "steps", "tokens_seen", "tokens_per_s", "flops_per_s", "val_loss", "corpus_tokens", "reused",
            "checkpoint", "energy_kwh", "energy_method", "device_hours")
    arch = read_model_config(dec_ckpt)
    recipe = {"model": {"n_layer": arch.n_layer, "n_embd": arch.n_embd, "block_size": arch.block_size,
                        "vocab_size": arch.vocab_size},
              "pretrain_steps": dec_pre.get("steps"), "pretrain_tokens": dec_pre.get("tokens_seen"),
              "finetune_steps": a.finetune_steps, "batch": a.batch, "seeds": a.seeds, "threads": a.threads,
              "quick": a.quick}
    details = {"encoder": enc, "decoder": dec, "bag_of_words": bow, "selection": split,
               "pretrain": {"decoder": {k: dec_pre[k] for k in keep if k in dec_pre},
                            "encoder": {k: enc_pre[k] for k in keep if k in enc_pre}},
               "note": "val_loss: the decoder's is next-token loss, the encoder's masked-token loss (not comparable)",
               "wall_seconds": round(time.time() - t0, 1)}
    records = [
        {"metric": "sst2_accuracy_encoder", "value": enc["test_accuracy_mean"],
         "unit": f"fraction of test.tsv, mean of {a.seeds} fine-tuning seeds",
         "baseline": {"name": "decoder, same pretraining text and compute", "value": dec["test_accuracy_mean"]},
         **recipe, **details},
        {"metric": "sst2_accuracy_decoder", "value": dec["test_accuracy_mean"],
         "unit": f"fraction of test.tsv, mean of {a.seeds} fine-tuning seeds",
         "baseline": {"name": "bag-of-words logistic regression, same sentence split", "value": bow["test_accuracy"]},
         **recipe},
        {"metric": "sst2_accuracy_encoder_vs_bow", "value": enc["test_accuracy_mean"],
         "unit": f"fraction of test.tsv, mean of {a.seeds} fine-tuning seeds",
         "baseline": {"name": "bag-of-words logistic regression, same sentence split", "value": bow["test_accuracy"]},
         **recipe},
    ]
    write_result("sst2_encoder" + ("_quick" if a.quick else ""), records)
    print(json.dumps({r["metric"]: r["value"] for r in records} | {"bow": bow["test_accuracy"]}, indent=2))


if __name__ == "__main__":
    main()
