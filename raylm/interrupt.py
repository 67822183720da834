"""Ctrl-C and SIGTERM: stop at a point a rerun can resume from, and say so in one line.

Outside training a signal raises `Interrupted` in the main thread at once: every other stage is
retry-safe (finished shards are kept, a rerun skips them). During training (`graceful()`), the
first SIGINT / SIGTERM only sets a flag: the loop sees it at the next step boundary, saves a
checkpoint that Ray Train records, and returns; the command then raises `Interrupted` with the
step a rerun resumes from. A second signal aborts at once.

Exit codes follow the shell convention: 130 after SIGINT, 143 after SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

_requested = threading.Event()
_state = {"signum": 0, "graceful": 0}


class Interrupted(KeyboardInterrupt):
    """The run stopped on a signal; `code` is the exit status (128 + signal number). A
    KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.code = 128 + signum


def _handler(signum, frame) -> None:
    if _state["graceful"] and not _requested.is_set():
        _state["signum"] = signum
        _requested.set()
        sys.stderr.write("\n[raylm] stopping at the next training step to save a checkpoint "
                         "(press Ctrl-C again to abort at once)\n")
        sys.stderr.flush()
        return
    _state["signum"] = _state["signum"] or signum
    raise Interrupted("interrupted: rerun the same command to resume (finished work is kept)", signum)


def install() -> dict:
    """Route SIGINT and SIGTERM here (main thread only; call again after ray.init, which sets its
    own); returns the handlers replaced, for `restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}


def restore(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


@contextmanager
def graceful():
    """Inside this block the first signal asks the training loop to stop instead of raising."""
    _state["graceful"] += 1
    try:
        yield
    finally:
        _state["graceful"] -= 1


def requested() -> bool:
    """Whether a graceful stop was asked for (the training loops poll this, or Ray workers a copy)."""
    return _requested.is_set()


def signum() -> int:
    return _state["signum"] or signal.SIGINT


def reset() -> None:
    """Forget a past request (tests run several commands in one process)."""
    _requested.clear()
    _state["signum"] = 0
