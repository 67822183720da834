"""tracking: config checks, where the default MLflow store goes, runs logged through MlflowClient
(a real SQLite store under tmp_path; no Ray)."""

from __future__ import annotations

import time

import pytest

from raylm import tracking
from raylm.tracking import TrackingConfig


def test_config_checks():
    with pytest.raises(ValueError, match="none, mlflow or wandb"):
        TrackingConfig(backend="neptune")
    with pytest.raises(ValueError, match="wandb_mode"):
        TrackingConfig(backend="wandb", wandb_mode="cloud")
    with pytest.raises(ValueError, match="project"):
        TrackingConfig(backend="mlflow", project="")


def test_default_store_is_under_out_and_object_stores_need_a_uri(tmp_path):
    uri, artifacts = tracking.store(TrackingConfig(backend="mlflow"), str(tmp_path / "run"))
    assert uri == f"sqlite:///{tmp_path / 'run' / 'mlruns' / 'mlflow.db'}"
    assert artifacts == (tmp_path / "run" / "mlruns" / "artifacts").as_uri()
    assert tracking.store(TrackingConfig(backend="mlflow", uri="http://mlflow:5000"), "s3://b/run") == \
        ("http://mlflow:5000", None)
    with pytest.raises(ValueError, match="tracking.uri"):
        tracking.store(TrackingConfig(backend="mlflow"), "s3://bucket/run")


def test_a_stage_run_logs_params_rows_and_status(tmp_path):
    from mlflow.tracking import MlflowClient

    cfg = TrackingConfig(backend="mlflow", tags={"team": "x"})
    out = str(tmp_path / "run")
    with tracking.run(cfg, out, "train", {"train": {"optim": {"lr": 0.001}}, "seed": 7}) as r:
        tracking.log_rows([{"step": 10, "loss": 2.5, "early_stopped": False}, {"step": 20, "loss": 2.0,
                           "val_loss": float("nan")}])
    with pytest.raises(KeyboardInterrupt), tracking.run(cfg, out, "eval", {}):
        raise KeyboardInterrupt
    tracking.log_rows([{"step": 30, "loss": 1.0}])  # no active run: nothing, no error
    client = MlflowClient(tracking.store(cfg, out)[0])
    got = client.get_run(r.run_id)
    assert got.data.params == {"train.optim.lr": "0.001", "seed": "7"}
    assert got.info.status == "FINISHED" and got.data.tags["team"] == "x" and got.data.tags["raylm.stage"] == "train"
    assert [(m.step, m.value) for m in client.get_metric_history(r.run_id, "loss")] == [(10, 2.5), (20, 2.0)]
    assert "val_loss" not in got.data.metrics and "early_stopped" not in got.data.metrics  # nan, bool: skipped
    statuses = {x.data.tags["raylm.stage"]: x.info.status for x in client.search_runs([got.info.experiment_id])}
    assert statuses == {"train": "FINISHED", "eval": "KILLED"}


def wandb_log_records(path) -> list[bytes]:
    """The records of a .wandb file: W&B's LevelDB log format (a 7-byte header ":W&B", magic,
    version, then 32 KiB blocks of records: crc32 (4), length (2), type (1: full, 2: first,
    3: middle, 4: last), data), read here because wandb 0.31 ships no Python reader."""
    import struct

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a .wandb file"
    out, part, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            part = chunk
        elif kind == 3:
            part += chunk
        elif kind == 4:
            out.append(part + chunk)
        else:  # zero padding at the end of the file
            break
    return out


def wandb_records(run_dir):
    """(history rows, config, files) of an offline W&B run, read back from its .wandb file."""
    import json

    from wandb.proto import wandb_internal_pb2

    history, config = [], {}
    for data in wandb_log_records(next(run_dir.glob("run-*.wandb"))):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "run":  # the run record carries the config given to wandb.init
            config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
    files = {p.name for p in (run_dir / "files").iterdir()}
    return history, config, files


def test_a_wandb_offline_run_logs_config_rows_and_files(tmp_path):
    cfg = TrackingConfig(backend="wandb", wandb_mode="offline", tags={"team": "x"})
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.json").write_text("{}")
    with tracking.run(cfg, str(out), "train", {"train": {"optim": {"lr": 0.001}}, "seed": 7}) as r:
        tracking.log_rows([{"step": 10, "loss": 2.5, "early_stopped": False}, {"step": 20, "loss": 2.0}])
        r.log_artifacts([str(out / "result.json")])
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # wandb-core (its own process) may still be writing the .wandb file when finish() returns
    deadline = time.monotonic() + 20
    while len((history := wandb_records(runs[0]))[0]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    history, config, files = history
    assert [(h["_step"], h["loss"]) for h in history] == [(10, 2.5), (20, 2.0)]
    assert "early_stopped" not in history[0]
    assert config["train"]["optim"]["lr"] == 0.001 and config["provenance"]["raylm"]
    assert "result.json" in files
