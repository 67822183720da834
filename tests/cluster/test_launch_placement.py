"""One launch path (raylm/train/launch.py) for every Ray Train run: pretraining, classification
fine-tuning and a Tune trial are each placed by `train.label_selector` / `train.resources`, and
each keeps its checkpoints by `train.keep_by: val_loss` (the best plus the newest), on one
simulated cluster: a data node and a train node (the `trainer` resource and the
`raylm-role=train` label that cluster/*.yaml give GPU nodes; logical here, gloo on CPU).

The learning rates and seeds are chosen so that validation loss rises after its best evaluation
(checked in each case), so keeping only the newest checkpoint would fail the assertions. Such a
choice depends on the exact arithmetic (fused AdamW moved seed 1's best to the last evaluation).
"""

from __future__ import annotations

import json
from pathlib import Path


from raylm import config as C
from raylm.model.gpt import GPTConfig
from raylm.root import RootConfig
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig

from test_multinode import _train_worker_nodes, simulated_cluster  # tests/cluster is on sys.path

MODEL = GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=32)


def _train_cfg(**kw) -> TrainConfig:
    base = dict(max_steps=8, batch_size=4, eval_interval=2, eval_batches=2, log_interval=2, num_workers=1,
                cpus_per_worker=1, keep_checkpoints=1, keep_by="val_loss",
                optim=OptimConfig(lr=1.0), schedule=ScheduleConfig(name="constant", warmup_steps=0))
    return TrainConfig(**{**base, **kw})


def _kept(storage: Path) -> list[dict]:
    """model.json of every checkpoint Ray Train kept under a storage path."""
    return [json.loads(p.read_text()) for p in sorted(storage.rglob("checkpoint_*/model.json"))]


def _val_losses(metrics_file: Path) -> dict[int, float]:
    rows = [json.loads(ln) for ln in metrics_file.read_text().splitlines()]
    return {r["step"]: r["val_loss"] for r in rows if "val_loss" in r and not r.get("final")}


def _assert_best_and_newest(kept: list[dict], vals: dict[int, float]) -> None:
    best = min(vals, key=vals.get)
    assert best != max(vals), f"val loss never rose after its best evaluation: {vals}"  # the test can fail
    steps = sorted(k["step"] for k in kept)
    assert steps == sorted({best, max(vals)}), (steps, vals)


def _sst2(shared_data: Path, dest: Path, n: int) -> str:
    lines = (shared_data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    dest.write_text("".join(lines[: n + 1]), encoding="utf-8")
    return str(dest)


def test_every_launch_is_placed_by_labels_and_resources_and_keeps_the_best(tmp_path, tiny_shards, shared_data):
    from raylm.train.finetune import FinetuneConfig, run_classify
    from raylm.train.trainer import fit
    from raylm.tune import sweep

    train_tsv = _sst2(shared_data, tmp_path / "train.tsv", 160)
    ft = FinetuneConfig(task="classify", train_file=train_tsv, val_file=train_tsv, text_column="sentence",
                        max_eval_examples=64)
    tune_cfg = C.load(RootConfig, None, [
        f"out={tmp_path / 'sweep'}", "seed=3", f"train.data_dir={tiny_shards}", "model.n_layer=1", "model.n_head=2",
        "model.n_embd=32", "model.block_size=32", "train.max_steps=8", "train.batch_size=4",
        "train.eval_interval=2", "train.eval_batches=2", "train.log_interval=2", "train.cpus_per_worker=1",
        "train.keep_checkpoints=1", "train.keep_by=val_loss", "train.schedule.name=constant",
        "train.schedule.warmup_steps=0", "train.label_selector={raylm-role: train}",
        "tune.space={train.optim.lr: {grid: [1.0]}}", "tune.num_samples=1", "tune.scheduler=none"])

    with simulated_cluster({"num_cpus": 1, "labels": {"raylm-role": "data"}},
                           {"num_cpus": 1, "resources": {"trainer": 1}, "labels": {"raylm-role": "train"}}
                           ) as (_, (_, train_node)):
        # pretraining, placed by the label
        fit(MODEL, _train_cfg(label_selector={"raylm-role": "train"}), str(tiny_shards), str(tmp_path / "pre"), 3)
        assert _train_worker_nodes() == {train_node}
        # classification fine-tuning (random init on the shards' tokenizer), placed by the resource
        run_classify(ft, _train_cfg(resources={"trainer": 1}, optim=OptimConfig(lr=0.3)), str(tmp_path / "cls"), 1,
                     None, model_cfg=MODEL, data_dir=str(tiny_shards))
        assert _train_worker_nodes() == {train_node}
        # a Tune trial, placed by the label
        res = sweep.run(tune_cfg)
        assert _train_worker_nodes() == {train_node}
        # evaluation is a Ray task placed the same way (eval.resources / eval.label_selector)
        from raylm.eval.lm import EvalConfig
        from raylm.eval.task import run_on_ray

        ck = json.loads((tmp_path / "pre" / "result.json").read_text())["checkpoint"]
        for placed in ({"resources": {"trainer": 0.5}}, {"label_selector": {"raylm-role": "train"}}):
            report, files = run_on_ray(EvalConfig(max_tokens=500, samples=0, **placed), ft, ck, str(tiny_shards), 1)
            assert report["ray_node_id"] == train_node and "report.json" in files

    _assert_best_and_newest(_kept(tmp_path / "pre" / "run"), _val_losses(tmp_path / "pre" / "metrics.jsonl"))
    (trial,) = res["trials"]
    trial_dir = tmp_path / "sweep" / "tune" / "trials" / trial["trial_id"]
    _assert_best_and_newest(_kept(trial_dir / "run"), _val_losses(trial_dir / "metrics.jsonl"))
    # classification: the newest is the final checkpoint (best weights + test.json); besides it,
    # the evaluation checkpoint with the lowest val_loss is kept
    kept = _kept(tmp_path / "cls" / "classify")
    vals = _val_losses(tmp_path / "cls" / "metrics.jsonl")
    finals = [k for k in kept if "best_step" in k]
    assert len(finals) == 1 and len(kept) == 2, kept
    best = min(vals, key=vals.get)
    assert vals[best] < finals[0]["val_loss"] or best != finals[0]["best_step"], (vals, finals)
    assert [k["step"] for k in kept if k is not finals[0]] == [best], (kept, vals)
