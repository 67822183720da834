"""Fault injection on real runs: the reproductions of issue 27, each a test.

- an edited config rerun into an old `out` (data: vocabulary size, then validation fraction)
  refuses, naming the keys, and --overwrite rebuilds with nothing of the old run mixed in;
- a data run killed mid-way and rerun with an edited config refuses;
- Ctrl-C one second after a training checkpoint: exit 130, one line naming the step, the
  checkpoint recorded, and the rerun resumes from the newest checkpoint;
- a corrupt newest checkpoint is skipped for the one before, and the resumed run ends where an
  uninterrupted one does; with nothing usable left the error is one line, exit 2;
- workers import the driver's raylm, whatever the working directory holds.

In-process commands use the session Ray (`cli.main`); a test that signals or kills a run starts
`raylm` as a subprocess with its own local Ray, in its own process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raylm import cli, outputs

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "tiny.yaml")
TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def _fresh_locks():
    yield
    outputs.release_locks()


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = cli.main(list(argv))
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYLM_SHARD_PAUSE_S")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


def _spawn(argv: list[str], log: Path, cwd: Path = REPO, **env) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen([str(Path(sys.executable).parent / "raylm"), *argv], cwd=cwd, env={**_env(), **env},
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(pred, timeout: float, what: str) -> None:
    """Poll (bounded) for a state a subprocess reaches; fails the test with `what` on timeout."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _split_ids(shard_dir: Path) -> dict[str, list[str]]:
    m = json.loads((shard_dir / "manifest.json").read_text())
    return {split: [i for s in d["shards"] for i in pq.read_table(shard_dir / s["index"])["id"].to_pylist()]
            for split, d in m["splits"].items()}


def test_edited_data_config_is_refused_and_overwrite_rebuilds_cleanly(ray_session, capsys, tmp_path):
    out = tmp_path / "run"
    base = ["data", TINY, "--set", f"out={out}", "--set", "data.tokenizer.vocab_size=600"]
    assert _cli(capsys, *base)[0] == 0
    shard_dir = out / "data" / "shards"
    before = {p.name: p.read_bytes() for p in shard_dir.iterdir()}

    rc, err = _cli(capsys, *base, "--set", "data.split.val_fraction=0.3")
    assert rc == 2 and len(err) == 1 and "data.split.val_fraction: 0.1 -> 0.3" in err[0], err
    rc, err = _cli(capsys, "data", TINY, "--set", f"out={out}", "--set", "data.tokenizer.vocab_size=700")
    assert rc == 2 and "data.tokenizer.vocab_size: 600 -> 700" in err[0], err
    assert {p.name: p.read_bytes() for p in shard_dir.iterdir()} == before  # refusals write nothing

    assert _cli(capsys, *base, "--set", "data.split.val_fraction=0.3", "--overwrite")[0] == 0
    ids = _split_ids(shard_dir)
    train, val = ids["train"], ids["val"]
    assert len(set(train)) == len(train) and len(set(val)) == len(val) and not set(train) & set(val)
    m = json.loads((shard_dir / "manifest.json").read_text())
    listed = {f for d in m["splits"].values() for s in d["shards"] for f in (s["file"], s["index"])}
    assert {p.name for p in shard_dir.iterdir() if p.suffix in (".bin", ".parquet")} == listed  # no orphans
    stats = json.loads((out / "data" / "stats.json").read_text())
    assert stats["split_documents"] == {s: d["documents"] for s, d in m["splits"].items()}
    assert 0.2 < len(val) / (len(train) + len(val)) < 0.4


def test_killed_data_run_rerun_with_an_edited_config_is_refused(ray_session, capsys, tmp_path):
    out = tmp_path / "run"
    args = ["data", TINY, "--set", f"out={out}", "--set", "data.shards.shard_tokens=20000",
            "--set", "cluster.num_cpus=2", "--set", "cluster.include_dashboard=false"]
    p = _spawn(args, tmp_path / "killed.log", RAYLM_SHARD_PAUSE_S="3")
    try:
        _wait_for(lambda: any((out / "data" / "shards").glob("*.done")), TIMEOUT_S, "a finished shard")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    done = sorted(x.name for x in (out / "data" / "shards").glob("*.done"))
    rc, err = _cli(capsys, *args, "--set", "data.tokenizer.vocab_size=600")
    assert rc == 2 and len(err) == 1 and "data.tokenizer.vocab_size: 512 -> 600" in err[0], err
    assert sorted(x.name for x in (out / "data" / "shards").glob("*.done")) == done


def _train_args(out: Path, shards: Path, *extra: str) -> list[str]:
    return ["train", TINY, "--set", f"out={out}", "--set", f"train.data_dir={shards}",
            "--set", "train.num_workers=1", "--set", "train.max_steps=100000", "--set", "train.eval_interval=20",
            "--set", "train.log_interval=20", "--set", "train.keep_checkpoints=2", "--set", "cluster.num_cpus=2",
            "--set", "cluster.include_dashboard=false", *extra]


