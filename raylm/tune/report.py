"""The sweep report: Markdown + PNG plots from plain trial records (no Ray here).

A record is {"trial_id": str, "params": {dotted key: value}, "history": [{"step": int,
<metric>: float}, ...] (one entry per evaluation), "error": str | None}. A trial whose last
evaluated step is below max_t (and that did not fail) was stopped early by the scheduler.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from raylm import atomic


def last_step(rec: dict) -> int:
    return rec["history"][-1]["step"] if rec["history"] else 0


def status(rec: dict, max_t: int) -> str:
    if rec.get("error"):
        return "error"
    if not rec["history"]:
        return "no result"
    return "completed" if last_step(rec) >= max_t else f"stopped at step {last_step(rec)}"


def best_trial(records: list[dict], metric: str, mode: str, max_t: int) -> dict | None:
    """The trial with the best *final* value, among those that ran to max_t when there are any
    (a stopped trial's early value is not what `raylm train` with the full step budget gives)."""
    ok = [r for r in records if r["history"] and not r.get("error")]
    done = [r for r in ok if last_step(r) >= max_t] or ok
    if not done:
        return None
    sign = 1 if mode == "min" else -1
    return min(done, key=lambda r: sign * r["history"][-1][metric])


def steps_used(records: list[dict]) -> int:
    """Training steps the sweep spent (each trial counts up to its last evaluation)."""
    return sum(last_step(r) for r in records)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _plots(records: list[dict], out_dir: Path, metric: str, max_t: int) -> list[str]:
    """curves.png (metric vs step per trial; stopped trials dashed) and one scatter per
    hyperparameter (final metric vs value). Returns the file names; [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display on a cluster node
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in records:
        if not r["history"]:
            continue
        xs = [h["step"] for h in r["history"]]
        ys = [h[metric] for h in r["history"]]
        ax.plot(xs, ys, "--" if last_step(r) < max_t else "-", marker="o", ms=3, label=r["trial_id"])
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial (dashed: stopped early)")
    if len(records) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic.write_with(out_dir / "curves.png", functools.partial(fig.savefig, format="png", dpi=100))
    plt.close(fig)
    names.append("curves.png")
    keys = sorted({k for r in records for k in r["params"]})
    for key in keys:
        pts = [(r["params"][key], r["history"][-1][metric], last_step(r) < max_t) for r in records
               if r["history"] and isinstance(r["params"].get(key), int | float)]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for stopped in (False, True):
            sel = [(x, y) for x, y, s in pts if s == stopped]
            if sel:
                ax.scatter(*zip(*sel), marker="x" if stopped else "o",
                           label="stopped early" if stopped else "completed")
        xs = [x for x, _, _ in pts]
        if min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(f"final {metric}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"param_{key.replace('.', '_')}.png"
        atomic.write_with(out_dir / name, functools.partial(fig.savefig, format="png", dpi=100))
        plt.close(fig)
        names.append(name)
    return names


def energy_total(records: list[dict]) -> dict | None:
    """Device-hours and kWh summed over trials (each trial's last evaluation is cumulative), with
    the methods used (energy.py); None when no trial reported energy."""
    last = [next((h for h in reversed(r["history"]) if "energy_kwh" in h), None) for r in records]
    last = [h for h in last if h is not None]
    if not last:
        return None
    return {"device_hours": sum(h["device_hours"] for h in last), "energy_kwh": sum(h["energy_kwh"] for h in last),
            "methods": sorted({h.get("energy_method", "?") for h in last}), "trials": len(last)}


def write_report(records: list[dict], out_dir: str | Path, metric: str, mode: str, max_t: int,
                 best: dict | None) -> Path:
    """Write <out_dir>/report.md (+ PNGs): per-trial table, stops, curves, parameter plots, best."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in records for k in r["params"]})
    used, full = steps_used(records), max_t * len(records)
    stopped = [r for r in records if status(r, max_t).startswith("stopped")]
    lines = [f"# Sweep report: {len(records)} trials, {metric} ({mode})", ""]
    if best is not None:
        fin = best["history"][-1]
        lines += [f"**Best trial**: `{best['trial_id']}`: final {metric} **{fin[metric]:.4f}** at step "
                  f"{fin['step']}, with " + ", ".join(f"`{k}={_fmt(v)}`" for k, v in best["params"].items())
                  + ". Its full config is `best.yaml` (run it with `raylm train best.yaml`).", ""]
    else:
        lines += ["**No trial produced a result.**", ""]
    lines += [f"Steps trained: {used} of {full} ({used / full:.0%} of running every trial to {max_t} steps); "
              f"{len(stopped)} trial(s) stopped early." if full else "No steps trained.", ""]
    spent = energy_total(records)
    if spent:
        how = ", ".join(spent["methods"])
        lines += [f"Compute over {spent['trials']} trial(s): {spent['device_hours']:.4g} device-hours, "
                  f"{spent['energy_kwh']:.4g} kWh ({how}{': an estimate from rated power' if how == 'rated' else ''}).",
                  ""]
    lines += ["| trial | " + " | ".join(keys) + f" | last step | final {metric} | best {metric} | status |",
              "|---" * (len(keys) + 5) + "|"]
    sign = 1 if mode == "min" else -1
    for r in records:
        vals = [h[metric] for h in r["history"]]
        final = _fmt(vals[-1]) if vals else "-"
        top = _fmt(min(vals, key=lambda v: sign * v)) if vals else "-"
        mark = " (best)" if best is not None and r["trial_id"] == best["trial_id"] else ""
        lines.append(f"| `{r['trial_id']}`{mark} | " + " | ".join(_fmt(r["params"].get(k)) for k in keys)
                     + f" | {last_step(r)} | {final} | {top} | {status(r, max_t)} |")
    lines.append("")
    if stopped:
        lines += ["## Stopped early", ""]
        lines += [f"- `{r['trial_id']}` at step {last_step(r)} ({metric} {r['history'][-1][metric]:.4f})"
                  for r in stopped]
        lines.append("")
    errors = [r for r in records if r.get("error")]
    if errors:
        lines += ["## Failed", ""] + [f"- `{r['trial_id']}`: {r['error']}" for r in errors] + [""]
    lines += ["## Validation curves", ""]
    for r in records:
        curve = ", ".join(f"{h['step']}: {h[metric]:.4f}" for h in r["history"]) or "-"
        lines.append(f"- `{r['trial_id']}`: {curve}")
    lines.append("")
    pngs = _plots(records, out_dir, metric, max_t)
    if pngs:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    else:
        lines += ["(matplotlib is not installed: no plots)", ""]
    lines += [f"TensorBoard for every trial: `tensorboard --logdir {out_dir / 'tb'}`", ""]
    return atomic.write_text(out_dir / "report.md", "\n".join(lines))


def relative_gap(a: float, b: float) -> float:
    """|a - b| / |b|: how far a result is from a reference (both finite)."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.inf
    return abs(a - b) / abs(b)
