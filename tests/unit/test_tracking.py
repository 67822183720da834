"""tracking: config checks, where the default MLflow store goes, runs logged through MlflowClient
(a real SQLite store under tmp_path; no Ray)."""

from __future__ import annotations

import pytest

from raylm import tracking
from raylm.tracking import TrackingConfig


def test_config_checks():
    with pytest.raises(ValueError, match="wandb is not implemented"):
        TrackingConfig(backend="wandb")
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
