"""`raylm eval` as a Ray task: on a cluster the evaluation runs where `eval.cpus`,
`eval.use_gpu`, `eval.resources` and `eval.label_selector` place it (a GPU worker), not on the
head. The task copies what it reads to its node (an object-store checkpoint, object-store
shards: storage / shards.localize), writes the report into a local temp folder, and returns the
report and the folder's files, which the driver writes into `<out>/eval` (local or an object
store): the task never needs the driver's disk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from raylm.eval.lm import EvalConfig


def evaluate(cfg: EvalConfig, ft, checkpoint: str, data_dir: str, seed: int,
             scratch: str | None = None) -> tuple[dict, dict[str, bytes]]:
    """Evaluate `checkpoint` (a language model on `data_dir`'s `cfg.split`, or a classifier on
    `ft.test_file`); returns (report, {relative path: bytes} of the report files)."""
    import torch

    from raylm import storage
    from raylm.data import shards
    from raylm.eval import lm
    from raylm.train.checkpoint import fetch

    from raylm import energy

    torch.set_num_threads(cfg.threads or max(1, int(cfg.cpus)))
    power = energy.Meter(0 if cfg.use_gpu and torch.cuda.is_available() else None, max(1, int(cfg.cpus)))
    ck = fetch(checkpoint, storage.scratch(scratch, "checkpoints"))
    with tempfile.TemporaryDirectory(prefix="raylm-eval-") as d:
        if json.loads((Path(ck) / "model.json").read_text()).get("task") == "classify":
            from raylm.train.classify_driver import evaluate_checkpoint

            report = evaluate_checkpoint(ck, ft, d, scratch, source=checkpoint)
        else:
            local = shards.localize(data_dir, (cfg.split,), storage.scratch(scratch))
            report = lm.run(cfg, ck, local, d, seed, device="cuda" if cfg.use_gpu else "cpu",
                            source=checkpoint, data_source=data_dir)
        report["energy"] = power.reading()  # this task's devices, from start to the report
        saved = Path(d) / "report.json"
        if saved.is_file():
            saved.write_text(json.dumps({**json.loads(saved.read_text()), "energy": report["energy"]}, indent=2))
        files = {str(p.relative_to(d)): p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file()}
    try:  # where it ran (placement), beside the report the driver writes
        import ray

        report["ray_node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 -- called outside Ray (tests)
        pass
    return report, files


def run_on_ray(cfg: EvalConfig, ft, checkpoint: str, data_dir: str, seed: int,
               scratch: str | None = None) -> tuple[dict, dict[str, bytes]]:
    """`evaluate` in a Ray task with the eval section's resources (Ray must be connected)."""
    import ray

    opts = {"num_cpus": cfg.cpus, "num_gpus": 1 if cfg.use_gpu else 0, "resources": cfg.resources or None,
            "max_retries": 0}
    if cfg.label_selector:
        opts["label_selector"] = cfg.label_selector
    task = ray.remote(evaluate).options(**opts)
    return ray.get(task.remote(cfg, ft, checkpoint, data_dir, seed, scratch))
