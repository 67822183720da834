"""`raylm train` (and continued pretraining): the pretraining loop in this process or on Ray Train.

With `train.num_workers >= 1` the run goes through `launch.launch`, and Ray Train persists its
checkpoints under `<storage>/run/checkpoint_*` (storage: `cluster.storage_path`, any pyarrow
file system URI, else the stage folder) and keeps them as `train.keep_checkpoints` /
`train.keep_by` say. Running the same command again with the same `out` resumes from the newest
checkpoint (Ray Train V2 restores its checkpoint manager from storage).
"""

from __future__ import annotations

import json
from pathlib import Path

from raylm import atomic, interrupt, provenance, storage
from raylm.model.gpt import GPTConfig
from raylm.train.config import TrainConfig
from raylm.train.launch import launch, raise_if_stopped
from raylm.train.loop import LMRun, resolve_model_config, train_worker
from raylm.train.session import LocalSession

RUN_NAME = "run"


def tokenizer_text(data_dir: str) -> str | None:
    """The shards' tokenizer.json, which every checkpoint of a run carries; None when absent."""
    from raylm.data.shards import read_manifest

    p = storage.join(data_dir, read_manifest(data_dir).get("tokenizer", "tokenizer.json"))
    return storage.read_text(p) if storage.is_file(p) else None


def local_path(path: str) -> str:
    """A local path made absolute (Ray workers do not share the driver's working directory);
    an object-store URI as it is."""
    return path if storage.is_remote(path) else str(Path(path).resolve())


def fit(model_cfg: GPTConfig, cfg: TrainConfig, data_dir: str, out: str, seed: int,
        init_from: str | None = None, storage_path: str | None = None, env: dict | None = None,
        scratch: str | None = None, lora=None) -> dict:
    """Train; writes and returns {"metrics": last metrics, "checkpoint": the newest checkpoint}
    (plus "best_checkpoint" with keep_by val_loss on Ray). `out` and `data_dir` may be on an
    object store (then Ray Train workers copy the shards to node-local `scratch`)."""
    resolve_model_config(model_cfg, data_dir)  # fail fast on a vocab mismatch or missing manifest
    out, data_dir = local_path(str(out)), local_path(str(data_dir))
    if cfg.num_workers == 0 and storage.is_remote(out):
        raise ValueError(f"out={out}: train.num_workers 0 keeps checkpoints on this machine's disk; with out on "
                         f"an object store use train.num_workers >= 1 (Ray Train stores checkpoints there)")
    run = LMRun(model=model_cfg, train=cfg, data_dir=data_dir, out=out, seed=seed, init_from=init_from,
                tb_dir=storage.join(out, "tb"), tokenizer_json=tokenizer_text(data_dir), scratch=scratch,
                lora=lora)
    if cfg.num_workers == 0:
        session = LocalSession(dir=out, keep=cfg.keep_checkpoints, keep_by=cfg.keep_by)
        with interrupt.graceful():
            metrics = train_worker(run, session)
        latest = session.latest_checkpoint()
        result = {"metrics": metrics, "checkpoint": str(latest) if latest else None}
    else:
        result = launch(train_worker, run, cfg, storage_path=storage_path or out, name=RUN_NAME, env=env).as_dict()
    storage.makedirs(out)
    result["provenance"] = provenance.record()
    atomic.write_text(storage.join(out, "result.json"), json.dumps(result, indent=2, default=str))
    raise_if_stopped(result["metrics"])
    return result
