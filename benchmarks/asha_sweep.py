"""ASHA vs running every trial to completion, on the same 8 sampled configurations.

The issue's target: on the quickstart model, an ASHA sweep of 8 learning-rate / weight-decay /
dropout trials finds a best validation loss within 2% of the best found by running all 8 to
completion, with <= 50% of the total training steps. Both sweeps run here, in this order:
  1. baseline "full": scheduler none (FIFO), every trial to train.max_steps;
  2. "asha": scheduler asha with the config's grace period / reduction factor.
Both use the random searcher with the same seed, so they sample the same 8 configurations
(asserted below); each trial is a Ray Train run (1 worker x 1 CPU in tune_quickstart.yaml).

  3. "reproduce": `raylm train <out>/tune/asha/best.yaml` (the CLI, in a subprocess joining the
     same Ray) and the gap between its final val_loss and the best ASHA trial's.

Figures (benchmarks/results/asha_sweep.json):
  asha_steps_fraction = steps trained by ASHA / steps trained by the full sweep (target <= 0.5)
  asha_best_gap       = |best ASHA val_loss - best full val_loss| / best full val_loss (target <= 0.02)
  best_config_reproduction_gap = |val_loss of `raylm train best.yaml` - best trial's| / best trial's

Usage: .venv/bin/python -m benchmarks.asha_sweep [--config configs/tune_quickstart.yaml]
         [--out /tmp/asha_bench] [--set train.max_steps=300 ...]
Time: 2 x 8 trials; about (8 x max_steps) steps per sweep at 2 trials at a time. On 2 busy CPU
cores the quickstart version takes well over 8 minutes; --set train.max_steps=200
tune.grace_period=50 train.eval_interval=50 is a ~4x shorter variant (say so when quoting it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import write_result
from raylm import config as C
from raylm.root import RootConfig
from raylm.tune import sweep
from raylm.tune.report import relative_gap, steps_used


def one_sweep(config: str, overrides: list[str], name: str, scheduler: str, address: str | None) -> dict:
    ov = [*overrides, f"tune.name={name}", f"tune.scheduler={scheduler}", "tune.searcher=random"]
    cfg = C.load(RootConfig, config, ov)
    t0 = time.perf_counter()
    res = sweep.run(cfg, address)
    res["seconds"] = time.perf_counter() - t0
    res["max_t"] = cfg.tune.max_t or cfg.train.max_steps
    return res


def reproduce(best_config: str, expected: float, address: str | None) -> dict:
    """`raylm train best.yaml` as a user runs it; its final val_loss against the trial's."""
    cfg = C.load(RootConfig, best_config)
    shutil.rmtree(Path(cfg.out) / "train", ignore_errors=True)  # a fresh run, not a resume
    cmd = [sys.executable, "-m", "raylm", "train", best_config, *(["--address", address] if address else [])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    got = json.loads((Path(cfg.out) / "train" / "result.json").read_text())["metrics"]["val_loss"]
    return {"metric": "best_config_reproduction_gap", "value": relative_gap(got, expected), "unit": "relative",
            "baseline": {"name": "best ASHA trial's final val_loss", "value": expected}, "ratio": got / expected,
            "reproduced_val_loss": got, "best_config": best_config, "command_run": " ".join(cmd[1:]),
            "seconds": round(time.perf_counter() - t0, 1)}


def _ray_address() -> str | None:
    import ray

    return ray.get_runtime_context().gcs_address if ray.is_initialized() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/tune_quickstart.yaml")
    ap.add_argument("--out", default="/tmp/asha_bench", help="run folder (the data step runs once into it)")
    ap.add_argument("--address", default=None, help="Ray address; default: a local Ray on this machine")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set KEY=VALUE")
    ap.add_argument("--reproduce-only", action="store_true",
                    help="skip the sweeps: reproduce <out>/tune/asha/best.yaml against results/asha_sweep.json")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if args.reproduce_only:
        path = Path(__file__).resolve().parent / "results" / "asha_sweep.json"
        records = [r for r in json.loads(path.read_text()) if r["metric"] != "best_config_reproduction_gap"]
        best_asha = next(r for r in records if r["metric"] == "asha_best_gap")["best"]["asha"]
        best_yaml = out / "tune" / "asha" / "best.yaml"
        best_yaml = best_yaml if best_yaml.is_file() else out / "tune" / "best.yaml"  # layout before per-sweep dirs
        rec = reproduce(str(best_yaml), best_asha, args.address)
        write_result("asha_sweep", [*records, rec], extra_versions=("optuna", "matplotlib"))
        print(f"[bench] best_config_reproduction_gap {rec['value']:.4f}", flush=True)
        return
    for name in ("full", "asha"):  # a fresh pair of sweeps each time; the shards are kept
        shutil.rmtree(out / "tune" / name, ignore_errors=True)
    overrides = [f"out={out}", *args.overrides]

    full = one_sweep(args.config, overrides, "full", "none", args.address)
    asha = one_sweep(args.config, overrides, "asha", "asha", args.address)
    # The same seed must give the same configurations, or the comparison is not like for like.
    key = lambda rec: tuple(sorted(rec["params"].items()))  # noqa: E731
    same = sorted(map(key, full["trials"])) == sorted(map(key, asha["trials"]))
    if not same:
        print("[bench] WARNING: the two sweeps sampled different configurations", flush=True)

    metric = "val_loss"
    best_full = full["best"]["history"][-1][metric]
    best_asha = asha["best"]["history"][-1][metric]
    s_full, s_asha = steps_used(full["trials"]), steps_used(asha["trials"])
    stopped = sum(1 for r in asha["trials"] if r["history"] and r["history"][-1]["step"] < asha["max_t"])
    common = {"config": args.config, "overrides": args.overrides, "trials": len(full["trials"]),
              "same_configurations": same, "asha_stopped_trials": stopped,
              "seconds": {"full": round(full["seconds"], 1), "asha": round(asha["seconds"], 1)}}
    records = [
        {"metric": "asha_steps_fraction", "value": s_asha / s_full, "unit": "fraction of steps",
         "baseline": {"name": "all trials to completion (FIFO)", "value": 1.0}, "ratio": s_asha / s_full,
         "target": "<= 0.5", "steps": {"asha": s_asha, "full": s_full}, **common},
        {"metric": "asha_best_gap", "value": relative_gap(best_asha, best_full), "unit": "relative",
         "baseline": {"name": "best val_loss, all trials to completion", "value": best_full},
         "ratio": best_asha / best_full, "target": "<= 0.02",
         "best": {"asha": best_asha, "full": best_full,
                  "asha_params": asha["best"]["params"], "full_params": full["best"]["params"]}, **common},
    ]
    records.append(reproduce(asha["best_config"], best_asha, args.address or _ray_address()))
    path = write_result("asha_sweep", records, extra_versions=("optuna", "matplotlib"))
    print(f"[bench] asha_steps_fraction {s_asha / s_full:.3f} ({s_asha}/{s_full} steps), asha_best_gap "
          f"{relative_gap(best_asha, best_full):.4f} ({best_asha:.4f} vs {best_full:.4f}); {path}", flush=True)


if __name__ == "__main__":
    main()
