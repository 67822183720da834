"""What a training loop needs from whoever runs it: rank, world, the checkpoint to resume from,
and where metrics and checkpoints go. The loops (loop.py, classify_loop.py) take either session
and never import Ray themselves.

- `LocalSession`: no Ray (`train.num_workers: 0`, unit tests, benchmarks); checkpoints under
  `<dir>/checkpoints/step-N`, kept as Ray Train keeps them (newest K, or best K by val_loss
  plus the newest).
- `RaySession`: inside a Ray Train worker; checkpoints go to Ray Train, which persists them in
  the run's storage path and keeps them by the same rule (launch.py sets it from TrainConfig).

Both append every metrics row rank 0 sees to `<out>/metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path


def say(line: str) -> None:
    """One progress line on stdout. Not print(): in a Ray Train V2 worker print is patched to log
    through the root logger and also, because Ray wraps the worker's sys.stdout, to tee to stdout,
    so each printed line reached the driver twice."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _append_jsonl(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _step_of(p: Path) -> int:
    return int(p.name.removeprefix("step-"))


@dataclass
class LocalSession:
    """No Ray: checkpoints under `<dir>/checkpoints/step-N`, metrics appended to metrics.jsonl."""

    dir: str
    keep: int = 2            # checkpoints kept; 0 = all
    keep_by: str = "newest"  # or "val_loss": keep the `keep` best, plus the newest
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    history: list = field(default_factory=list)

    def checkpoints(self) -> list[Path]:
        return sorted(Path(self.dir, "checkpoints").glob("step-*"), key=_step_of)

    def latest_checkpoint(self) -> Path | None:
        cks = self.checkpoints()
        return cks[-1] if cks else None

    def log(self, metrics: dict) -> None:
        """Metrics between evaluations: kept locally, not reported to anyone."""
        self.history.append(metrics)
        _append_jsonl(Path(self.dir) / "metrics.jsonl", metrics)

    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        self.log(metrics)
        if checkpoint_dir is None:
            return
        dest = Path(self.dir, "checkpoints", f"step-{metrics['step']}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(checkpoint_dir, dest)
        for old in self._to_drop(self.checkpoints()):
            shutil.rmtree(old)

    def _to_drop(self, cks: list[Path]) -> list[Path]:
        if not self.keep:
            return []
        if self.keep_by != "val_loss":
            return cks[: -self.keep]

        def score(p: Path) -> float:
            return json.loads((p / "model.json").read_text()).get("val_loss", math.inf)

        best = set(sorted(cks, key=score)[: self.keep])
        return [c for c in cks[:-1] if c not in best]  # as Ray Train: top K, plus the newest


class RaySession:
    """Inside a Ray Train worker: rank and world from Ray Train's context, checkpoints to Ray Train."""

    def __init__(self, out: str):
        import ray.train

        ctx = ray.train.get_context()
        self.rank, self.world, self.local_rank = ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank()
        self.metrics_file = Path(out) / "metrics.jsonl"  # rank 0 keeps a plain copy beside Ray's
        self._restore_ctx = None

    def latest_checkpoint(self) -> Path | None:
        import ray.train

        c = ray.train.get_checkpoint()
        if c is None:
            return None
        # as_directory() gives a local copy (downloaded if storage is remote); keep it for the run
        self._restore_ctx = c.as_directory()
        return Path(self._restore_ctx.__enter__())

    def log(self, metrics: dict) -> None:
        """Metrics between evaluations: rank 0 appends them to metrics.jsonl (no Ray call, no barrier)."""
        if self.rank == 0:
            _append_jsonl(self.metrics_file, metrics)

    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        """At evaluations: metrics (and the checkpoint) to Ray Train, which Tune sees too. A
        report is a barrier with the controller: call it on every rank, at evaluations only."""
        import ray.train

        self.log(metrics)
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
