"""raylm.progress: the live line of a data phase (issue 25), without Ray: counts, the lines'
format and ETA, redraw on a terminal, a line every N seconds off it, nothing under -q."""

from __future__ import annotations

import re
import time

import pyarrow as pa
import pytest

from raylm import console, progress


@pytest.fixture(autouse=True)
def _normal_level():
    console.set_level(console.NORMAL)
    yield
    console.set_level(console.NORMAL)
    console.end_live()


def test_counts_add_rows_and_distinct_values():
    c = progress.Counts()
    c.add("ingest", 3, ["a", "b"])
    c.add("ingest", 2, ["b", "c"])
    c.add("dedup", 4)
    assert c.snapshot() == {"n": {"ingest": 5, "dedup": 4}, "distinct": {"ingest": 3}}


def test_count_sends_rows_and_distinct_uris_from_a_batch():
    calls = []

    class Method:
        def remote(self, *args):
            calls.append(args)

    class Handle:
        add = Method()

    batch = pa.table({"uri": ["f1", "f1", "f2", None], "text": ["a", "b", "c", "d"]})
    progress.count(batch, Handle(), "ingest", distinct="uri")
    progress.count(batch, Handle(), "quality")
    progress.count(batch, None, "quality")              # no tally: nothing
    progress.count(batch.slice(0, 0), Handle(), "x")    # empty batch: nothing
    assert [(k, n, sorted(v) if v else v) for k, n, v in calls] == [("ingest", 4, ["f1", "f2"]), ("quality", 4, None)]


def test_documents_line_while_reading_and_after():
    snap = {"n": {"ingest": 9120, "quality": 8870}, "distinct": {"ingest": 412}}
    line = progress.documents_line(snap, ["quality", "dedup", "split"], 728, 10.0)
    # 412 files in 10 s: 316 left at 41.2 files/s -> 8 s
    assert line == ("[data] files 412/728 (56%) ETA 8s · documents through ingest 9.1k, quality 8.9k, "
                    "dedup 0, split 0 · 912 docs/s · 10s")
    done = progress.documents_line({"n": {"ingest": 9120}, "distinct": {"ingest": 728}}, ["dedup"], 728, 75.0)
    assert done == "[data] files 728/728 (100%) · documents through ingest 9.1k, dedup 0 · 1m15s"  # no rate, no ETA
    unknown = progress.documents_line({"n": {"ingest": 5}, "distinct": {"ingest": 5}}, [], None, 2.0)
    assert unknown == "[data] documents through ingest 5 · 2s"


def test_shards_line():
    snap = {"n": {"encoded": 5100, "written": 1}}
    assert progress.shards_line(snap, 9100, None, 5.0) == \
        "[data] shards: encoded 5,100/9,100 documents (56%) ETA 4s"
    assert progress.shards_line(snap, 9100, 4, 5.0).endswith("· written 1/4 shards")
    assert progress.shards_line({"n": {"encoded": 9100}}, 9100, 4, 9.0) == \
        "[data] shards: encoded 9,100/9,100 documents (100%) · written 0/4 shards"


def _source(counter):
    def read():
        counter["n"] += 1
        return {"n": {"ingest": counter["n"]}, "distinct": {}}
    return read


def _until(done, timeout_s: float = 20.0) -> None:
    """Wait for the progress thread to have done something (a loaded machine may be slow)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the progress thread made no readings"
        time.sleep(0.01)


def test_off_a_terminal_a_line_every_interval(capsys, monkeypatch):
    monkeypatch.setattr(console, "stdout_is_terminal", lambda: False)
    counter = {"n": 0}
    with progress.Live(_source(counter), lambda s, t: f"[data] n={s['n']['ingest']}", interval_s=0.05):
        _until(lambda: counter["n"] >= 3)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3 and all(re.fullmatch(r"\[data\] n=\d+", ln) for ln in lines)
    assert "\r" not in "".join(lines)


def test_on_a_terminal_the_line_is_redrawn_and_cleared(capsys, monkeypatch):
    monkeypatch.setattr(console, "stdout_is_terminal", lambda: True)
    monkeypatch.setattr(progress, "TTY_REDRAW_S", 0.05)
    counter = {"n": 0}
    with progress.Live(_source(counter), lambda s, t: f"[data] n={s['n']['ingest']}"):
        _until(lambda: counter["n"] >= 3)
        console.say("a stage line")  # printed above the live line, which is drawn again
        seen = counter["n"]
        _until(lambda: counter["n"] >= seen + 2)  # a reading may have been under way: wait for a later one
    out = capsys.readouterr().out
    assert out.count("\r\x1b[K[data] n=") >= 3
    assert "\r\x1b[Ka stage line\n[data] n=" in out
    assert out.endswith("\r\x1b[K")  # cleared at the end: the phase's result lines follow


@pytest.mark.parametrize("level", [console.QUIET])
def test_quiet_prints_no_progress(capsys, monkeypatch, level):
    monkeypatch.setattr(console, "stdout_is_terminal", lambda: False)
    console.set_level(level)
    with progress.Live(_source({"n": 0}), lambda s, t: "[data] x", interval_s=0.02):
        time.sleep(0.15)
    assert capsys.readouterr().out == ""


def test_a_failed_reading_is_skipped(capsys, monkeypatch):
    monkeypatch.setattr(console, "stdout_is_terminal", lambda: False)
    with progress.Live(lambda: None, lambda s, t: "[data] x", interval_s=0.02):
        time.sleep(0.1)
    assert capsys.readouterr().out == ""


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv(progress.INTERVAL_ENV, raising=False)
    assert progress.interval() == 30
    monkeypatch.setenv(progress.INTERVAL_ENV, "2.5")
    assert progress.interval() == 2.5
    for bad in ("soon", "0"):
        monkeypatch.setenv(progress.INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match=progress.INTERVAL_ENV):
            progress.interval()
