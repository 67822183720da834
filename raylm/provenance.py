"""Where a run came from: versions, the code's commit, the command line and the host.

`record()` is computed once per process on the driver; every saved `config.yaml` opens with it
as comments (the file stays a plain config that `raylm ... CONFIG` reads back), and every
`result.json` / `report.json` carries it under "provenance".
"""

from __future__ import annotations

import datetime as dt
import functools
import platform
import shlex
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout (or site-packages) holding raylm/


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path = ROOT) -> dict | None:
    """{"commit", "dirty"} of the checkout raylm runs from; None when it is not one (an install)."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


_command: dict = {"argv": None, "started": None}


def set_command(argv: list[str]) -> None:
    """The raylm command this process runs (the CLI calls this with its own arguments, so a
    command run in-process, as tests do, records itself and not the host program)."""
    _command["argv"] = ["raylm", *argv]
    _command["started"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@functools.cache
def _static() -> dict:
    from raylm import __version__

    return {"raylm": __version__, "ray": _version("ray"), "torch": _version("torch"),
            "python": platform.python_version(), "git": git_state(), "host": socket.gethostname()}


def record() -> dict:
    """Versions (raylm, Ray, torch, Python), git commit and dirty flag, command line, host, time."""
    if _command["started"] is None:
        _command["started"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {**_static(), "command": shlex.join(_command["argv"] or sys.argv), "started": _command["started"]}


def comment() -> str:
    """`record()` as YAML comment lines for the top of a saved config."""
    r = record()
    git = r["git"]
    code = "not a git checkout"
    if git:
        code = f"git {git['commit'][:12]}" + (" (uncommitted changes)" if git["dirty"] else "")
    return (f"# written by raylm {r['raylm']} (ray {r['ray']}, torch {r['torch']}, python {r['python']}), "
            f"{code}\n# on {r['host']} at {r['started']}: {r['command']}\n")
