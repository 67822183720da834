"""Live progress of a data run: one line per phase, redrawn on a terminal, every N s off it.

Ray Data runs raylm's stages fused and streaming, so a data run has two phases a user can
watch, not one per stage: **documents** (ingest and every cleaning stage, then the stats) and
**shards** (encoding and writing). Their tasks count what passes through them into one small
actor per run (`Tally`, 0 CPUs, fire-and-forget calls: a task never waits on it); a thread on the
driver reads it and prints

    [data] files 412/728 (57%) ETA 4s · documents through ingest 9.1k, quality 8.9k, dedup 0, split 0 · 1.2k docs/s
    [data] shards: encoded 5.1k/9.1k documents (56%) ETA 3s · written 0/4 shards

Files are counted when their first document leaves ingest (distinct `uri`; for a crawl, pages
against `max_pages`), so the ETA is that of reading; documents are counted after each stage
(dropped ones too: a stage marks rows, it never removes them), so a stage behind a barrier (dedup
shuffles everything first) shows where the run waits. On a terminal at the default level the
line is redrawn twice a second; otherwise (`ray job logs`, a file, `-v`) one line every
RAYLM_PROGRESS_SECONDS (default 30) while the phase runs; `-q` prints none.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pyarrow as pa

from raylm import console

INTERVAL_ENV = "RAYLM_PROGRESS_SECONDS"
TTY_REDRAW_S = 0.5


class Counts:
    """Named counters and distinct-value sets (the body of the Tally actor; plain for tests)."""

    def __init__(self):
        self.n: dict[str, int] = {}
        self.seen: dict[str, set] = {}

    def add(self, key: str, n: int, values: list | None = None) -> None:
        self.n[key] = self.n.get(key, 0) + n
        if values:
            self.seen.setdefault(key, set()).update(values)

    def snapshot(self) -> dict:
        return {"n": dict(self.n), "distinct": {k: len(v) for k, v in self.seen.items()}}


def tally():
    """A run's counter actor (0 CPUs: it never holds a slot a data task needs)."""
    import ray

    return ray.remote(num_cpus=0, max_concurrency=4)(Counts).remote()


def count(batch: pa.Table, handle, key: str, distinct: str | None = None) -> None:
    """From a task: add `batch`'s rows under `key` (and, with `distinct`, that column's values)."""
    if handle is None or batch.num_rows == 0:
        return
    values = None
    if distinct and distinct in batch.column_names:
        values = [v for v in set(batch[distinct].to_pylist()) if v is not None]
    handle.add.remote(key, batch.num_rows, values)


def documents_line(snap: dict, stages: list[str], total_files: int | None, elapsed: float) -> str:
    """The documents phase's line (see the module docstring)."""
    n, distinct = snap.get("n", {}), snap.get("distinct", {})
    parts = []
    files = distinct.get("ingest", 0)
    if total_files:
        files = min(files, total_files)
        head = f"files {files:,}/{total_files:,} ({100 * files // total_files}%)"
        if 0 < files < total_files and elapsed > 0:
            head += f" ETA {console.duration((total_files - files) * elapsed / files)}"
        parts.append(head)
    through = ", ".join(f"{s} {console.rate(n.get(s, 0))}" for s in ["ingest", *stages])
    parts.append(f"documents through {through}")
    if total_files and files < total_files and elapsed > 0 and n.get("ingest"):
        parts.append(f"{console.rate(n['ingest'] / elapsed)} docs/s")  # reading's rate, while it reads
    parts.append(console.duration(elapsed))
    return "[data] " + " · ".join(parts)


def shards_line(snap: dict, total_docs: int, total_shards: int | None, elapsed: float) -> str:
    n = snap.get("n", {})
    done = min(n.get("encoded", 0), total_docs)
    head = f"[data] shards: encoded {done:,}/{total_docs:,} documents ({100 * done // max(total_docs, 1)}%)"
    if 0 < done < total_docs and elapsed > 0:
        head += f" ETA {console.duration((total_docs - done) * elapsed / done)}"
    if total_shards:
        head += f" · written {min(n.get('written', 0), total_shards)}/{total_shards} shards"
    return head


def reader(handle) -> Callable[[], dict | None] | None:
    """A function returning the Tally's counts now (None if it does not answer in 5 s)."""
    if handle is None:
        return None

    def read() -> dict | None:
        import ray

        try:
            return ray.get(handle.snapshot.remote(), timeout=5)
        except Exception:  # progress must never fail a run; the next reading retries
            return None

    return read


class Live:
    """While the block runs, show `line(snapshot, elapsed)` (snapshots from `source`, see `reader`)
    as the module docstring says; nothing under -q or without a source. The last reading is
    cleared from a terminal at the end (the phase's result lines follow)."""

    def __init__(self, source: Callable[[], dict | None] | None, line: Callable[[dict, float], str],
                 interval_s: float | None = None):
        self.source, self.line = source, line
        tty = console.stdout_is_terminal() and console.level() == console.NORMAL
        self.redraw = tty
        self.interval = TTY_REDRAW_S if tty else (interval_s if interval_s is not None else interval())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()

    def __enter__(self):
        if self.source is not None and console.level() >= console.NORMAL:
            self._thread = threading.Thread(target=self._loop, name="raylm-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        console.end_live()
        return False

    def reading(self) -> str | None:
        snap = self.source()
        return None if snap is None else self.line(snap, time.monotonic() - self.t0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            text = self.reading()
            if text is None:
                continue
            if self.redraw:
                console.live(text)
            else:
                console.say(text)


def interval() -> float:
    """Seconds between progress lines off a terminal (RAYLM_PROGRESS_SECONDS, default 30)."""
    raw = os.environ.get(INTERVAL_ENV, "30")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: must be > 0")
    return value
