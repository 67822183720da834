"""Sweep configuration (the `tune:` section of a raylm YAML) and its search space.

The space is keyed by the same dotted paths as `--set`, so anything a user can override on the
command line can be swept:

    tune:
      space:
        train.optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
        train.optim.weight_decay: {uniform: [0.0, 0.2]}
        model.dropout: {choice: [0.0, 0.1]}
        train.batch_size: {grid: [8, 16]}

This module is pure (no Ray): `parse_space` validates a space against the base config by
applying every candidate value and rebuilding the RootConfig strictly, and `apply_values`
builds one trial's config. sweep.py turns the parsed `Param`s into Ray Tune domains.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal

SAMPLERS = ("uniform", "loguniform", "choice", "grid")
# Paths a trial may not change: where the sweep writes, how it connects, and the sweep itself.
FORBIDDEN_PREFIXES = ("out", "tune", "cluster")


@dataclass
class TuneConfig:
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # dotted key -> {sampler: args}; samplers:
                                  # uniform/loguniform [lo, hi] (integers if the field is int), choice/grid [values]
    num_samples: int = 8          # trials drawn (each grid point is repeated num_samples times)
    metric: str = "val_loss"      # reported metric to optimise (reported at every train.eval_interval)
    mode: Literal["min", "max"] = "min"
    scheduler: Literal["asha", "hyperband", "median", "none"] = "asha"  # early stopping rule
    grace_period: int = 0         # steps a trial runs before it may be stopped; 0 = train.eval_interval
    reduction_factor: float = 2.0  # asha/hyperband: 1/reduction_factor of the trials pass each rung
    max_t: int = 0                # steps; the last rung (asha/hyperband); 0 = train.max_steps
    searcher: Literal["random", "optuna"] = "random"  # random also expands grid axes; optuna = TPE
    max_concurrent_trials: int = 0  # 0 = cluster CPUs // (num_workers * cpus_per_worker) (GPUs likewise)
    gpus_per_trial: float = 0.0   # GPUs one trial reserves (train.use_gpu), e.g. 0.25: four small trials
                                  # share a GPU (one worker per trial); 0 = train.gpus_per_worker each
    name: str = "sweep"           # experiment folder under <out>/tune (or cluster.storage_path)
    seed: int | None = None       # searcher seed; None = the root seed

    def __post_init__(self):
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.gpus_per_trial < 0:
            raise ValueError(f"tune.gpus_per_trial must be >= 0, got {self.gpus_per_trial}")
        if self.grace_period < 0 or self.max_t < 0 or self.max_concurrent_trials < 0:
            raise ValueError("grace_period, max_t and max_concurrent_trials must be >= 0")
        if self.reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be > 1, got {self.reduction_factor}")
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a plain folder name, got {self.name!r}")
        params = [_parse_spec(k, v) for k, v in self.space.items()]  # sampler checks; paths need the root
        if self.searcher == "optuna" and any(p.sampler == "grid" for p in params):
            raise ValueError("searcher: optuna cannot expand grid axes; use choice, or searcher: random")


@dataclass
class Param:
    """One axis of the space, checked: `args` are [lo, hi] numbers or the list of values."""

    key: str                      # dotted path, e.g. "train.optim.lr"
    sampler: str                  # one of SAMPLERS
    args: list                    # [lo, hi] for uniform/loguniform; values for choice/grid
    integer: bool = False         # uniform/loguniform on an int field: sample integers in [lo, hi]


def _parse_spec(key: str, spec: Any) -> Param:
    """Check one `key: {sampler: args}` entry on its own (types and ranges, not the path)."""
    where = f"tune.space.{key}"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"{where}: expected one sampler, e.g. {{loguniform: [1.0e-4, 1.0e-2]}}; "
                         f"got {spec!r}; samplers: {', '.join(SAMPLERS)}")
    (sampler, args), = spec.items()
    if sampler not in SAMPLERS:
        raise ValueError(f"{where}: unknown sampler {sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
    if not isinstance(args, list) or not args:
        raise ValueError(f"{where}.{sampler}: expected a non-empty list, got {args!r}")
    if sampler in ("choice", "grid"):
        return Param(key, sampler, list(args))
    if len(args) != 2:
        raise ValueError(f"{where}.{sampler}: expected [low, high], got {args!r}")
    try:
        # PyYAML reads 1e-4 (no dot) as a string: coerce, as the config loader does.
        lo, hi = (float(a) for a in args)
    except (TypeError, ValueError):
        raise ValueError(f"{where}.{sampler}: bounds must be numbers, got {args!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"{where}.{sampler}: need low < high, got {args!r}")
    if sampler == "loguniform" and lo <= 0:
        raise ValueError(f"{where}.loguniform: bounds must be > 0, got {args!r}")
    return Param(key, sampler, [lo, hi])


def _get_path(raw: dict, keys: list[str]) -> Any:
    node: Any = raw
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def apply_values(base: dict, values: dict[str, Any]):
    """Base root config as a plain dict + {dotted key: value} -> a strictly rebuilt RootConfig."""
    from raylm import config as C
    from raylm.root import RootConfig

    raw = copy.deepcopy(base)
    for key, value in values.items():
        C.set_path(raw, key.split("."), value)
    return C.from_dict(RootConfig, raw)


def parse_space(space: dict[str, Any], base: dict) -> list[Param]:
    """Validate a space against the base config (a plain dict of the resolved RootConfig).

    Every candidate (each choice/grid value; both bounds of a range) is applied on its own to
    the base and the RootConfig rebuilt, so an unknown path, a wrong type or a broken cross-field
    rule (e.g. warmup_steps > max_steps) fails here, before any trial starts, naming the key.
    """
    from raylm.config import ConfigError

    if not space:
        raise ValueError("tune.space is empty: give at least one dotted key, e.g. "
                         "train.optim.lr: {loguniform: [1.0e-4, 3.0e-3]}")
    params = []
    for key, spec in space.items():
        keys = key.split(".")
        if not all(keys):
            raise ValueError(f"tune.space.{key}: empty part in the dotted key")
        if keys[0] in FORBIDDEN_PREFIXES:
            raise ValueError(f"tune.space.{key}: a trial cannot change {keys[0]}.*")
        p = _parse_spec(key, spec)
        current = _get_path(base, keys)
        if isinstance(current, dict):
            raise ValueError(f"tune.space.{key}: is a section, not a value; sweep one of its keys: "
                             + ", ".join(sorted(current)))
        # An int field (e.g. warmup_steps) swept by a range samples integers.
        p.integer = p.sampler in ("uniform", "loguniform") and isinstance(current, int) \
            and not isinstance(current, bool)
        if p.integer:
            p.args = [math.ceil(p.args[0]), math.floor(p.args[1])]
            if p.args[0] > p.args[1]:
                raise ValueError(f"tune.space.{key}: no integer in [{spec}] for an integer field")
        for candidate in p.args:
            try:
                apply_values(base, {key: candidate})
            except ConfigError as e:
                raise ValueError(f"tune.space.{key}: value {candidate!r} does not make a valid config: {e}") \
                    from None
        params.append(p)
    return params
