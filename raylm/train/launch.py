"""The one place raylm starts a Ray Train run.

Pretraining and continued pretraining (trainer.py), classification fine-tuning
(classify_loop.py) and every Tune trial (tune/sweep.py) call `launch` with their worker
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
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raylm.train.checkpoint import uri_of
from raylm.train.config import TrainConfig
from raylm.train.session import RaySession


@dataclass
class Launched:
    """What a finished Ray Train run left: its last metrics and checkpoints (as URIs)."""

    metrics: dict
    checkpoint: str | None            # the newest checkpoint: local path, or s3:// gs:// URI
    best_checkpoint: str | None       # keep_by val_loss: the lowest val_loss; else None
    ray_checkpoint: Any = None        # the newest as a ray.train.Checkpoint (as_directory() reads it anywhere)

    def as_dict(self) -> dict:
        out = {"metrics": self.metrics, "checkpoint": self.checkpoint}
        if self.best_checkpoint:
            out["best_checkpoint"] = self.best_checkpoint
        return out


def storage_root(cluster_storage: str | None, out: str | Path, stage: str) -> str:
    """Where a stage's Ray Train / Tune runs persist: `<cluster.storage_path>/<out name>/<stage>`
    when the cluster has shared storage, else `<out>/<stage>` on this machine."""
    if cluster_storage:
        return f"{cluster_storage.rstrip('/')}/{Path(out).name}/{stage}"
    return str(Path(out).resolve() / stage)


def _entry(worker: Callable, args: Any) -> None:
    """Runs in every Ray Train worker: the loop with its typed arguments and a Ray session."""
    worker(args, RaySession(args.out))


def worker_resources(cfg: TrainConfig) -> dict[str, float]:
    """Ray resources one worker reserves: its CPUs, a GPU when use_gpu, and train.resources."""
    return {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {}), **cfg.resources}


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
    trainer = TorchTrainer(
        functools.partial(_entry, worker, args),
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
            callbacks=callbacks or None),
    )
    result = trainer.fit()
    best = None
    if cfg.keep_by == "val_loss" and result.best_checkpoints:
        best = uri_of(result.get_best_checkpoint("val_loss", "min"))
    return Launched(metrics=result.metrics or {}, checkpoint=uri_of(result.checkpoint) if result.checkpoint else None,
                    best_checkpoint=best, ray_checkpoint=result.checkpoint)
