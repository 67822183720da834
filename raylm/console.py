"""What raylm prints, and how much of Ray's own output reaches the terminal.

Three levels, set once by the CLI: `-q` (errors and the final summary), the default (raylm's
own lines: one per stage event and a training line every `train.log_interval` steps), `-v`
(everything: Ray's INFO logs, Ray Data's operator progress, Ray Train's per-report lines and
every worker's output). Quieting uses Ray's own settings (`ray.init(logging_level=...,
log_to_driver=...)`, Ray Data's `DataContext` progress switches, Ray Train's `LoggingConfig`),
never filtering of text. Training lines reach the driver through the run's channel actor
(launch.py), not through worker log streaming, so they keep their place at every level.
"""

from __future__ import annotations

import logging
import sys
import threading

QUIET, NORMAL, VERBOSE = 0, 1, 2
_state = {"level": NORMAL, "live": ""}  # live: the progress line now drawn on the terminal, if any
_lock = threading.Lock()              # the progress thread and the main thread share stdout
_CLEAR = "\r\x1b[K"                    # carriage return + erase to the end of the line


def set_level(level: int) -> None:
    _state["level"] = level


def level() -> int:
    return _state["level"]


def verbose() -> bool:
    return _state["level"] >= VERBOSE


def say(line: str, summary: bool = False) -> None:
    """One raylm line on stdout; under -q only `summary` lines (final results, where outputs are).
    A live progress line on the terminal is erased first and drawn again below it."""
    if summary or _state["level"] >= NORMAL:
        with _lock:
            live_line = _state["live"]
            print((_CLEAR if live_line else "") + line, flush=True)
            if live_line:
                sys.stdout.write(live_line)
                sys.stdout.flush()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def live(line: str) -> None:
    """Draw `line` in place of the current live line (terminals only: raylm.progress decides)."""
    with _lock:
        sys.stdout.write(_CLEAR + line)
        sys.stdout.flush()
        _state["live"] = line


def end_live() -> None:
    """Erase the live line, if one is drawn."""
    with _lock:
        if _state["live"]:
            sys.stdout.write(_CLEAR)
            sys.stdout.flush()
            _state["live"] = ""


def duration(seconds: float) -> str:
    """1h02m, 1m40s, 7s."""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def rate(x: float) -> str:
    """6.5k, 1.2M, 830."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.1f}{unit}"
    return f"{x:.0f}"


def step_line(tag: str, metrics: dict, max_steps: int, eta_s: float | None) -> str:
    """`[train] step 50/600 (8%) loss 2.76 val_loss 2.70 6.5k tok/s ETA 1m40s`."""
    step = metrics["step"]
    parts = [f"[{tag}] step {step}/{max_steps} ({100 * step // max(max_steps, 1)}%)"]
    for key, label in (("loss", "loss"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc"),
                       ("accuracy", "acc")):
        if isinstance(metrics.get(key), float):
            parts.append(f"{label} {metrics[key]:.4g}")
    if metrics.get("tokens_per_s"):
        parts.append(f"{rate(metrics['tokens_per_s'])} tok/s")
    elif metrics.get("examples_per_s"):
        parts.append(f"{rate(metrics['examples_per_s'])} ex/s")
    if eta_s is not None and step < max_steps:
        parts.append(f"ETA {duration(eta_s)}")
    return " ".join(parts)


def quiet_ray_data() -> None:
    """Ray Data on this driver at the current level: its progress bars (raylm.progress draws
    raylm's own line instead) and INFO logs (execution plans, the periodic progress blocks
    written when not on a terminal) only with -v."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = verbose()
    ctx.enable_operator_progress_bars = verbose()
    if not verbose():
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # its notice that the progress bars are off is about the switch above, not the run
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def train_logging_config():
    """Ray Train's logging for a run: its INFO lines (worker group start, every report) with -v only."""
    from ray.train.v2.api.config import LoggingConfig

    return LoggingConfig(log_level="INFO" if verbose() else "WARNING")


def summary(line: str) -> None:
    """A line of a command's result or final summary: printed at every level, -q included."""
    say(line, summary=True)
