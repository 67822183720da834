"""`raylm tune`: a Ray Tune sweep in which every trial is a real Ray Train run.

The Ray 2.58 pattern (Train V2): a Tune *function trainable* (`_trial`) builds a `TorchTrainer`
per trial and runs it; `TuneReportCallback` forwards the workers' reports to Tune, so ASHA sees
`val_loss` at every `train.eval_interval` (time attribute: `step`) and can stop the trial.
Stopping a trial kills its Tune actor and with it the Train controller and workers, but not the
workers' placement group (Ray ties it to the job). Train's own cleaner finds dead controllers
through the state API, which needs the dashboard and fails when several Ray instances share a
machine; then stopped trials never free their CPUs and the sweep deadlocks. So each trial reports
its placement group's id and a driver-side Tune callback removes it when the trial ends.

Resources: the trial actor itself holds no CPU (the trainer's workers hold them), so Tune alone
would start every trial at once; `max_concurrent_trials` (default: cluster CPUs divided by the
CPUs one trial's workers take) keeps the pending Train runs from piling up.

Layout under `<out>/tune/`: `<name>/` Tune's experiment (restore point for `--resume`),
`trials/<trial_id>/` each trial's resolved config, metrics.jsonl and Ray Train run,
`tb/<trial_id>/` TensorBoard events (`tensorboard --logdir <out>/tune/tb` shows the sweeps), and
per sweep, beside Tune's experiment in `<name>/`: the resolved `config.yaml`, `report.md` (+ PNGs),
`trials.json` and `best.yaml` (a config `raylm train` runs directly, training into
`<name>/best/`). Sweeps with different `tune.name` in one `out` never overwrite each other.
"""

from __future__ import annotations

import dataclasses

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from raylm import atomic, console, outputs, storage, tracking
from raylm import config as C
from raylm.tune.config import Param, apply_values, parse_space
from raylm.tune.report import best_trial, write_report

# The trial actor needs no CPU, but a Tune resource request cannot be empty: 1 MiB of memory.
TRIAL_DRIVER_RESOURCES = {"cpu": 0, "memory": 1 << 20}
WORKER_START_TIMEOUT_S = 600  # seconds a trial's Train workers may take to start (Ray's default: 60)


def plain(v: Any) -> Any:
    """numpy scalars (what Tune's samplers return) -> Python, so configs and YAML stay plain."""
    return v.item() if hasattr(v, "item") and not isinstance(v, list | dict) else v


def to_domain(p: Param):
    """One parsed axis -> a Ray Tune search domain."""
    from ray import tune

    if p.sampler == "grid":
        return tune.grid_search(p.args)
    if p.sampler == "choice":
        return tune.choice(p.args)
    lo, hi = p.args
    if p.sampler == "uniform":
        return tune.randint(lo, hi + 1) if p.integer else tune.uniform(lo, hi)
    return tune.lograndint(lo, hi + 1) if p.integer else tune.loguniform(lo, hi)


