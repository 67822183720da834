"""Device-hours and energy of a training, fine-tuning or evaluation run, and how they were had.

Each worker meters its own devices from the start of its loop, best source first:

- `nvml`: the GPU's own energy counter (NVML `nvmlDeviceGetTotalEnergyConsumption`, mJ),
  measured, exact for that GPU;
- `rapl`: the CPU package's RAPL counter (`/sys/class/powercap/intel-rapl:*/energy_uj`, also
  on AMD under Linux's powercap driver) where readable, measured, the package's energy shared
  by this worker's CPUs (its share of the machine's cores);
- `rated`: no counter readable (most VMs and containers): devices x seconds x rated watts per
  device, an estimate. Rated watts: `RAYLM_RATED_WATTS` if set, else a GPU's NVML power limit,
  else 700 W per GPU (an H100/H200 SXM board) and 10 W per CPU core (server CPUs: 200-360 W
  TDP over 24-64 cores).

Device-hours count GPUs on GPU runs and CPU cores (the CPUs Ray gave the worker) otherwise.
Ranks' readings are summed (`total`); a result says its method (`energy_method`).
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

GPU_WATTS = 700.0      # rated board power per GPU when NVML gives none
CPU_CORE_WATTS = 10.0  # rated power per CPU core: an estimate, see the module docstring


def _nvml_handle(index: int):
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # noqa: BLE001 -- no pynvml, no driver, no GPU: other sources
        return None, None


def _rapl_files() -> list[tuple[str, int]]:
    """(energy_uj path, max_energy_range_uj) of each readable CPU package RAPL domain."""
    out = []
    for d in sorted(glob.glob("/sys/class/powercap/intel-rapl:[0-9]")):
        try:
            int(Path(d, "energy_uj").read_text())
            out.append((f"{d}/energy_uj", int(Path(d, "max_energy_range_uj").read_text())))
        except (OSError, ValueError):
            continue
    return out


class Meter:
    """Energy and device-hours of this worker's devices since construction."""

    def __init__(self, gpu_index: int | None = None, cpus: int = 1):
        self.t0 = time.monotonic()
        self.gpu = gpu_index is not None
        self.devices = 1 if self.gpu else max(1, cpus)
        rated = os.environ.get("RAYLM_RATED_WATTS")
        self.watts = float(rated) if rated else (GPU_WATTS if self.gpu else CPU_CORE_WATTS)
        self.method, self._nvml, self._handle, self._rapl = "rated", None, None, []
        if self.gpu:
            self._nvml, self._handle = _nvml_handle(gpu_index)
            if self._handle is not None:
                try:
                    self.e0 = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3  # J
                    self.method = "nvml"
                except Exception:  # noqa: BLE001 -- an older GPU without the counter: its power limit
                    if not rated:
                        try:
                            self.watts = self._nvml.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1e3
                        except Exception:  # noqa: BLE001
                            pass
        else:
            self._rapl = _rapl_files()
            if self._rapl:
                self.e0s = [int(Path(p).read_text()) for p, _ in self._rapl]
                self.share = self.devices / max(1, os.cpu_count() or 1)
                self.method = "rapl"

    def joules(self) -> float:
        seconds = time.monotonic() - self.t0
        if self.method == "nvml":
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3 - self.e0
        if self.method == "rapl":
            total = 0.0
            for (path, wrap), e0 in zip(self._rapl, self.e0s):
                e = int(Path(path).read_text())
                total += (e - e0) % wrap if wrap else e - e0  # the counter wraps at max_energy_range_uj
            return total / 1e6 * self.share
        return self.watts * self.devices * seconds

    def reading(self) -> dict:
        """{"device_hours", "energy_kwh", "energy_method", "device"} of this worker so far."""
        hours = (time.monotonic() - self.t0) / 3600
        return {"device_hours": self.devices * hours, "energy_kwh": self.joules() / 3.6e6,
                "energy_method": self.method, "device": "gpu" if self.gpu else "cpu_core"}


def total(device_hours: float, energy_kwh: float, sum_across_ranks) -> dict:
    """The run's totals: `sum_across_ranks([a, b])` sums over the workers (a collective)."""
    h, e = sum_across_ranks([device_hours, energy_kwh])
    return {"device_hours": h, "energy_kwh": e}
