"""A whole run on word-level tokens (data.tokenizer.kind: word): shards, training, eval with a
bits-per-byte comparable to BPE's (bytes of text, not tokens), text generated back."""

from __future__ import annotations

import json
from pathlib import Path

from raylm.cli import main
from raylm.data import shards

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")


def test_tiny_run_on_word_tokens(ray_session, tmp_path, capsys):
    out = tmp_path / "word"
    sets = ["--set", f"out={out}", "--set", "data.tokenizer.kind=word", "--set", "data.tokenizer.vocab_size=1500"]
    assert main(["run", TINY, *sets]) == 0
    m = shards.read_manifest(out / "data" / "shards")
    assert m["vocab_size"] == 1500 and m["tokenizer_kind"] == "word"
    tok = json.loads((out / "data" / "shards" / "tokenizer.json").read_text())
    assert tok["model"]["type"] == "WordLevel"
    report = json.loads((out / "eval" / "report.json").read_text())
    assert 0 < report["lm"]["bits_per_byte"] < 8  # per byte of text: on the scale BPE runs report
    capsys.readouterr()
    assert main(["generate", TINY, *sets, "--prompt", "KING RICHARD:", "--max-new-tokens", "8", "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip()  # the completion, decoded from word tokens
