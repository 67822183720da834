"""`raylm data` shows a progress line per phase (issue 25): off a terminal one line every
RAYLM_PROGRESS_SECONDS with files done/total and documents through each stage, then the shards
line; none at the default interval on a short run, none under -q."""

from __future__ import annotations

import re

from raylm.cli import main

CONFIG = """\
out: {out}
data:
  ingest: {{files: {{paths: ["{src}"], txt_unit: paragraph}}}}
  steps: {steps}
  tokenizer: {{kind: char}}
  split: {{val_fraction: 0.3}}
"""
DOCS = re.compile(r"\[data\] files (\d+)/12 \(\d+%\)( ETA \S+)? · documents through ingest (\S+), normalise (\S+), "
                  r"dedup (\S+), split (\S+)( · \S+ docs/s)? · \S+")
SHARDS = re.compile(r"\[data\] shards: encoded (\d+)/(\d+) documents \(\d+%\)( ETA \S+)?( · written \d+/\d+ shards)?")


def _corpus(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for f in range(12):
        paras = [f"File {f}, paragraph {i}: a line of plain English text about item {i * f}." for i in range(20)]
        (src / f"{f:02d}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    return src


def test_progress_lines_off_a_terminal(ray_session, tmp_path, capsys, monkeypatch):
    src = _corpus(tmp_path)
    cfg = tmp_path / "c.yaml"
    monkeypatch.setenv("RAYLM_PROGRESS_SECONDS", "0.2")
    cfg.write_text(CONFIG.format(out=tmp_path / "a", src=src, steps="[normalise, dedup]"))
    assert main(["data", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    docs = [m for m in map(DOCS.fullmatch, lines) if m]
    shard_lines = [m for m in map(SHARDS.fullmatch, lines) if m]
    assert docs and shard_lines, lines
    assert not [ln for ln in lines if ln.startswith("[data] ") and not (DOCS.fullmatch(ln) or SHARDS.fullmatch(ln))]
    files = [int(m.group(1)) for m in docs]
    assert files == sorted(files) and files[-1] <= 12
    encoded = [int(m.group(1)) for m in shard_lines]
    assert encoded == sorted(encoded) and all(int(m.group(2)) == 240 for m in shard_lines)  # 12 x 20 kept
    # the documents phase ends before the stats table, the shards phase after it
    table = next(i for i, ln in enumerate(lines) if ln.startswith("stage "))
    assert all(lines.index(m.group(0)) < table for m in docs)
    assert all(lines.index(m.group(0)) > table for m in shard_lines)

    monkeypatch.delenv("RAYLM_PROGRESS_SECONDS")  # default 30 s: a run this short prints none
    cfg.write_text(CONFIG.format(out=tmp_path / "b", src=src, steps="[normalise]"))  # (cheaper: no dedup)
    assert main(["data", str(cfg)]) == 0
    assert not [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[data] files")
                or SHARDS.fullmatch(ln)]

    monkeypatch.setenv("RAYLM_PROGRESS_SECONDS", "0.2")
    cfg.write_text(CONFIG.format(out=tmp_path / "c", src=src, steps="[normalise]"))
    assert main(["data", str(cfg), "-q"]) == 0
    assert "[data]" not in capsys.readouterr().out
