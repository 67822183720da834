"""Run provenance (versions, commit, command, host) in saved configs and results; `raylm check`
shows each field's comment from the code. No Ray."""

from __future__ import annotations

import subprocess

import yaml

from raylm import config as C
from raylm import provenance
from raylm.root import RootConfig


def test_record_names_versions_code_command_and_host():
    r = provenance.record()
    assert r["raylm"] and r["ray"] and r["torch"] and r["python"].count(".") == 2
    assert r["host"] and r["started"] and r["command"]
    if (provenance.ROOT / ".git").exists():  # a checkout: the commit it runs
        head = subprocess.run(["git", "-C", str(provenance.ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        assert r["git"]["commit"] == head and isinstance(r["git"]["dirty"], bool)


def test_git_state_outside_a_checkout_is_none(tmp_path):
    assert provenance.git_state(tmp_path) is None


def test_saved_config_opens_with_provenance_and_reads_back(tmp_path):
    cfg = RootConfig(out=str(tmp_path / "run"))
    path = C.save(cfg, tmp_path / "config.yaml")
    text = path.read_text() if hasattr(path, "read_text") else (tmp_path / "config.yaml").read_text()
    head = text.splitlines()[:2]
    assert head[0].startswith(f"# written by raylm {provenance.record()['raylm']} (ray ")
    assert "torch" in head[0] and "python" in head[0] and head[1].startswith("# on ")
    assert yaml.safe_load(text)["out"] == cfg.out  # comments only: still a config


def test_check_shows_field_comments_beside_values():
    text = C.dump_commented(RootConfig())
    lines = text.splitlines()
    assert any(ln.startswith("seed: ") and "  # one seed for splits" in ln for ln in lines)
    lr = next(ln for ln in lines if ln.strip().startswith("lr:"))
    assert "#" in lr  # a nested field (train.optim.lr) gets its own comment
    assert yaml.safe_load(text) == C.to_dict(RootConfig())  # the comments change nothing
    # a comment that runs on under its field joins it; one above the next field does not
    from raylm.data.dedup.stage import DedupConfig

    comments = C.field_comments(DedupConfig)
    assert comments["num_partitions"].endswith("fewer for small inputs (data/blocks.py)")
    assert "Two thresholds" not in comments.get("collapse_whitespace", "")
