"""The one place raylm starts a Ray Train run.

Pretraining and continued pretraining (trainer.py), classification fine-tuning
(classify_driver.py) and every Tune trial (tune/sweep.py) call `launch` with their worker
function, its typed arguments and the `TrainConfig`. Everything a run's placement and
persistence depend on is read here, once, from that config:

- workers, CPUs per worker, a GPU each (NCCL) or none (gloo), extra Ray resources and a node
  label selector per worker;
- failures Ray Train recovers from (restart from the newest checkpoint);
- checkpoints kept: the newest `keep_checkpoints`, or the best by val_loss plus the newest;
- storage: where Ray Train persists the run (a local path or s3:// gs://); rerunning with the
  same storage path and name resumes from its newest checkpoint;
- environment variables for the workers.

Workers receive the typed arguments (a dataclass), never a dict.

Ctrl-C / SIGTERM (interrupt.py): `trainer.fit()` runs in a helper thread, so Ray Train does not
install its own SIGINT handler (which aborts the run and loses the checkpoint in flight); the
main thread relays a stop request to the workers through a small actor, they checkpoint at the
next step boundary and return, and Ray Train records that checkpoint like any other.
Checkpoint folders Ray Train's snapshot does not list (written while a run was killed) are
removed before and after each run, so they never pile up past `keep_checkpoints`.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raylm import console, interrupt, tracking
from raylm.storage import resolve
from raylm.train.checkpoint import uri_of
from raylm.train.config import TrainConfig
from raylm.train.session import RaySession


@dataclass
class Launched:
    """What a finished Ray Train run left: its last metrics and checkpoints (as URIs)."""

    metrics: dict
    checkpoint: str | None            # the newest checkpoint: local path, or s3:// gs:// URI
    best_checkpoint: str | None       # keep_by val_loss: the lowest val_loss; else None

    def as_dict(self) -> dict:
        out = {"metrics": self.metrics, "checkpoint": self.checkpoint}
        if self.best_checkpoint:
            out["best_checkpoint"] = self.best_checkpoint
        return out


def storage_root(cluster_storage: str | None, out: str | Path, stage: str) -> str:
    """Where a stage's Ray Train / Tune runs persist: `<cluster.storage_path>/<out name>/<stage>`
    when the cluster has shared storage, else `<out>/<stage>` (a local folder or an object store)."""
    from raylm.storage import join

    out = str(out)
    name = out.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if cluster_storage:
        return join(cluster_storage, name, stage)
    return join(out if "://" in out else str(Path(out).resolve()), stage)


def _entry(worker: Callable, args: Any, run_dir: str, stop_flag) -> None:
    """Runs in every Ray Train worker: the loop with its typed arguments and a Ray session."""
    worker(args, RaySession(args.out, run_dir, stop_flag, getattr(args, "scratch", None),
                            getattr(args, "tb_dir", None)))


class StopFlag:
    """The run's channel between driver and workers (a Ray actor, num_cpus=0): one bool the driver
    sets and the workers poll, and rank 0's progress lines and metrics rows, which the driver
    drains to print and to log to experiment tracking (tracking.py)."""

    def __init__(self):
        self.value = False
        self.lines: list[str] = []
        self.rows: list[dict] = []

    def set(self) -> None:
        self.value = True

    def get(self) -> bool:
        return self.value

    def say(self, line: str) -> None:
        self.lines.append(line)

    def row(self, metrics: dict) -> None:
        self.rows.append(metrics)

    def drain(self) -> tuple[list[str], list[dict]]:
        out, self.lines, self.rows = (self.lines, self.rows), [], []
        return out


def prune_orphans(run_dir: str) -> list[str]:
    """Delete `checkpoint_*` folders of a Ray Train run that its snapshot does not list (what a
    killed run left between writing a checkpoint and recording it); returns their names."""
    import pyarrow.fs as pafs

    fs, base = resolve(run_dir)
    try:
        with fs.open_input_stream(f"{base}/checkpoint_manager_snapshot.json") as f:
            known = {r["checkpoint_dir_name"] for r in json.loads(f.read())["checkpoint_results"]}
        entries = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except (OSError, ValueError, KeyError):
        return []  # no snapshot yet: nothing is known to be an orphan
    orphans = [e.base_name for e in entries
               if e.type == pafs.FileType.Directory and e.base_name.startswith("checkpoint_")
               and e.base_name not in known]
    for name in orphans:
        fs.delete_dir(f"{base}/{name}")
    return orphans


def worker_resources(cfg: TrainConfig) -> dict[str, float]:
    """Ray resources one worker reserves: its CPUs, `gpus_per_worker` GPUs when use_gpu (a fraction
    shares one), and train.resources."""
    return {"CPU": cfg.cpus_per_worker, **({"GPU": cfg.gpus_per_worker} if cfg.use_gpu else {}), **cfg.resources}


HEALTH_CHECK_INTERVAL_S = 0.5


def launch(worker: Callable, args: Any, cfg: TrainConfig, *, storage_path: str, name: str,
           env: dict[str, str] | None = None, callbacks: list | None = None,
           start_timeout_s: int | None = None) -> Launched:
    """Run `worker(args, RaySession)` on `cfg.num_workers` Ray Train workers; block until done.

    `args` must have an `out` attribute (the worker's local output folder for metrics.jsonl).
    `storage_path` / `name` locate the run (see `storage_root`); `callbacks` are Ray Train
    callbacks (Tune's report forwarding); `start_timeout_s` overrides how long Ray Train waits
    for the worker group to start (60 s by default), read from this process's environment."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if cfg.num_workers < 1:
        raise ValueError("launch needs train.num_workers >= 1 (0 runs in this process without Ray)")
    if start_timeout_s:
        os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(start_timeout_s))
    # Ray Train's controller learns that the workers finished at its next status poll, every 2 s
    # by default: ~3 s of a run's wall clock went to that wait (benchmarks/cpu_step.py). Polling
    # every 0.5 s costs one small actor call per worker per poll. A user's value wins. Not inside
    # a Tune trial (callbacks): there a run that returns sooner after its last report races
    # Tune's relay of that report (Ray 2.58's _TrainSession: the trial's main thread blocks
    # putting it into a result queue already holding the trial's end), and the sweep hangs.
    if not callbacks:
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(HEALTH_CHECK_INTERVAL_S))
    import ray

    run_dir = f"{storage_path.rstrip('/')}/{name}"
    prune_orphans(run_dir)
    stop_flag = ray.remote(num_cpus=0)(StopFlag).remote()
    trainer = TorchTrainer(
        functools.partial(_entry, worker, args, run_dir, stop_flag),
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=worker_resources(cfg),
                                     label_selector=cfg.label_selector or None),
        run_config=RunConfig(
            name=name, storage_path=storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.keep_checkpoints or None,
                checkpoint_score_attribute="val_loss" if cfg.keep_by == "val_loss" else None,
                checkpoint_score_order="min"),
            worker_runtime_env={"env_vars": env} if env else None,
            logging_config=console.train_logging_config(),
            callbacks=callbacks or None),
    )
    try:
        result = _fit_relaying_interrupts(trainer, stop_flag)
    finally:
        prune_orphans(run_dir)
    best = None
    if cfg.keep_by == "val_loss" and result.best_checkpoints:
        best = uri_of(result.get_best_checkpoint("val_loss", "min"))
    return Launched(metrics=result.metrics or {}, checkpoint=uri_of(result.checkpoint) if result.checkpoint else None,
                    best_checkpoint=best)


