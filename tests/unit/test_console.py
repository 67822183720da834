"""Console lines and levels (console.py), the -q / -v flags, a dashboard that cannot start. No Ray."""

from __future__ import annotations

import pytest

from raylm import cluster, console
from raylm.cli import build_parser


def test_step_line_has_total_percent_rate_and_eta():
    m = {"step": 50, "loss": 2.7612, "lr": 1e-3, "tokens_per_s": 6512.0}
    assert console.step_line("train", m, 600, 100.4) == "[train] step 50/600 (8%) loss 2.761 6.5k tok/s ETA 1m40s"
    m = {"step": 600, "loss": 2.5, "val_loss": 2.61, "tokens_per_s": 830.0}
    assert console.step_line("train", m, 600, 0.0) == "[train] step 600/600 (100%) loss 2.5 val_loss 2.61 830 tok/s"
    m = {"step": 10, "loss": 0.69, "val_accuracy": 0.81}
    assert console.step_line("finetune", m, 40, None) == "[finetune] step 10/40 (25%) loss 0.69 val_acc 0.81"
    assert [console.duration(s) for s in (7.2, 100, 3725)] == ["7s", "1m40s", "1h02m"]
    assert [console.rate(x) for x in (830, 6512, 1.25e6)] == ["830", "6.5k", "1.2M"]


def test_quiet_prints_only_summary_lines(capsys):
    try:
        console.set_level(console.QUIET)
        console.say("progress")
        console.summary("result")
        assert capsys.readouterr().out == "result\n"
        console.set_level(console.NORMAL)
        console.say("progress")
        assert capsys.readouterr().out == "progress\n"
    finally:
        console.set_level(console.NORMAL)


def test_flags_parse_per_command():
    p = build_parser()
    assert p.parse_args(["data", "c.yaml"]).verbosity == console.NORMAL
    assert p.parse_args(["data", "c.yaml", "-q"]).verbosity == console.QUIET
    assert p.parse_args(["train", "c.yaml", "--verbose"]).verbosity == console.VERBOSE
    with pytest.raises(SystemExit):
        p.parse_args(["data", "c.yaml", "-q", "-v"])


def test_dashboard_that_cannot_start_is_a_warning(monkeypatch, capsys):
    import ray

    calls = []

    def fake_init(**kw):
        calls.append(kw)
        if kw.get("include_dashboard"):
            raise RuntimeError("Module MetricsHead failed to start. Timeout after 30.0 seconds")
        return object()

    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    cluster._start_local(cluster.ClusterConfig(), {})
    assert [c["include_dashboard"] for c in calls] == [True, False]
    assert "dashboard did not start" in capsys.readouterr().err

    def broken(**kw):
        raise RuntimeError("raylet failed to start")

    monkeypatch.setattr(ray, "init", broken)
    with pytest.raises(RuntimeError, match="raylet"):  # anything else is still an error
        cluster._start_local(cluster.ClusterConfig(), {})
