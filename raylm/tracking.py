"""Experiment tracking: MLflow or Weights & Biases (or none), logged from the driver.

    tracking:
      backend: mlflow            # none | mlflow | wandb
      uri: null                  # null = a SQLite store under <out>/mlruns, artifacts beside it
      project: raylm             # the MLflow experiment
      run_name: null             # null = <out folder>-<stage>
      tags: {team: data}
      wandb_mode: online         # W&B only: offline writes under <out>/wandb

`raylm train`, `raylm finetune` and `raylm eval` each open one run: its params are the resolved
config (flattened, dotted keys), its tags the provenance (versions, commit, host, command),
every metrics row the training loop writes (each `train.log_interval` steps and every
evaluation) is logged with its step, and at the end the stage's result.json / report files are
artifacts. A Tune sweep opens a parent run and one child run per trial (Ray's
`MLflowLoggerCallback`, tagged with the parent's id).

Logged from the driver, not from rank 0: rank 0 sends each row through the run's channel actor
(launch.py), as it does its progress lines, so workers need neither MLflow nor a path to the
store, and a cluster whose only shared storage is an object store tracks like a laptop. A
tracking server (`uri: http://...`) works the same way. The default store is SQLite because
MLflow 3 refuses its plain-file store; it needs `pip install 'raylm[tracking]'`.

`backend: wandb` logs the same to a W&B project (`wandb_mode: offline` keeps runs under
`<out>/wandb` for `wandb sync`); a sweep's trials form a W&B group (W&B has no parent runs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from raylm import storage
from raylm.outputs import flatten


@dataclass
class TrackingConfig:
    backend: Literal["none", "mlflow", "wandb"] = "none"  # where runs are tracked (needs raylm[tracking])
    uri: str | None = None          # MLflow tracking URI; None = sqlite:///<out>/mlruns/mlflow.db
    project: str = "raylm"          # the MLflow experiment / the W&B project the runs go to
    run_name: str | None = None     # None = <out folder>-<stage> (a Tune trial: its trial id)
    tags: dict[str, str] = field(default_factory=dict)  # added to every run (W&B: as "key:value" tags)
    wandb_mode: Literal["online", "offline"] = "online"  # W&B: offline keeps runs under <out>/wandb
                                                         # (`wandb sync` uploads them later)

    def __post_init__(self):
        if self.backend not in ("none", "mlflow", "wandb"):
            raise ValueError(f"tracking.backend must be none, mlflow or wandb, got {self.backend!r}")
        if self.wandb_mode not in ("online", "offline"):
            raise ValueError(f"tracking.wandb_mode must be online or offline, got {self.wandb_mode!r}")
        if not self.project:
            raise ValueError("tracking.project must not be empty")


def store(cfg: TrackingConfig, out: str) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment): cfg.uri, else a SQLite store and an
    artifact folder under `<out>/mlruns` (a local `out` only: with out on an object store, set uri)."""
    if cfg.uri:
        return cfg.uri, None
    if storage.is_remote(storage.location(out)):
        raise ValueError("tracking.uri: out is on an object store, where MLflow's SQLite store cannot live; "
                         "set tracking.uri (a tracking server, or sqlite:////a/local/path.db)")
    root = Path(storage.location(out)).resolve() / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def _client(cfg: TrackingConfig, out: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ValueError("tracking.backend is mlflow but MLflow is not installed: pip install 'raylm[tracking]'") \
            from None
    from raylm import console

    if not console.verbose():  # MLflow's own INFO lines (creating tables, ...) with -v only
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    uri, artifacts = store(cfg, out)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(cfg.project)
    exp_id = exp.experiment_id if exp else client.create_experiment(cfg.project, artifact_location=artifacts)
    return client, exp_id, uri


class MlflowRun:
    """One MLflow run through MlflowClient (no global mlflow state: runs of one process never mix)."""

    def __init__(self, cfg: TrackingConfig, out: str, stage: str, params: dict, parent_id: str | None = None):
        from raylm import provenance

        self.client, exp_id, self.uri = _client(cfg, out)
        prov = provenance.record()
        tags = {**{f"raylm.{k}": str(v) for k, v in flatten(prov).items()}, "raylm.stage": stage, **cfg.tags}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        name = cfg.run_name or f"{Path(storage.location(out).rstrip('/')).name}-{stage}"
        self.run_id = self.client.create_run(exp_id, run_name=name, tags=tags).info.run_id
        self.log_params(params)

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_rows(self, rows: list[dict]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(r.get("step", 0))) for r in rows for k, v in r.items()
                   if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def log_artifacts(self, paths: list[str]) -> None:
        for p in paths:
            local = storage.location(p)
            if not storage.is_remote(local) and Path(local).is_file():
                self.client.log_artifact(self.run_id, local)

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


class WandbRun:
    """One Weights & Biases run (wandb.init with reinit="create_new": runs of one process never mix)."""

    def __init__(self, cfg: TrackingConfig, out: str, stage: str, params: dict):
        from raylm import console, provenance

        try:
            import wandb
        except ImportError:
            raise ValueError("tracking.backend is wandb but wandb is not installed: pip install 'raylm[tracking]'") \
                from None
        local = storage.location(out)
        if storage.is_remote(local) and cfg.wandb_mode == "offline":
            raise ValueError("tracking.wandb_mode offline keeps runs under out, which is on an object store: "
                             "use wandb_mode online")
        where = None if storage.is_remote(local) else str(Path(local).resolve())
        if where:
            Path(where).mkdir(parents=True, exist_ok=True)
        name = cfg.run_name or f"{Path(local.rstrip('/')).name}-{stage}"
        self.run = wandb.init(project=cfg.project, name=name, job_type=stage, dir=where, mode=cfg.wandb_mode,
                              config={**params, "provenance": provenance.record()},
                              tags=[stage, *(f"{k}:{v}" for k, v in cfg.tags.items())], reinit="create_new",
                              settings=wandb.Settings(silent=not console.verbose(), console="off"))

    def log_rows(self, rows: list[dict]) -> None:
        for r in rows:
            values = {k: v for k, v in r.items() if k != "step" and isinstance(v, int | float)
                      and not isinstance(v, bool) and math.isfinite(v)}
            if values:
                self.run.log(values, step=int(r.get("step", 0)))

    def log_artifacts(self, paths: list[str]) -> None:
        for p in paths:
            local = storage.location(p)
            if not storage.is_remote(local) and Path(local).is_file():
                self.run.save(local, base_path=str(Path(local).parent), policy="now")

    def set_tag(self, key: str, value: str) -> None:
        self.run.summary[key] = value

    def end(self, status: str) -> None:
        self.run.finish(exit_code={"FINISHED": 0, "KILLED": 130}.get(status, 1))


_active: dict = {"run": None}


def log_rows(rows: list[dict]) -> None:
    """Metrics rows of the running stage (from launch.py's channel or an in-process loop)."""
    if _active["run"] is not None and rows:
        _active["run"].log_rows(rows)


@contextlib.contextmanager
def run(cfg: TrackingConfig, out: str, stage: str, params: dict):
    """The tracked run of one stage (None with backend none); FINISHED, KILLED (Ctrl-C) or FAILED."""
    if cfg.backend == "none":
        yield None
        return
    r = (MlflowRun if cfg.backend == "mlflow" else WandbRun)(cfg, out, stage, params)
    _active["run"] = r
    status = "FAILED"
    try:
        yield r
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _active["run"] = None
        r.end(status)


def tune_callbacks(cfg: TrackingConfig, out: str, params: dict) -> tuple[list, MlflowRun | None]:
    """Ray Tune logger callbacks for a sweep: one run per trial; with MLflow, children of a parent
    run of the sweep (returned, to be ended by the caller); with W&B, one group per sweep."""
    if cfg.backend == "none":
        return [], None
    if cfg.backend == "wandb":  # W&B has no parent runs: the trials share a group named by the sweep
        from ray.air.integrations.wandb import WandbLoggerCallback

        if cfg.wandb_mode == "offline":  # Ray's callback asks for an API key unless WANDB_MODE says offline
            os.environ["WANDB_MODE"] = "offline"
        where = storage.location(out)
        extra = {} if storage.is_remote(where) else {"dir": str(Path(where).resolve())}
        tags = ["tune-trial", *(f"{k}:{v}" for k, v in cfg.tags.items())]
        return [WandbLoggerCallback(project=cfg.project, group=f"{Path(where.rstrip('/')).name}-tune",
                                    mode=cfg.wandb_mode, tags=tags, **extra)], None
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    parent = MlflowRun(cfg, out, "tune", params)
    callback = MLflowLoggerCallback(tracking_uri=parent.uri, experiment_name=cfg.project,
                                    tags={**cfg.tags, "mlflow.parentRunId": parent.run_id, "raylm.stage": "tune-trial"},
                                    save_artifact=False)
    return [callback], parent