def test_ctrl_c_after_a_checkpoint_saves_the_resume_point(tmp_path, tiny_shards):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) one second after a
    checkpoint; the run stops at a step boundary with a checkpoint Ray Train recorded."""
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    p = _spawn(_train_args(out, tiny_shards), log)
    try:
        _wait_for(lambda: "val_loss" in log.read_text(), TIMEOUT_S, "the first checkpoint")
        time.sleep(1.0)
        os.killpg(p.pid, signal.SIGINT)
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("raylm train:")]
    assert rc == 130 and len(lines) == 1, text[-3000:]
    stopped_at = int(re.search(r"stopped at step (\d+), checkpoint saved: rerun", lines[0]).group(1))
    snap = json.loads((out / "train" / "run" / "checkpoint_manager_snapshot.json").read_text())
    steps = [r["metrics"]["step"] for r in snap["checkpoint_results"]]
    kept = [d for d in (out / "train" / "run").glob("checkpoint_*") if d.is_dir()]
    assert max(steps) == stopped_at and len(kept) == len(steps) <= 2  # no orphans past keep_checkpoints
    assert f"checkpoint_step-{stopped_at:06d}" in {d.name for d in kept}  # folders named by step
    result = json.loads((out / "train" / "result.json").read_text())
    assert result["metrics"]["interrupted"] and result["metrics"]["step"] == stopped_at

    # the rerun resumes there (a shorter max_steps: it trains a few steps and stops)
    rerun = subprocess.run([str(Path(sys.executable).parent / "raylm"),
                            *_train_args(out, tiny_shards, "--set", f"train.max_steps={stopped_at + 5}")],
                           cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert re.search(rf"resumed from \S+ at step {stopped_at}\b", rerun.stdout + rerun.stderr)
    assert json.loads((out / "train" / "result.json").read_text())["metrics"]["step"] == stopped_at + 5


def _local_run(out: Path, shards: Path, steps: int):
    from raylm.model.gpt import GPTConfig
    from raylm.train.config import ScheduleConfig, TrainConfig
    from raylm.train.trainer import fit

    cfg = TrainConfig(max_steps=steps, batch_size=4, eval_interval=4, eval_batches=2, log_interval=1,
                      num_workers=0, keep_checkpoints=0, schedule=ScheduleConfig(warmup_steps=2, decay_steps=12))
    return fit(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, dropout=0.1), cfg, str(shards), str(out), 3)


def test_corrupt_newest_checkpoint_is_skipped_for_the_one_before(tiny_shards, tmp_path, capfd):
    full = _local_run(tmp_path / "full", tiny_shards, 12)
    _local_run(tmp_path / "part", tiny_shards, 8)
    newest = tmp_path / "part" / "checkpoints" / "step-8" / "model.safetensors"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    capfd.readouterr()
    resumed = _local_run(tmp_path / "part", tiny_shards, 12)
    said = capfd.readouterr().out
    assert "skipping corrupt checkpoint" in said and "model.safetensors" in said and "at step 4" in said
    assert resumed["metrics"]["step"] == 12
    assert resumed["metrics"]["val_loss"] == pytest.approx(full["metrics"]["val_loss"], abs=1e-5)


def test_no_usable_checkpoint_is_one_line_and_exit_2(ray_session, capsys, tmp_path, tiny_shards):
    out = tmp_path / "run"
    args = _train_args(out, tiny_shards, "--set", "train.max_steps=4", "--set", "train.eval_interval=2",
                       "--set", "train.schedule.warmup_steps=0", "--set", "train.keep_checkpoints=1",
                       "--set", "train.max_steps=4")
    assert _cli(capsys, *args)[0] == 0
    (ck,) = [d for d in (out / "train" / "run").glob("checkpoint_*") if d.is_dir()]
    (ck / "state.pt").write_bytes(b"not a torch file")
    rc, err = _cli(capsys, *args[:-2], "--set", "train.max_steps=8")  # train on from it
    assert rc == 2 and len(err) == 1, err  # raised inside the Ray Train worker
    assert "no usable checkpoint to resume from" in err[0] and "--overwrite" in err[0]


def test_workers_import_the_drivers_raylm_whatever_the_working_directory(tmp_path):
    """A folder holding another `raylm` package (another checkout) as the working directory:
    Ray puts it first on the workers' path; the run must still use the driver's code."""
    other = tmp_path / "checkout"
    (other / "raylm").mkdir(parents=True)
    (other / "raylm" / "__init__.py").write_text("raise ImportError('the other checkout was imported')\n")
    out = tmp_path / "run"
    p = subprocess.run([str(Path(sys.executable).parent / "raylm"), "data", TINY, "--set", f"out={out}",
                        "--set", f"data.ingest.files.paths=[{REPO / 'raylm/assets/tinyshakespeare-slice.txt'}]",
                        "--set", "cluster.num_cpus=2", "--set", "cluster.include_dashboard=false"],
                       cwd=other, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert (out / "data" / "shards" / "manifest.json").is_file()


def test_input_error_raised_inside_a_ray_data_task_is_one_line(ray_session, capsys, tmp_path):
    """A parquet input without the text column fails inside a Ray Data read task; Ray keeps the
    cause only as traceback text under UserCodeException. The user sees raylm's line, exit 2."""
    import pyarrow as pa

    pq.write_table(pa.table({"body": ["hello world " * 40] * 20}), tmp_path / "a.parquet")
    rc, err = _cli(capsys, "data", TINY, "--set", f"out={tmp_path / 'run'}",
                   "--set", f"data.ingest.files.paths=[{tmp_path / 'a.parquet'}]")
    assert rc == 2 and err[-1] == f"raylm data: error: {tmp_path / 'a.parquet'}: no column 'text' (columns: body)"
