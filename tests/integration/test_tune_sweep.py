"""A real ASHA sweep on one shared local Ray (2 CPUs): 4 trials of 1 worker x 1 CPU, two at a
time, each a Ray Train run. Shows weak trials stopped before max_steps, their CPUs going to the
trials that start later, the report and a best.yaml that loads, and --resume re-running nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raylm import config as C
from raylm.root import RootConfig
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # ~2-3 min on 2 busy cores: Ray Train start-up dominates each trial


def _sweep(out, tiny_shards, max_steps: int, *extra: str) -> tuple[RootConfig, list[str], dict]:
    """configs/tune_tiny.yaml on the tiny shards: evaluations every 5 steps, rungs at 5, 10, ..."""
    from raylm.tune import sweep

    overrides = [
        f"out={out}", f"train.data_dir={tiny_shards}", f"train.max_steps={max_steps}", "train.eval_interval=5",
        "train.log_interval=5", "train.eval_batches=2", "train.schedule.warmup_steps=0",
        "train.schedule.min_lr=1.0e-6",  # below every swept lr: the schedule decays, never rises
        "tune.grace_period=5", "tune.reduction_factor=2", *extra,
    ]
    cfg = C.load(RootConfig, REPO / "configs" / "tune_tiny.yaml", overrides)
    return cfg, overrides, sweep.run(cfg)


def test_asha_sweep_stops_weak_trials_and_writes_best(ray_session, tiny_shards, tmp_path):
    from raylm.tune import sweep

    out = tmp_path / "run"
    cfg, overrides, res = _sweep(
        out, tiny_shards, 20,
        # Two good and two hopeless learning rates, in grid order: trials 3 and 4 can only start
        # once trials 1 and 2 have given their CPUs back.
        "tune.space={train.optim.lr: {grid: [3.0e-3, 1.0e-5, 2.0e-3, 1.0e-5]}}", "tune.num_samples=1",
        "tracking.backend=mlflow")

    trials = res["trials"]
    assert len(trials) == 4
    assert all(t["history"] and not t["error"] for t in trials), trials  # all four ran: CPUs were freed
    last = {t["trial_id"]: t["history"][-1]["step"] for t in trials}
    assert any(s < 20 for s in last.values()), last         # ASHA stopped at least one before the end
    assert any(s == 20 for s in last.values()), last
    best = res["best"]
    assert best["params"]["train.optim.lr"] in (3.0e-3, 2.0e-3)

    tune_dir, sweep_dir = out / "tune", out / "tune" / cfg.tune.name
    report = (sweep_dir / "report.md").read_text()
    assert "stopped at step" in report and best["trial_id"] in report
    assert (sweep_dir / "curves.png").is_file()
    assert len(list((tune_dir / "tb").iterdir())) == 4     # one TensorBoard run per trial
    loaded = C.load(RootConfig, sweep_dir / "best.yaml")   # what `raylm train best.yaml` reads
    assert res["best_config"] == str(sweep_dir / "best.yaml")
    assert Path(loaded.out) == sweep_dir / "best"
    assert loaded.train.optim.lr == best["params"]["train.optim.lr"]
    assert Path(loaded.train.data_dir) == Path(tiny_shards).resolve()

    # MLflow: the sweep is a parent run, each trial a child run with its reported metrics.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("raylm").experiment_id])
    parent = [r for r in runs if r.data.tags.get("raylm.stage") == "tune"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED" and len(children) == 4
    assert all(c.data.metrics.get("val_loss") for c in children)

    # --resume on the finished sweep keeps every trial and trains nothing more.
    lines = {p: len(p.read_text().splitlines()) for p in (tune_dir / "trials").glob("*/metrics.jsonl")}
    again = sweep.run(cfg, resume=True)
    assert sorted(t["trial_id"] for t in again["trials"]) == sorted(last)
    assert {p: len(p.read_text().splitlines()) for p in lines} == lines
    assert json.loads((sweep_dir / "trials.json").read_text())[0]["trial_id"] in last


@pytest.mark.parametrize("scheduler,searcher,arch", [("hyperband", "optuna", "decoder"),
                                                     ("median", "random", "encoder")])
def test_other_schedulers_and_optuna_run_end_to_end(ray_session, tiny_shards, tmp_path, scheduler, searcher, arch):
    """HyperBand with Optuna's TPE and median stopping with random search (over an encoder, whose
    trials report masked-token loss), as real sweeps: every trial reports, the searcher's samples
    stay inside the space, and a best.yaml comes out."""
    out = tmp_path / "run"
    _, _, res = _sweep(
        out, tiny_shards, 10, f"model.arch={arch}",
        "tune.space={train.optim.lr: {loguniform: [1.0e-4, 3.0e-3]}, model.dropout: {choice: [0.0, 0.1]}}",
        "tune.num_samples=3", f"tune.scheduler={scheduler}", f"tune.searcher={searcher}", f"tune.name={scheduler}",
        "tracking.backend=wandb", "tracking.wandb_mode=offline")
    trials = res["trials"]
    assert len(trials) == 3 and all(t["history"] and not t["error"] for t in trials), trials
    assert len(list((out / "wandb").glob("offline-run-*"))) == 3  # W&B: one offline run per trial
    for t in trials:
        assert 1.0e-4 <= t["params"]["train.optim.lr"] <= 3.0e-3 and t["params"]["model.dropout"] in (0.0, 0.1)
    best = C.load(RootConfig, res["best_config"])
    assert best.train.optim.lr == res["best"]["params"]["train.optim.lr"] and best.model.arch == arch
    assert (out / "tune" / scheduler / "report.md").is_file()
