"""Ray Train glue: TorchTrainer, ScalingConfig, FailureConfig, RunConfig around loop.train_worker.

Checkpoints are reported to Ray Train, which persists them under
`<out>/train/ray/<run>/checkpoint_*` (the storage path can be any pyarrow filesystem URI) and
keeps the newest `train.keep_checkpoints`. Running the same command again with the same `out`
resumes from the newest checkpoint (Ray Train V2 restores its checkpoint manager from storage).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from raylm.model.gpt import GPTConfig
from raylm.train.checkpoint import uri_of
from raylm.train.config import TrainConfig
from raylm.train.loop import LocalSession, resolve_model_config, train_worker

RUN_NAME = "run"


class RaySession:
    """What loop.train_worker needs from Ray Train: rank, world, checkpoint in, checkpoint out."""

    def __init__(self, out: str):
        import ray.train

        ctx = ray.train.get_context()
        self.rank, self.world, self.local_rank = ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank()
        self.metrics_file = Path(out) / "metrics.jsonl"  # rank 0 keeps a plain copy beside Ray's

    def latest_checkpoint(self):
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
            self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_file, "a") as f:
                f.write(json.dumps(metrics) + "\n")

    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        """At evaluations: metrics (and the checkpoint) to Ray Train, which Tune sees too."""
        import ray.train

        self.log(metrics)
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)
        if checkpoint_dir is not None:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _ray_worker(config: dict) -> None:
    train_worker(config, RaySession(config["out"]))


def fit(model_cfg: GPTConfig, cfg: TrainConfig, data_dir: str, out: str, seed: int,
        init_from: str | None = None, storage_path: str | None = None, env: dict | None = None) -> dict:
    """Train; returns {"metrics": last metrics, "checkpoint": path of the newest checkpoint}."""
    resolve_model_config(model_cfg, data_dir)  # fail fast on a vocab mismatch or missing manifest
    out_dir = Path(out)
    config = {"model": model_cfg, "train": cfg, "data_dir": str(data_dir), "seed": seed, "init_from": init_from,
              "out": str(out_dir), "tb_dir": str(out_dir / "tb")}
    if cfg.num_workers == 0:
        session = LocalSession(dir=str(out_dir), keep=cfg.keep_checkpoints, keep_by=cfg.keep_by)
        metrics = train_worker(config, session)
        latest = session.latest_checkpoint()
        result = {"metrics": metrics, "checkpoint": str(latest) if latest else None}
    else:
        result = _fit_ray(config, cfg, storage_path or str(out_dir.resolve() / "ray"), env)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _fit_ray(config: dict, cfg: TrainConfig, storage_path: str, env: dict | None = None) -> dict:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": cfg.cpus_per_worker, **cfg.resources}
    if cfg.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources,
                                     label_selector=cfg.label_selector or None),
        run_config=RunConfig(
            name=RUN_NAME, storage_path=storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.keep_checkpoints or None,
                checkpoint_score_attribute="val_loss" if cfg.keep_by == "val_loss" else None,
                checkpoint_score_order="min"),
            worker_runtime_env={"env_vars": env} if env else None),
    )
    result = trainer.fit()
    out = {"metrics": result.metrics, "checkpoint": uri_of(result.checkpoint) if result.checkpoint else None}
    if cfg.keep_by == "val_loss" and result.best_checkpoints:
        out["best_checkpoint"] = uri_of(result.get_best_checkpoint("val_loss", "min"))
    return out
