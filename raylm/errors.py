"""How an error reaches the user: one line, whatever process raised it.

raylm's checks raise plain Python errors with a message that names the key, file or shard and
what to do (ConfigError and other ValueErrors, FileNotFoundError, PermissionError ...). Raised in
the driver they arrive as they are; raised inside Ray they arrive wrapped: a Ray task error
(`RayTaskError(X)`, its `.cause` the original), a Ray Data user-code error (the original only in
the traceback text), or a Ray Train `WorkerGroupError` (`.worker_failures`: rank -> original) /
`ControllerError`. `root_cause` digs the original out of all of these, so the CLI prints
raylm's own message and exits 2 for bad input, or one line plus the path of the full traceback
and exits 1 for anything else (a bug, a crash, a dead node).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path

# Errors that mean "your input is wrong": exit 2 with the message alone.
INPUT_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                FileExistsError)
INPUT_ERROR_NAMES = {c.__name__ for c in INPUT_ERRORS} | {"ConfigError", "JSONDecodeError", "UnicodeDecodeError"}
LOG_DIR: Path | None = None  # where write_log puts full tracebacks; set once `out` is known (commands.load)
# a "module.Type: message" line of a traceback text (Ray Data keeps the original only as text)
_ERROR_LINE = re.compile(r"^([\w.]*?)(\w+(?:Error|Exception)): (.+)$", re.M)


def _is_ray_wrapper(e: BaseException) -> bool:
    return type(e).__module__.startswith("ray.") or type(e).__name__.startswith("RayTaskError")


def _children(e: BaseException) -> list[BaseException]:
    out = []
    failures = getattr(e, "worker_failures", None)
    if isinstance(failures, dict):
        out += [failures[k] for k in sorted(failures)]
    for attr in ("controller_failure", "cause", "__cause__"):
        c = getattr(e, attr, None)
        if isinstance(c, BaseException) and c is not e:
            out.append(c)
    return out


@dataclass
class Cause:
    """The error a user should see: its type name, message, and whether it is bad input."""

    kind: str
    message: str
    is_input: bool


def root_cause(e: BaseException) -> Cause:
    """The innermost non-Ray error behind `e` (through Ray Train, Ray task and Ray Data wrappers)."""
    return _dig(e, 0) or Cause(type(e).__name__, _message(e), False)


def _dig(e: BaseException, depth: int) -> Cause | None:
    if not _is_ray_wrapper(e):
        return Cause(type(e).__name__, _message(e), isinstance(e, INPUT_ERRORS))
    if depth < 8:
        for child in _children(e):
            if (c := _dig(child, depth + 1)) is not None:
                return c
    # Only Ray wrappers left: the original survives in the traceback text, as the last
    # "Type: message" line that is not one of Ray's own (UserCodeException, RayTaskError ...).
    found = [(kind, msg) for module, kind, msg in _ERROR_LINE.findall(str(e))
             if not module.startswith("ray.") and not kind.startswith("RayTaskError")]
    if found:
        kind, message = found[-1]
        return Cause(kind, message.strip(), kind in INPUT_ERROR_NAMES)
    return None


def _message(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, KeyError) and text.startswith("'"):
        text = text.strip("'")
    return " ".join(text.split()) or type(e).__name__


def log_path(command: str, stamp: str) -> Path:
    """`<out>/logs/<command>-<stamp>.log` once the config named `out`, else the temp folder."""
    import tempfile

    base = LOG_DIR or Path(tempfile.gettempdir()) / "raylm-logs"
    return base / f"{command}-{stamp}.log"


def write_log(e: BaseException, path: Path) -> Path | None:
    """The full traceback to `path` (its folder created); None when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(e)))
        return path
    except OSError:
        return None
