"""A real kill: `raylm data` is SIGKILLed (driver, its local Ray and every worker, as one process
group) between two finished shards, rerun to completion, and must end byte-identical to an
uninterrupted run, skipping the shards the killed run had finished.

Each `raylm data` here is a subprocess that starts its own local Ray (RAY_ADDRESS removed), so
the kill takes the whole Ray with it and no orphaned task can write after it; the session Ray is
not used. RAYLM_SHARD_PAUSE_S (a hook in raylm/data/pipeline.py) holds each shard-writing task
for a while after its shard is done, so the kill lands with some shards done and others not.
The only waiting is a bounded poll of the output folder for the first done marker.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raylm import atomic
from raylm.data import shards

REPO = Path(__file__).resolve().parents[2]
# The tiny config's data section (bundled public-domain text, BPE 512), cut into ~11 shards.
ARGS = ["data", "configs/tiny.yaml", "--set", "data.shards.shard_tokens=20000",
        "--set", "cluster.num_cpus=2", "--set", "cluster.include_dashboard=false"]
PAUSE_S = 3.0  # per written shard: ~11 shards on 2 CPUs take >= 15 s after the first is done
TIMEOUT_S = 300


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYLM_SHARD_PAUSE_S")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", **extra}


def _raylm_data(out: Path, **env) -> subprocess.Popen:
    with open(out.parent / f"{out.name}.log", "w") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen([sys.executable, "-m", "raylm", *ARGS, "--set", f"out={out}"], cwd=REPO,
                                env=_env(**env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(p: subprocess.Popen, out: Path) -> None:
    rc = p.wait(timeout=TIMEOUT_S)  # on timeout the `spawn` fixture kills it
    assert rc == 0, (out.parent / f"{out.name}.log").read_text()[-3000:]


def _group_alive(pgid: int) -> list[int]:
    """Pids still in process group `pgid` (from /proc; zombies excluded)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(d.name))
    return pids


def _outputs(shard_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(shard_dir.iterdir())}


@pytest.fixture
def spawn():
    """Start `raylm data` subprocesses; any still running at the end (a failed test) are killed."""
    procs = []

    def start(out: Path, **env) -> subprocess.Popen:
        procs.append(_raylm_data(out, **env))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_sigkilled_data_run_resumes_to_identical_shards(tmp_path, spawn):
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    ref = spawn(ref_out)  # the uninterrupted run, alongside the killed one
    victim = spawn(out, RAYLM_SHARD_PAUSE_S=str(PAUSE_S))
    d = out / "data" / "shards"
    deadline = time.monotonic() + TIMEOUT_S
    while not list(d.glob("*.done")):
        assert victim.poll() is None, f"run ended before a shard:\n{(tmp_path / 'killed.log').read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no shard written in time"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    end = time.monotonic() + 30  # the kernel reaps the group's processes asynchronously
    while _group_alive(victim.pid) and time.monotonic() < end:
        time.sleep(0.1)
    assert _group_alive(victim.pid) == []

    # What the kill left: some shards done, not all, no manifest.
    done_at_kill = {p.stem: p.read_bytes() for p in d.glob("*.done")}
    mtimes = {n: (d / f"{n}.bin").stat().st_mtime_ns for n in done_at_kill}
    assert not (d / "manifest.json").exists()
    _finish(ref, ref_out)
    ref_dir = ref_out / "data" / "shards"
    m_ref = shards.read_manifest(ref_dir)
    all_shards = [s["name"] for split in m_ref["splits"].values() for s in split["shards"]]
    assert 1 <= len(done_at_kill) < len(all_shards)
    # A writer killed between write and rename leaves its temp file: plant one to stand for it,
    # and a stale config temp beside the data (the old sweep missed `config.yaml`'s).
    atomic.temp_path(d / f"{all_shards[-1]}.bin").write_bytes(b"partial")
    atomic.temp_path(out / "data" / "config.yaml").write_text("half")

    t0 = time.monotonic()
    _finish(spawn(out), out)
    print(f"rerun: {time.monotonic() - t0:.1f} s; {len(done_at_kill)} of {len(all_shards)} shards done at the kill")

    # Byte-identical to the uninterrupted run: every shard, index, marker, the tokenizer and the
    # manifest (document counts, token counts, sha256 per shard).
    assert _outputs(d) == _outputs(ref_dir)
    m = shards.read_manifest(d)
    assert m == m_ref and shards.verify(d) == []
    # Shards the killed run had finished were skipped, not rewritten.
    assert all((d / f"{n}.bin").stat().st_mtime_ns == t for n, t in mtimes.items())
    assert {n: (d / f"{n}.done").read_bytes() for n in done_at_kill} == done_at_kill
    # No temp file anywhere, and each document in exactly one shard.
    assert [p for p in (out / "data").rglob("*") if ".tmp" in p.name] == []
    ids = [i for p in sorted(d.glob("*.idx.parquet")) for i in pq.read_table(p, columns=["id"])["id"].to_pylist()]
    assert len(ids) == len(set(ids)) == sum(s["documents"] for s in m["splits"].values())
    stats = json.loads((out / "data" / "stats.json").read_text())
    stats_ref = json.loads((ref_out / "data" / "stats.json").read_text())
    assert {k: v for k, v in stats.items() if k != "seconds"} == {k: v for k, v in stats_ref.items() if k != "seconds"}
