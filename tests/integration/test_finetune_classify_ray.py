"""Classification fine-tuning on Ray Train (1 worker) on a slice of real SST-2, shared Ray."""

import json
from pathlib import Path

import torch

from raylm.model.gpt import GPT, GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.finetune import FinetuneConfig, run_classify


def _slice(src: Path, dest: Path, n: int) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dest.write_text("".join(lines[: n + 1]), encoding="utf-8")  # header + n rows
    return dest


def test_finetune_sst2_slice_on_ray(ray_session, shared_data, tmp_path, make_shards):
    # "pretraining data": SST-2 sentences as paragraphs, char tokenizer (tiny and fast)
    sentences = [ln.split("\t")[0] for ln in (shared_data / "sst2" / "train.tsv").read_text().splitlines()[1:2000]]
    shards = make_shards(tmp_path / "shards", text="\n\n".join(sentences))
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=64, vocab_size=0)
    cfg.vocab_size = json.loads((shards / "manifest.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    src = ckpt.save(tmp_path / "pretrained", GPT(cfg), cfg, extra={"data_dir": str(shards)})

    train = _slice(shared_data / "sst2" / "train.tsv", tmp_path / "train.tsv", 200)
    test = _slice(shared_data / "sst2" / "test.tsv", tmp_path / "test.tsv", 100)
    ft = FinetuneConfig(task="classify", train_file=str(train), val_file=str(test), test_file=str(test),
                        text_column="sentence", freeze_layers=1, head_lr_mult=10.0)
    tc = TrainConfig(max_steps=6, batch_size=16, eval_interval=3, log_interval=3, num_workers=1,
                     optim=OptimConfig(lr=1e-3), schedule=ScheduleConfig(warmup_steps=0))
    out = tmp_path / "ft"
    rep = run_classify(ft, tc, str(out), 1, str(src))

    t = rep["test"]
    assert rep["labels"] == ["0", "1"] and t["n"] == 100 and sum(map(sum, t["confusion_matrix"])) == 100
    for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1"):
        assert 0.0 <= t[k] <= 1.0, k
    assert set(t["binary"]) == {"positive", "precision", "recall", "f1"}
    assert rep["init_from"] == str(src) and rep["final"]["step"] == 6 and rep["final"]["final"]
    assert Path(rep["checkpoint"], "model.safetensors").is_file()
    assert Path(rep["checkpoint"], "tokenizer.json").is_file()  # the checkpoint is self-contained
    saved = json.loads((out / "report.json").read_text())
    assert saved["test"]["confusion_matrix"] == t["confusion_matrix"]
    assert saved["config"]["finetune"]["freeze_layers"] == 1
    assert "Confusion matrix" in (out / "report.md").read_text()
