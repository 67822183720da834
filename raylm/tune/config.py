"""Sweep configuration: the `tune:` section of a raylm YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TuneConfig:
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # dotted key -> {loguniform: [lo, hi]} ...
    num_samples: int = 8          # trials (per grid point for grid axes)
    metric: str = "val_loss"      # reported metric to optimise
    mode: str = "min"             # min or max
