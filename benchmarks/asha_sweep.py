"""ASHA vs running every trial to completion, on the same 8 sampled configurations.

The issue's target: on the quickstart model, an ASHA sweep of 8 learning-rate / weight-decay /
dropout trials finds a best validation loss within 2% of the best found by running all 8 to
completion, with <= 50% of the total training steps. Both sweeps run here, in this order:
  1. baseline "full": scheduler none (FIFO), every trial to train.max_steps;
  2. "asha": scheduler asha with the config's grace period / reduction factor.
Both use the random searcher with the same seed, so they sample the same 8 configurations
(asserted below); each trial is a Ray Train run (1 worker x 1 CPU in tune_quickstart.yaml).

Figures (benchmarks/results/asha_sweep.json):
  asha_steps_fraction = steps trained by ASHA / steps trained by the full sweep (target <= 0.5)
  asha_best_gap       = |best ASHA val_loss - best full val_loss| / best full val_loss (target <= 0.02)

Usage: PYTHONPATH=. .venv/bin/python benchmarks/asha_sweep.py [--config configs/tune_quickstart.yaml]
         [--out /tmp/asha_bench] [--set train.max_steps=300 ...]
Time: 2 x 8 trials; about (8 x max_steps) steps per sweep at 2 trials at a time. On 2 busy CPU
cores the quickstart version takes well over 8 minutes; --set train.max_steps=200
tune.grace_period=50 train.eval_interval=50 is a ~4x shorter variant (say so when quoting it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_result  # noqa: E402
from raylm import config as C  # noqa: E402
from raylm.root import RootConfig  # noqa: E402
from raylm.tune import sweep  # noqa: E402
from raylm.tune.report import relative_gap, steps_used  # noqa: E402


def one_sweep(config: str, overrides: list[str], name: str, scheduler: str, address: str | None) -> dict:
    ov = [*overrides, f"tune.name={name}", f"tune.scheduler={scheduler}", "tune.searcher=random"]
    cfg = C.load(RootConfig, config, ov)
    t0 = time.perf_counter()
    res = sweep.run(cfg, config, ov, address, resume=False)
    res["seconds"] = time.perf_counter() - t0
    res["max_t"] = cfg.tune.max_t or cfg.train.max_steps
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/tune_quickstart.yaml")
    ap.add_argument("--out", default="/tmp/asha_bench", help="run folder (the data step runs once into it)")
    ap.add_argument("--address", default=None, help="Ray address; default: a local Ray on this machine")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set KEY=VALUE")
    args = ap.parse_args()
    out = Path(args.out).resolve()
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
    path = write_result("asha_sweep", records, extra_versions=("optuna", "matplotlib"))
    print(f"[bench] asha_steps_fraction {s_asha / s_full:.3f} ({s_asha}/{s_full} steps), asha_best_gap "
          f"{relative_gap(best_asha, best_full):.4f} ({best_asha:.4f} vs {best_full:.4f}); {path}", flush=True)


if __name__ == "__main__":
    main()
