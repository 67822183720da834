"""Sweep report, best-trial choice, and the sweep's Ray-free helpers (domains, schedulers)."""

from __future__ import annotations

import pytest

from raylm.tune.config import Param, TuneConfig
from raylm.tune.report import best_trial, relative_gap, status, steps_used, write_report


def _rec(tid, lr, curve, error=None):
    return {"trial_id": tid, "params": {"train.optim.lr": lr, "model.dropout": 0.1},
            "history": [{"step": s, "val_loss": v} for s, v in curve], "error": error}


RECORDS = [
    _rec("a", 3e-3, [(10, 3.0), (20, 2.5), (40, 2.1)]),
    _rec("b", 1e-5, [(10, 4.1)]),                     # stopped at the first rung
    _rec("c", 1e-3, [(10, 3.2), (20, 2.6), (40, 2.2)]),
    _rec("d", 2e-3, [(10, 2.9), (20, 2.0)]),          # best value, but stopped: not the best trial
    _rec("e", 5e-3, [], error="RayTaskError: boom"),
]


def test_best_trial_prefers_completed_trials_and_respects_mode():
    assert best_trial(RECORDS, "val_loss", "min", 40)["trial_id"] == "a"
    assert best_trial(RECORDS, "val_loss", "max", 40)["trial_id"] == "c"
    # no trial completed: best final value among those with results
    assert best_trial(RECORDS[:2], "val_loss", "min", 80)["trial_id"] == "a"
    assert best_trial([RECORDS[4]], "val_loss", "min", 40) is None


def test_status_and_steps_used():
    assert [status(r, 40) for r in RECORDS] == ["completed", "stopped at step 10", "completed",
                                                "stopped at step 20", "error"]
    assert steps_used(RECORDS) == 40 + 10 + 40 + 20


def test_report_lists_trials_stops_best_and_plots(tmp_path):
    best = best_trial(RECORDS, "val_loss", "min", 40)
    path = write_report(RECORDS, tmp_path, "val_loss", "min", 40, best)
    md = path.read_text()
    assert "**Best trial**: `a`" in md and "2.1000" in md
    assert "`b` at step 10" in md and "`d` at step 20" in md
    assert "Steps trained: 110 of 200 (55%" in md
    assert "RayTaskError: boom" in md
    assert "| `a` (best) | 0.1 | 0.003 | 40 | 2.1 | 2.1 | completed |" in md
    pytest.importorskip("matplotlib")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "param_train_optim_lr.png").is_file() and "![curves.png](curves.png)" in md


def test_relative_gap():
    assert relative_gap(2.02, 2.0) == pytest.approx(0.01)
    assert relative_gap(1.0, 0.0) == float("inf")


def test_domains_and_schedulers_without_a_cluster():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule
    from ray.tune.search.sample import Float, Integer

    from raylm.tune.sweep import build_scheduler, default_concurrency, plain, to_domain

    assert isinstance(to_domain(Param("train.optim.lr", "loguniform", [1e-4, 1e-2])), Float)
    dom = to_domain(Param("train.schedule.warmup_steps", "uniform", [0, 10], integer=True))
    assert isinstance(dom, Integer) and (dom.lower, dom.upper) == (0, 11)  # upper is exclusive in Tune
    assert to_domain(Param("train.batch_size", "grid", [8, 16])) == {"grid_search": [8, 16]}
    asha = build_scheduler(TuneConfig(), max_steps=600, eval_interval=100)
    assert isinstance(asha, ASHAScheduler) and asha._time_attr == "step" and asha._max_t == 600
    assert isinstance(build_scheduler(TuneConfig(scheduler="median"), 600, 100), MedianStoppingRule)
    assert isinstance(build_scheduler(TuneConfig(scheduler="none"), 600, 100), FIFOScheduler)
    with pytest.raises(ValueError, match="grace_period"):
        build_scheduler(TuneConfig(grace_period=700), 600, 100)

    from raylm.train.config import TrainConfig

    T = TrainConfig(num_workers=2, cpus_per_worker=2)
    assert default_concurrency(T, {"CPU": 9.0}) == 2 and default_concurrency(T, {"CPU": 2.0}) == 1
    # every resource a worker reserves counts: 2 trials' CPUs fit, but only 1 trial's `trainer`s
    R = TrainConfig(num_workers=2, cpus_per_worker=2, resources={"trainer": 1})
    assert default_concurrency(R, {"CPU": 9.0, "trainer": 3.0}) == 1
    assert default_concurrency(TrainConfig(num_workers=1, use_gpu=True), {"CPU": 8.0, "GPU": 2.0}) == 2
    import numpy as np
    assert type(plain(np.int64(3))) is int and plain([1]) == [1]


def test_gpus_per_trial_shares_a_gpu_between_trials():
    from raylm.train.config import TrainConfig
    from raylm.train.launch import worker_resources
    from raylm.tune.sweep import default_concurrency, trial_train

    one = TrainConfig(num_workers=1, use_gpu=True)
    quarter = trial_train(one, 0.25)
    assert worker_resources(quarter) == {"CPU": 1, "GPU": 0.25}
    assert default_concurrency(quarter, {"CPU": 8.0, "GPU": 1.0}) == 4  # four trials on one GPU
    assert default_concurrency(quarter, {"CPU": 2.0, "GPU": 1.0}) == 2  # CPUs bound it too
    assert trial_train(one, 0) is one and worker_resources(one)["GPU"] == 1
    two = trial_train(TrainConfig(num_workers=2, use_gpu=True), 4)  # whole GPUs split over workers
    assert worker_resources(two)["GPU"] == 2
    with pytest.raises(ValueError, match="use_gpu is false"):
        trial_train(TrainConfig(num_workers=1), 0.5)
    with pytest.raises(ValueError, match="NCCL cannot run two ranks"):
        trial_train(TrainConfig(num_workers=2, use_gpu=True), 1)
    with pytest.raises(ValueError, match="gpus_per_worker must be a fraction"):
        TrainConfig(use_gpu=True, gpus_per_worker=1.5)
    with pytest.raises(ValueError, match="gpus_per_trial must be >= 0"):
        TuneConfig(gpus_per_trial=-1)


def test_searchers_carry_the_concurrency_limit():
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from raylm.tune.sweep import build_searcher

    rnd = build_searcher(TuneConfig(), seed=1, concurrency=3)
    assert isinstance(rnd, BasicVariantGenerator) and rnd.max_concurrent == 3
    pytest.importorskip("optuna")
    opt = build_searcher(TuneConfig(searcher="optuna"), seed=1, concurrency=2)
    assert isinstance(opt, ConcurrencyLimiter) and opt.max_concurrent == 2
