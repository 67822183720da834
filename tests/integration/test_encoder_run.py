"""An encoder end to end (issue 26 item 1): `raylm run` with model.arch encoder pretrains by
masked-language modelling under Ray Train (2 DDP workers), eval reports masked-token loss and
accuracy (no perplexity, no samples), a classifier is fine-tuned on it with first-token pooling,
and the commands a decoder has that an encoder has not refuse in one line."""

from __future__ import annotations

import json
from pathlib import Path

from raylm.cli import main

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")


def _slice(src: Path, dest: Path, n: int) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dest.write_text("".join(lines[: n + 1]), encoding="utf-8")  # header + n rows
    return dest


def test_encoder_pretrains_evaluates_and_fine_tunes(ray_session, shared_data, tmp_path, capsys):
    out = tmp_path / "enc"
    sets = ["--set", f"out={out}", "--set", "model.arch=encoder", "--set", "train.max_steps=40",
            "--set", "eval.max_tokens=4000"]
    assert main(["run", TINY, *sets]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "masked-token accuracy" in printed and "raylm generate" not in printed
    report = json.loads((out / "eval" / "report.json").read_text())
    mlm = report["mlm"]
    assert "lm" not in report and report["samples"] == []
    assert mlm["tokens_masked"] > 0 and 0 < mlm["masked_accuracy"] < 1 and mlm["masked_loss"] > 0
    result = json.loads((out / "train" / "result.json").read_text())
    m = result["metrics"]
    assert m["step"] == 40 and m["val_loss"] < 6.0  # masked-token loss: below the ~6.2 of a uniform guess
    model = json.loads((Path(result["checkpoint"]) / "model.json").read_text())["model"]
    vocab = json.loads((out / "data" / "shards" / "manifest.json").read_text())["vocab_size"]
    assert model["arch"] == "encoder" and model["vocab_size"] == vocab + 1  # the mask token

    assert main(["generate", TINY, *sets, "--prompt", "KING", "--max-new-tokens", "4"]) == 2
    assert "does not generate" in capsys.readouterr().err
    assert main(["export", TINY, *sets, "--out", str(tmp_path / "hf")]) == 2
    assert "not exported" in capsys.readouterr().err

    train = _slice(shared_data / "sst2" / "train.tsv", tmp_path / "train.tsv", 200)
    test = _slice(shared_data / "sst2" / "test.tsv", tmp_path / "test.tsv", 80)
    ft = [*sets, "--set", "finetune.task=classify", "--set", f"finetune.train_file={train}",
          "--set", f"finetune.val_file={test}", "--set", "finetune.text_column=sentence",
          "--set", "train.max_steps=6", "--set", "train.eval_interval=3", "--set", "train.num_workers=1"]
    assert main(["finetune", TINY, *ft]) == 2  # pooling last is a decoder's: refused, naming the fix
    assert "pools the first token or the mean" in capsys.readouterr().err
    assert main(["finetune", TINY, *ft, "--set", "finetune.pooling=first"]) == 0, capsys.readouterr().err
    rep = json.loads((out / "finetune" / "report.json").read_text())
    assert rep["test"]["n"] == 80 and 0 <= rep["test"]["accuracy"] <= 1
