"""Energy and device-hours (energy.py): the rated estimate, RAPL counters with wrap-around, the
sweep total. No Ray, no GPU."""

from __future__ import annotations

import pytest

from raylm import energy
from raylm.tune.report import energy_total


def test_rated_estimate_counts_cpu_cores_and_says_so(monkeypatch):
    monkeypatch.setattr(energy, "_rapl_files", lambda: [])
    monkeypatch.delenv("RAYLM_RATED_WATTS", raising=False)
    m = energy.Meter(None, cpus=4)
    m.t0 -= 3600  # an hour ago
    r = m.reading()
    assert r["energy_method"] == "rated" and r["device"] == "cpu_core"
    assert r["device_hours"] == pytest.approx(4.0, rel=1e-3)
    assert r["energy_kwh"] == pytest.approx(4 * energy.CPU_CORE_WATTS / 1000, rel=1e-3)
    monkeypatch.setenv("RAYLM_RATED_WATTS", "25")
    m = energy.Meter(None, cpus=2)
    m.t0 -= 1800
    assert m.reading()["energy_kwh"] == pytest.approx(2 * 25 * 0.5 / 1000, rel=1e-3)


def test_rapl_counters_measure_with_wraparound_and_share(tmp_path, monkeypatch):
    dom = tmp_path / "intel-rapl:0"
    dom.mkdir()
    (dom / "energy_uj").write_text(str(10**12 - 10**6))  # 1 J before the counter wraps
    (dom / "max_energy_range_uj").write_text(str(10**12))
    monkeypatch.setattr(energy.glob, "glob", lambda pattern: [str(dom)])
    monkeypatch.setattr(energy.os, "cpu_count", lambda: 8)
    m = energy.Meter(None, cpus=2)
    assert m.method == "rapl"
    (dom / "energy_uj").write_text(str(3 * 10**6))  # wrapped: 1 J + 3 J = 4 J for the package
    assert m.joules() == pytest.approx(4.0 * 2 / 8)  # this worker's 2 of 8 cores


def test_a_gpu_without_nvml_is_rated(monkeypatch):
    monkeypatch.setattr(energy, "_nvml_handle", lambda i: (None, None))
    monkeypatch.delenv("RAYLM_RATED_WATTS", raising=False)
    m = energy.Meter(0, cpus=8)
    assert m.method == "rated" and m.devices == 1 and m.watts == energy.GPU_WATTS
    m.t0 -= 1  # a second ago
    assert m.reading()["device"] == "gpu" and m.reading()["energy_kwh"] > 0


def test_sweep_total_sums_each_trials_last_reading():
    records = [{"history": [{"step": 5, "energy_kwh": 0.1, "device_hours": 1.0, "energy_method": "rated"},
                            {"step": 10, "energy_kwh": 0.2, "device_hours": 2.0, "energy_method": "rated"}]},
               {"history": [{"step": 5, "energy_kwh": 0.05, "device_hours": 0.5, "energy_method": "rated"}]},
               {"history": []}]
    t = energy_total(records)
    assert t == {"device_hours": 2.5, "energy_kwh": pytest.approx(0.25), "methods": ["rated"], "trials": 2}
    assert energy_total([{"history": [{"step": 1}]}]) is None