def build_scheduler(tc, max_steps: int, eval_interval: int):
    """tune.scheduler -> a Tune scheduler on time attribute `step` (optimizer steps)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    max_t = tc.max_t or max_steps
    grace = tc.grace_period or eval_interval
    if grace > max_t:
        raise ValueError(f"tune.grace_period ({grace}) exceeds max_t ({max_t} steps)")
    if tc.scheduler == "asha":
        return ASHAScheduler(time_attr="step", max_t=max_t, grace_period=grace,
                             reduction_factor=tc.reduction_factor)
    if tc.scheduler == "hyperband":
        # Synchronous HyperBand pauses trials; a paused trial resumes from its Ray Train checkpoint.
        return HyperBandScheduler(time_attr="step", max_t=max_t, reduction_factor=tc.reduction_factor)
    if tc.scheduler == "median":
        return MedianStoppingRule(time_attr="step", grace_period=grace, min_samples_required=3)
    return FIFOScheduler()


def build_searcher(tc, seed: int, concurrency: int):
    """random/grid or Optuna TPE, holding at most `concurrency` trials live. (Tune ignores
    TuneConfig.max_concurrent_trials when given a BasicVariantGenerator instance, so the limit
    is set here for both.)"""
    if tc.searcher == "optuna":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        # TPE; metric and mode come from tune.TuneConfig
        return ConcurrencyLimiter(OptunaSearch(seed=seed), max_concurrent=concurrency)
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=concurrency)


def default_concurrency(train_cfg, resources: dict) -> int:
    """How many trials' workers fit on the cluster at once (at least 1): every resource a worker
    reserves (CPUs, GPUs, train.resources) counted against the cluster's total."""
    from raylm.train.launch import worker_resources

    need = {k: v * train_cfg.num_workers for k, v in worker_resources(train_cfg).items() if v > 0}
    return max(1, min(int(resources.get(k, 0) // v) for k, v in need.items()))


PG_KEY = "train_placement_group"  # result key: the hex id of the trial's Train placement group


def _train_callbacks(metric: str) -> list:
    """[placement-group recorder, TuneReportCallback that forwards only reports carrying `metric`].

    Forwarding: the loop reports to Ray Train only at evaluations, which all carry the metric;
    the filter keeps Tune's strict metric check from failing a trial on any report that does
    not. Recording: a trial stopped by the scheduler dies with its Train controller, and the
    workers' placement group outlives both (Ray ties it to the job); Train's own cleaner finds
    dead controllers through the state API, which fails without the dashboard or when several
    Ray instances share the machine. So each result also carries the group's id, and
    `_FreeStoppedTrials` removes it in the driver when the trial ends.
    """
    from ray.train.v2._internal.execution.callback import WorkerGroupCallback
    from ray.tune.integration.ray_train import TuneReportCallback

    shared: dict = {}  # one dict in both callbacks (pickled together in RunConfig.callbacks)

    class RecordPlacementGroup(WorkerGroupCallback):
        def after_worker_group_start(self, worker_group):
            pg = worker_group.get_worker_group_state().placement_group_handle.placement_group
            shared[PG_KEY] = pg.id.hex()

    class EvalReports(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if metrics and metric in metrics[0]:
                metrics = [{**metrics[0], **shared}, *metrics[1:]]
                super().after_report(run_context, metrics, checkpoint)

    return [RecordPlacementGroup(), EvalReports()]


def _free_stopped_trials_callback():
    """A Tune callback (driver side) removing a finished or stopped trial's Train placement group."""
    from ray import tune

    class FreeStoppedTrials(tune.Callback):
        def _free(self, trial):
            pg_hex = (trial.last_result or {}).get(PG_KEY)
            if not pg_hex:
                return
            from ray._raylet import PlacementGroupID
            from ray.util.placement_group import PlacementGroup, remove_placement_group

            try:  # already gone when the Train run ended by itself
                remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(pg_hex))))
            except Exception:  # noqa: BLE001 -- best effort; a removed group raises on some versions
                pass

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._free(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._free(trial)

    return FreeStoppedTrials()


def trial_train(t, gpus_per_trial: float):
    """The train config a trial runs with: tune.gpus_per_trial split over its workers (checked by
    TrainConfig: a fraction of a GPU needs one worker). The base config, and so best.yaml, keep
    train.gpus_per_worker as written."""
    if not gpus_per_trial:
        return t
    if not t.use_gpu:
        raise ValueError(f"tune.gpus_per_trial is {gpus_per_trial} but train.use_gpu is false")
    return dataclasses.replace(t, gpus_per_worker=gpus_per_trial / t.num_workers)


def _trial(config: dict, base: dict, data_dir: str, tune_dir: str, store: str, metric: str,
           gpus_per_trial: float = 0.0) -> None:
    """One trial: sampled values -> strict RootConfig -> a Ray Train run reporting to Tune."""
    from ray import tune

    from raylm.train.launch import launch
    from raylm.train.loop import LMRun, train_worker
    from raylm.train.trainer import RUN_NAME

    trial_id = tune.get_context().get_trial_id()
    cfg = apply_values(base, {k: plain(v) for k, v in config.items()})
    cfg.train = trial_train(cfg.train, gpus_per_trial)
    trial_out = storage.join(tune_dir, "trials", trial_id)
    C.save(cfg, storage.join(trial_out, "config.yaml"))
    run = LMRun(model=cfg.model, train=cfg.train, data_dir=data_dir, out=trial_out, seed=cfg.seed,
                tb_dir=storage.join(tune_dir, "tb", trial_id), scratch=cfg.cluster.local_dir)
    # A distinct storage path per trial (trial ids are stable across --resume, so an interrupted
    # trial continues from its newest Train checkpoint). Train gives a worker group 60 s to start,
    # then retries without end; on a busy node a fresh worker (Python + torch imports) can take
    # longer than that every time.
    launch(train_worker, run, cfg.train, storage_path=storage.join(store, "trials", trial_id), name=RUN_NAME,
           callbacks=_train_callbacks(metric), start_timeout_s=WORKER_START_TIMEOUT_S)


def ensure_shards(cfg, out: str) -> str:
    """The base run's shards (train.data_dir or <out>/data/shards); built by the data step if absent."""
    from raylm.train.trainer import local_path

    if cfg.train.data_dir:
        shards = local_path(cfg.train.data_dir)
        if not storage.is_file(storage.join(shards, "manifest.json")):
            raise FileNotFoundError(f"train.data_dir={shards} has no manifest.json: run `raylm data` first")
        return shards
    shards = storage.join(out, "data", "shards")
    if not storage.is_file(storage.join(shards, "manifest.json")):
        from raylm.data import pipeline

        console.say(f"[raylm] tune: no shards at {shards}; running the data step first")
        outputs.claim(storage.join(out, "data"), outputs.record_of(cfg, "data"))
        C.save(cfg, storage.join(out, "data", "config.yaml"))
        pipeline.run(cfg.data, storage.join(out, "data"), cfg.seed)
    return shards


def _error_line(error) -> str:
    """A failed trial's cause in one line (through Ray's wrappers, raylm/errors.py)."""
    from raylm.errors import root_cause

    c = root_cause(error)
    return f"{c.kind}: {c.message}"


def collect(results, params: list[Param], metric: str) -> list[dict]:
    """ResultGrid -> plain trial records for the report (no Ray types past this point)."""
    records = []
    for r in results:
        df = r.metrics_dataframe
        history = []
        if df is not None and metric in df.columns:
            for step, value in zip(df["step"], df[metric]):
                if value is not None and not math.isnan(float(value)):
                    history.append({"step": int(step), metric: float(value)})
        config = r.config or {}
        records.append({"trial_id": (r.metrics or {}).get("trial_id") or Path(r.path).name,
                        "params": {p.key: plain(config.get(p.key)) for p in params},
                        "history": history, "error": _error_line(r.error) if r.error else None})
    return sorted(records, key=lambda rec: rec["trial_id"])


def run(cfg, address: str | None = None, resume: bool = False, overwrite: bool = False) -> dict:
    """Run (or with `resume`, continue) the sweep described by `cfg.tune`; write the report and
    best.yaml. Returns {"best": record, "trials": records, "report": path, "best_config": path}.

    `overwrite` deletes an existing sweep of the same name first. A resumed sweep must have the
    config it started with (outputs.claim names the keys that changed)."""
    import ray
    from ray import tune

    from raylm.cluster import check_labels, connect
    from raylm.train.launch import storage_root

    tc = cfg.tune
    if cfg.train.num_workers < 1:
        raise ValueError("tune needs train.num_workers >= 1: each trial is a Ray Train run")
    t = trial_train(cfg.train, tc.gpus_per_trial)  # what one trial reserves
    base = C.to_dict(cfg)
    params = parse_space(tc.space, base)
    from raylm.train.trainer import local_path

    out = local_path(cfg.out)
    tune_dir = storage.join(out, "tune")
    store = storage_root(cfg.cluster.storage_path, out, "tune")
    exp_path = storage.join(store, tc.name)
    sweep_dir = storage.join(tune_dir, tc.name)  # this sweep's files (Tune's experiment folder by default)
    if resume and overwrite:
        raise ValueError("--resume continues a sweep and --overwrite deletes it: choose one")
    if overwrite:
        outputs.remove(sweep_dir)
    if not resume and storage.exists(exp_path):
        raise FileExistsError(f"{exp_path} exists: continue it with --resume, replace it with --overwrite, or "
                              f"set tune.name (--set tune.name=...) for a new sweep")
    connect(cfg.cluster, address)
    check_labels("train.label_selector", cfg.train.label_selector)
    shards = ensure_shards(cfg, out)
    from raylm.data.shards import read_manifest

    outputs.claim(sweep_dir, outputs.record_of(cfg, "tune", {"shards": outputs.shards_fingerprint(
        read_manifest(shards))}))

    trainable = tune.with_resources(
        tune.with_parameters(_trial, base=base, data_dir=shards, tune_dir=tune_dir, store=store, metric=tc.metric,
                             gpus_per_trial=tc.gpus_per_trial),
        TRIAL_DRIVER_RESOURCES)
    parent = None  # the sweep's MLflow run (tracking.backend mlflow); trials are its children
    if resume:
        if not tune.Tuner.can_restore(exp_path):
            raise FileNotFoundError(f"--resume: no sweep to restore at {exp_path}")
        console.say(f"[raylm] tune: resuming {exp_path} (finished trials are kept)")
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)
        # Tune keeps the run config (callbacks included) in the experiment state.
    else:
        track, parent = tracking.tune_callbacks(cfg.tracking, out, C.to_dict(cfg))
        concurrency = tc.max_concurrent_trials or default_concurrency(t, ray.cluster_resources())
        console.say(f"[raylm] tune: {tc.num_samples} samples, scheduler {tc.scheduler}, searcher {tc.searcher}, "
                    f"{concurrency} trials at a time ({t.num_workers} worker(s) x {t.cpus_per_worker} CPU"
                    f"{f' + {t.gpus_per_worker:g} GPU' if t.use_gpu else ''} each)")
        tuner = tune.Tuner(
            trainable,
            param_space={p.key: to_domain(p) for p in params},
            tune_config=tune.TuneConfig(
                metric=tc.metric, mode=tc.mode, num_samples=tc.num_samples,
                scheduler=build_scheduler(tc, t.max_steps, t.eval_interval),
                search_alg=build_searcher(tc, cfg.seed if tc.seed is None else tc.seed, concurrency)),
            run_config=tune.RunConfig(name=tc.name, storage_path=store,
                                      failure_config=tune.FailureConfig(max_failures=0),
                                      callbacks=[_free_stopped_trials_callback(), *track]),
        )
    C.save(cfg, storage.join(sweep_dir, "config.yaml"))  # after the "exists" check: saving creates the folder
    status = "FAILED"
    try:
        results = tuner.fit()
        status = "FINISHED"
    finally:
        if parent is not None:
            parent.end(status)
    records = collect(results, params, tc.metric)
    max_t = tc.max_t or t.max_steps
    best = best_trial(records, tc.metric, tc.mode, max_t)
    out_cfg = {}
    if best is not None:
        best_cfg = apply_values(base, best["params"])
        # A fresh output folder on the sweep's shards, so `raylm train best.yaml` neither resumes
        # the base run's checkpoints nor rebuilds the data.
        best_cfg.out = f"{cfg.out.rstrip('/')}/tune/{tc.name}/best"
        best_cfg.train.data_dir = shards
        out_cfg["best_config"] = str(C.save(best_cfg, storage.join(sweep_dir, "best.yaml")))
    with tempfile.TemporaryDirectory(prefix="raylm-sweep-") as d:  # written here, then copied to the sweep
        write_report(records, Path(d), tc.metric, tc.mode, max_t, best)
        (Path(d) / "trials.json").write_text(json.dumps(records, indent=2))
        for f in sorted(Path(d).iterdir()):
            atomic.write_bytes(storage.join(sweep_dir, f.name), f.read_bytes())
    report = storage.join(sweep_dir, "report.md")
    if best is not None:
        final = best["history"][-1]
        console.say(f"[raylm] tune done: best trial {best['trial_id']} {tc.metric} {final[tc.metric]:.4f} at step "
                    f"{final['step']} with {best['params']}; config {out_cfg['best_config']}", summary=True)
    console.say(f"[raylm] report: {report}; TensorBoard: tensorboard --logdir {storage.join(tune_dir, 'tb')}",
                summary=True)
    return {"best": best, "trials": records, "report": str(report), **out_cfg}
