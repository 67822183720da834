"""What a training loop needs from whoever runs it: rank, world, the checkpoint to resume from,
and where metrics and checkpoints go. The loops (loop.py, classify_loop.py) take either session
and never import Ray themselves.

- `LocalSession`: no Ray (`train.num_workers: 0`, unit tests, benchmarks); checkpoints under
  `<dir>/checkpoints/step-N`, kept as Ray Train keeps them (newest K, or best K by val_loss
  plus the newest).
- `RaySession`: inside a Ray Train worker; checkpoints go to Ray Train, which persists them in
  the run's storage path and keeps them by the same rule (launch.py sets it from TrainConfig).

Both append every metrics row rank 0 sees to `<out>/metrics.jsonl`, offer the checkpoints a
run may resume from (newest first: `resume`, which skips corrupt ones) and say whether a
graceful stop was asked for (interrupt.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raylm import interrupt
from raylm.train import checkpoint as ckpt


_sink: dict = {"send": None, "row": None}  # RaySession on rank 0: lines and metrics rows to the driver


def say(line: str) -> None:
    """One progress line: in a Ray Train worker (rank 0) to the driver through the run's channel
    actor (launch.py), which prints it whatever reaches the terminal of the workers' own output;
    else on stdout. Not print(): in a Ray Train V2 worker print is patched to log through the root
    logger and also, because Ray wraps the worker's sys.stdout, to tee to stdout (twice)."""
    if _sink["send"] is not None:
        _sink["send"](line)
        return
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _append_jsonl(path: Path, row: dict) -> None:
    """One metrics row, stamped with the wall-clock time it was written (`time`, Unix seconds:
    start-up and evaluation costs can be read off a run's rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({**row, "time": round(time.time(), 3)}) + "\n")


def _step_of(p: Path) -> int:
    return int(p.name.removeprefix("step-"))


def resume(candidates: Iterator[Path], load: Callable[[Path], Any], rank: int = 0) -> tuple[Path | None, Any]:
    """(checkpoint, load(checkpoint)) for the newest candidate that is whole; (None, None) when
    there is none. A checkpoint whose files do not match its checksums, or that fails to load,
    is skipped with a warning; one of another model (CheckpointMismatch) is an error. Every rank
    sees the same candidates and checks, so all ranks pick the same checkpoint."""
    skipped = []
    for path in candidates:
        bad = ckpt.verify(path)
        if not bad:
            try:
                return path, load(path)
            except ckpt.CheckpointMismatch:
                raise
            except Exception as e:  # noqa: BLE001 -- truncated safetensors / torch zip / json: corrupt
                bad = [f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"]
        skipped.append(path)
        if rank == 0:
            say(f"[raylm] warning: skipping corrupt checkpoint {path} ({', '.join(bad)}); trying the one before")
    if skipped:
        raise ValueError(f"no usable checkpoint to resume from: {len(skipped)} corrupt (newest {skipped[0]}); "
                         f"rerun with --overwrite to start over")
    return None, None


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

    def resume_candidates(self) -> Iterator[Path]:
        return iter(reversed(self.checkpoints()))

    def should_stop(self) -> bool:
        return interrupt.requested()

    def log(self, metrics: dict) -> None:
        """Metrics between evaluations: kept locally (and logged to experiment tracking, if on:
        this session runs in the driver's process)."""
        from raylm import tracking

        self.history.append(metrics)
        _append_jsonl(Path(self.dir) / "metrics.jsonl", metrics)
        tracking.log_rows([metrics])

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
    """Inside a Ray Train worker: rank and world from Ray Train's context, checkpoints to Ray Train.

    `run_dir` is the Ray Train run's folder (local path or URI): besides the newest checkpoint
    Ray Train restores, the older ones its snapshot lists are resume candidates. `stop_flag` is
    the driver's stop actor (launch.py), polled at most once a second. With `out` (or the
    TensorBoard folder) on an object store, rank 0 writes them on this node's disk (`scratch`)
    and uploads what changed at every report."""

    POLL_S = 1.0

    def __init__(self, out: str, run_dir: str | None = None, stop_flag=None, scratch: str | None = None,
                 tb_dir: str | None = None):
        import ray.train

        from raylm import storage

        ctx = ray.train.get_context()
        self.rank, self.world, self.local_rank = ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank()
        local = storage.work_dir(out, scratch)
        self.metrics_file = local / "metrics.jsonl"  # rank 0 keeps a plain copy beside Ray's
        self.mirrors = [storage.Mirror(local, out)]
        if tb_dir:
            self.mirrors.append(storage.Mirror(storage.work_dir(tb_dir, scratch), tb_dir))
        self.run_dir, self.stop_flag = run_dir, stop_flag
        if stop_flag is not None and self.rank == 0:
            _sink["send"], _sink["row"] = stop_flag.say.remote, stop_flag.row.remote
        self._open: list = []  # as_directory() contexts: local copies kept for the run
        self._stop, self._polled = False, 0.0

    def _local(self, checkpoint) -> Path:
        c = checkpoint.as_directory()  # a local copy (downloaded if storage is remote)
        self._open.append(c)
        return Path(c.__enter__())

    def resume_candidates(self) -> Iterator[Path]:
        import ray.train

        newest = ray.train.get_checkpoint()
        if newest is None:
            return
        yield self._local(newest)
        for older in self._older_than(newest):
            yield self._local(older)

    def _older_than(self, newest) -> list:
        """The run's other recorded checkpoints, newest step first (Ray Train's snapshot)."""
        import ray.train

        from raylm.storage import resolve

        if not self.run_dir:
            return []
        fs, base = resolve(self.run_dir)
        try:
            with fs.open_input_stream(f"{base}/checkpoint_manager_snapshot.json") as f:
                results = json.loads(f.read())["checkpoint_results"]
        except (OSError, ValueError, KeyError):
            return []
        results.sort(key=lambda r: r.get("metrics", {}).get("step", -1), reverse=True)
        name = Path(newest.path).name
        return [ray.train.Checkpoint(f"{base}/{r['checkpoint_dir_name']}", filesystem=fs)
                for r in results if r["checkpoint_dir_name"] != name]

    def should_stop(self) -> bool:
        import ray

        if self.stop_flag is not None and not self._stop and time.monotonic() - self._polled >= self.POLL_S:
            self._polled = time.monotonic()
            try:
                self._stop = bool(ray.get(self.stop_flag.get.remote(), timeout=10))
            except Exception:  # noqa: BLE001 -- the driver (and its flag) is gone: training goes on
                self.stop_flag = None
        return self._stop

    def log(self, metrics: dict) -> None:
        """Metrics between evaluations: rank 0 appends them to metrics.jsonl (no Ray call, no barrier)."""
        if self.rank == 0:
            _append_jsonl(self.metrics_file, metrics)
            if _sink["row"] is not None:  # to the driver, which logs it to experiment tracking
                _sink["row"](metrics)

    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        """At evaluations: metrics (and the checkpoint) to Ray Train, which Tune sees too. A
        report is a barrier with the controller: call it on every rank, at evaluations only."""
        import ray.train

        self.log(metrics)
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        # named by step, so a checkpoint folder says what it holds (the final one of a fine-tune too)
        name = f"checkpoint_step-{metrics['step']:06d}{'-final' if metrics.get('final') else ''}"
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name if checkpoint else None)
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if self.rank == 0:
            for mirror in self.mirrors:
                mirror()
