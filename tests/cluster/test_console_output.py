"""What a user sees: `raylm run configs/tiny.yaml` in a fresh process (its own local Ray, as a
new user runs it) prints raylm's own lines, not Ray's (issue 25); -q prints the summary only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _raylm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raylm.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_tiny_run_prints_raylm_lines_not_rays(tmp_path):
    out = tmp_path / "tiny"
    # the dashboard off: this test counts lines, and a second dashboard on a busy CI machine is slow
    p = _raylm("run", str(REPO / "configs" / "tiny.yaml"), "--set", f"out={out}",
               "--set", "cluster.include_dashboard=false", cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = (p.stdout + p.stderr).splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    text = "\n".join(lines)
    for noise in ("INFO", "logging_progress", "Reporting training result", "core_worker.cc", "RayTrainWorker",
                  "TrainController"):
        assert noise not in text, noise
    steps = [ln for ln in lines if ln.startswith("[train] step ")]
    assert steps and all(re.match(r"\[train\] step \d+/30 \(\d+%\) loss [\d.]+", ln) for ln in steps), steps
    assert any("ETA" in ln for ln in steps[:-1]) and "tok/s" in steps[-1]
    assert re.search(r"\[raylm\] finished in \S+ \(data \S+, train \S+, eval \S+\)", text)
    assert "raylm generate" in text and "raylm export" in text and "tensorboard --logdir" in text

    q = _raylm("data", str(REPO / "configs" / "tiny.yaml"), "--set", f"out={out}", "-q",
               "--set", "cluster.include_dashboard=false", cwd=REPO)
    assert q.returncode == 0, q.stderr[-2000:]
    assert (q.stdout + q.stderr).splitlines() == [
        f"[raylm] data done: {out}/data/shards (manifest.json, tokenizer.json), stats in {out}/data/stats.json"]
