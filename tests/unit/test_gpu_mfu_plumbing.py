"""benchmarks/gpu_mfu.py's variant comparison runs end to end on the CPU (tiny model, eager):
every variant is timed and trained, the curves are compared, both figures are written. Its
numbers mean nothing here; the GPU machine runs the same code."""

from __future__ import annotations

import json
import sys

from benchmarks import _common, gpu_mfu


def test_variants_are_compared_and_both_figures_written(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["gpu_mfu", "--device", "cpu", "--size", "tiny", "--vocab", "97", "--batch",
                                      "2", "4", "--steps", "2", "--warmup", "1", "--curve-steps", "24",
                                      "--variants", "fused_loss", "foreach_adamw"])
    gpu_mfu.main()
    speedup, mfu = json.loads((tmp_path / "gpu_mfu_cpu_plumbing.json").read_text())
    assert speedup["metric"] == "gpu_step_speedup" and mfu["metric"] == "gpu_mfu"
    assert {(r["variant"], r["batch"]) for r in speedup["runs"]} == {
        (v, b) for v in ("reference", "fused_loss", "foreach_adamw") for b in (2, 4)}
    assert speedup["variant"] in ("fused_loss", "foreach_adamw") and speedup["value"] > 0
    assert all(len(c) == 24 for c in speedup["curves"].values())
    assert speedup["curve_gap"]["reference"] == 0 and max(speedup["curve_gap"].values()) < 1e-4
    assert speedup["curves"]["reference"][-1] < speedup["curves"]["reference"][0]  # the fixed cycle is learnt


def test_without_a_gpu_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(gpu_mfu.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["gpu_mfu"])
    gpu_mfu.main()
    assert "no CUDA GPU here" in capsys.readouterr().out and not list(tmp_path.iterdir())