def _fit_relaying_interrupts(trainer, stop_flag):
    """trainer.fit() in a helper thread; a graceful stop request (interrupt.py) in the main
    thread is passed to the workers through `stop_flag`. A second signal raises Interrupted here
    (the daemon thread dies with the process, and Ray's shutdown ends the run)."""
    box: dict = {}

    def fit() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 -- re-raised in the main thread below
            box["error"] = e

    import ray

    def show_lines() -> None:
        try:
            lines, rows = ray.get(stop_flag.drain.remote(), timeout=10)
        except Exception:  # noqa: BLE001 -- progress lines are best effort; the run's outcome is not
            return
        for line in lines:
            console.say(line)
        tracking.log_rows(rows)

    thread = threading.Thread(target=fit, name="raylm-train-fit", daemon=True)
    relayed, shown = False, time.monotonic()
    with interrupt.graceful():
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if interrupt.requested() and not relayed:
                stop_flag.set.remote()
                relayed = True
            if time.monotonic() - shown >= 1.0:
                show_lines()
                shown = time.monotonic()
    show_lines()
    if "error" in box:
        raise box["error"]
    return box["result"]


def raise_if_stopped(metrics: dict | None) -> None:
    """After a run returns: raise Interrupted when it stopped on a signal (its checkpoint saved)."""
    if interrupt.requested():
        step = (metrics or {}).get("step")
        where = f"at step {step}, checkpoint saved" if step is not None else "before the first step"
        raise interrupt.Interrupted(f"stopped {where}: rerun the same command to resume", interrupt.signum())
