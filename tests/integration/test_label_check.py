"""On a running Ray with no autoscaler (the session's local one), a label selector no node has
is one line and exit 2 before the data stage starts (issue 22, bad input)."""

from __future__ import annotations

from raylm.cli import main


def test_label_selector_no_node_has_is_refused(ray_session, tmp_path, capsys):
    src = tmp_path / "a.txt"
    src.write_text("\n\n".join(f"Paragraph {i} of a small text." for i in range(20)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"out: {tmp_path / 'run'}\ndata:\n  ingest: {{files: {{paths: [{src}]}}}}\n"
                   "  tokenizer: {kind: char}\n  label_selector: {raylm-role: nowhere}\n")
    assert main(["data", str(cfg)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "data.label_selector: no node of this cluster has the labels" in err[0], err
    assert not (tmp_path / "run" / "data" / "shards").exists()
    cfg.write_text(cfg.read_text().replace("  label_selector: {raylm-role: nowhere}\n", ""))
    assert main(["data", str(cfg)]) == 0  # the placement key is not part of the output: the same out runs
