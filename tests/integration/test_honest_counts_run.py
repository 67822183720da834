"""`raylm data` tells the truth about its input (issue 24): undecodable bytes per file and skipped
unknown-format files reach stats.json and the printed table; no cleaning stage is one line."""

from __future__ import annotations

import json

from raylm.cli import main

CONFIG = """\
out: {out}
data:
  ingest: {{files: {{paths: ["{src}"], txt_unit: paragraph, skip_unknown: {skip}}}}}
  tokenizer: {{kind: char}}
  split: {{val_fraction: 0.3}}
"""


def test_decode_errors_and_skipped_files_in_stats(ray_session, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    paras = [f"Paragraph {i} of plain English text, long enough to keep." for i in range(30)]
    (src / "a.txt").write_text("\n\n".join(paras), encoding="utf-8")
    (src / "latin1.txt").write_bytes("\n\n".join(f"Caf\xe9 number {i} serves cr\xe8me." for i in range(10))
                                     .encode("latin-1"))  # 20 undecodable bytes
    (src / "copyright").write_text("Copyright 2026, not a corpus file\n")

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "refused", src=src, skip="false"))
    assert main(["data", str(cfg)]) == 2  # unknown format: one line, exit 2, before any work
    err = capsys.readouterr().err
    assert "copyright" in err and "skip_unknown" in err
    assert not (tmp_path / "refused" / "data" / "shards").exists()

    cfg.write_text(CONFIG.format(out=tmp_path / "run", src=src, skip="true"))
    assert main(["data", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "lists no cleaning stage" in out
    assert "undecodable bytes replaced by U+FFFD: 20 in 1 file(s)" in out
    assert "files skipped as ingest:unknown_format:" in out and "copyright" in out
    stats = json.loads((tmp_path / "run" / "data" / "stats.json").read_text())
    assert stats["decode_errors"] == {"bytes": 20, "files": {str(src / "latin1.txt"): 20}}
    assert stats["skipped_files"] == {"ingest:unknown_format": [str(src / "copyright")]}
    assert stats["drop_reasons"] == {"ingest:unknown_format": 1}
    assert stats["documents_kept"] == 40
