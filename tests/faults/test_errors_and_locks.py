"""Fault injection, the cheap part (no Ray): errors raised inside Ray reach the user as one line,
bad addresses and unwritable outputs fail in seconds, a second run into the same `out` is refused
and a dead holder's lock is taken over, edited configs are named key by key."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raylm import cli, errors, outputs
from raylm import config as C
from raylm.root import RootConfig

REPO = Path(__file__).resolve().parents[2]


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """Run the CLI in this process; (exit code, stderr lines)."""
    rc = cli.main(list(argv))
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.fixture(autouse=True)
def _fresh_locks():
    yield
    outputs.release_locks()
    errors.LOG_DIR = None


def test_root_cause_digs_through_ray_wrappers():
    from ray.exceptions import RayTaskError
    from ray.train import ControllerError, WorkerGroupError

    from raylm.train.checkpoint import CheckpointMismatch

    worker = WorkerGroupError("rank 0 failed", {1: RuntimeError("boom"), 0: CheckpointMismatch("ckpt x does not fit")})
    c = errors.root_cause(worker)
    assert (c.kind, c.message, c.is_input) == ("CheckpointMismatch", "ckpt x does not fit", True)
    assert errors.root_cause(ControllerError(FileNotFoundError("no manifest.json in d"))).is_input
    task = RayTaskError("read_parquet", "Traceback ...\nValueError: x.parquet has no 'text' column\n",
                        ValueError("x.parquet has no 'text' column"))
    assert errors.root_cause(task.as_instanceof_cause()).message == "x.parquet has no 'text' column"
    # Ray Data keeps only the traceback text of a UDF error: the last "Type: message" line is the cause
    text_only = RayTaskError("map", "Traceback (most recent call last):\n  File ...\n"
                             "    raise ValueError(f'{uri}: no column')\n"
                             "ValueError: parquet file p has no column 'text'\n\nThe above exception was the "
                             "direct cause of the following exception:\n\nTraceback (most recent call last):\n"
                             "ray.exceptions.UserCodeException: UDF failed to process a data block.", None)
    c = errors.root_cause(text_only)
    assert (c.kind, c.is_input) == ("ValueError", True) and "no column 'text'" in c.message
    bug = errors.root_cause(WorkerGroupError("x", {0: ZeroDivisionError("division by zero")}))
    assert (bug.kind, bug.is_input) == ("ZeroDivisionError", False)


def test_bug_inside_a_command_is_one_line_with_the_traceback_file(capsys, tmp_path, monkeypatch):
    from raylm import commands

    def boom(args):
        commands.load(args)
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(cli.COMMANDS, "check", ("", "tests_faults_boom:boom"))
    monkeypatch.setitem(sys.modules, "tests_faults_boom", type(sys)("tests_faults_boom"))
    sys.modules["tests_faults_boom"].boom = boom
    rc, err = _cli(capsys, "check", str(REPO / "configs" / "tiny.yaml"), "--set", f"out={tmp_path / 'o'}")
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("raylm check: error: ZeroDivisionError: division by zero (full traceback: ")
    log = Path(err[0].split("full traceback: ")[1].rstrip(")"))
    assert log.is_relative_to(tmp_path / "o" / "logs") and "Traceback" in log.read_text()


@pytest.mark.parametrize("override, message", [
    ("model.n_embd=0", "n_embd must be >= 1"),
    ("model.n_head=0", "n_head must be >= 1"),
    ("out=/dev/null/x", "out: /dev/null/x: cannot write there"),
    ("data.ingest.files.paths=[/nonexistent/corpus.txt]", "/nonexistent/corpus.txt"),
])
def test_bad_input_fails_before_ray_with_one_line(capsys, tmp_path, override, message):
    import ray

    ray_before = ray.is_initialized()  # another test may have started the session Ray
    args = ["data", str(REPO / "configs" / "tiny.yaml"), "--set", f"out={tmp_path / 'o'}", "--set", override]
    rc, err = _cli(capsys, *args)
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert err[0].startswith("raylm data: error: ")
    assert ray.is_initialized() == ray_before  # failed before connecting


def test_unreachable_cluster_address_fails_in_seconds(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "raylm", "data", "configs/tiny.yaml", "--set", f"out={tmp_path / 'x'}",
                        "--address", "127.0.0.1:1"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(err) == 1 and "no Ray cluster answers at 127.0.0.1:1" in err[0], p.stderr
    assert time.monotonic() - t0 < 30


def test_a_second_run_into_the_same_out_is_refused_and_a_dead_holders_lock_taken_over(capsys, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'pid {os.getpid()} on here: raylm train'.encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = ["data", str(REPO / "configs" / "tiny.yaml"), "--set", f"out={out}",
                "--set", "data.ingest.files.paths=[/nonexistent/corpus.txt]"]
        rc, err = _cli(capsys, *args)
        assert rc == 2 and len(err) == 1 and f"in use by another raylm run (pid {holder.pid}" in err[0], err
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its flock went with it, and the next run takes the lock (then fails on its input)
    rc, err = _cli(capsys, *args)
    assert rc == 2 and "/nonexistent/corpus.txt" in err[0] and "in use" not in err[0]
    fd = os.open(out / ".lock", os.O_RDWR)
    with pytest.raises(BlockingIOError):  # held by this process now
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    assert f"pid {os.getpid()}" in (out / ".lock").read_text()


def _record(*overrides: str, stage: str = "data") -> dict:
    return outputs.record_of(C.load(RootConfig, REPO / "configs" / "tiny.yaml", list(overrides)), stage)


def test_claim_names_changed_keys_and_overwrite_clears(tmp_path):
    stage = tmp_path / "data"
    outputs.claim(stage, _record("data.tokenizer.vocab_size=600"))
    (stage / "shards").mkdir()
    (stage / "shards" / "train-00000.bin").write_bytes(b"x")
    outputs.claim(stage, _record("data.tokenizer.vocab_size=600"))  # same config: resumes
    with pytest.raises(FileExistsError, match=r"data.split.val_fraction: 0.1 -> 0.3.*--overwrite") as e:
        outputs.claim(stage, _record("data.tokenizer.vocab_size=600", "data.split.val_fraction=0.3"))
    assert "\n" not in str(e.value)
    with pytest.raises(FileExistsError, match=r"data.tokenizer.vocab_size: 600 -> 700"):
        outputs.claim(stage, _record("data.tokenizer.vocab_size=700"))
    assert (stage / "shards" / "train-00000.bin").exists()  # a refusal touches nothing
    outputs.claim(stage, _record("data.tokenizer.vocab_size=700"), overwrite=True)
    assert not (stage / "shards").exists()
    assert json.loads((stage / "fingerprint.json").read_text())["config"]["data.tokenizer.vocab_size"] == 700


def test_a_field_added_by_a_newer_raylm_does_not_refuse_old_output(tmp_path):
    stage = tmp_path / "data"
    old = _record()
    del old["config"]["data.split.val_fraction"]  # as if an older raylm had no such field
    outputs.claim(stage, old)
    (stage / "stats.json").write_text("{}")
    outputs.claim(stage, _record())  # the field at its default: the same output
    with pytest.raises(FileExistsError, match=r"data.split.val_fraction: 0.1 -> 0.3"):  # recorded now
        outputs.claim(stage, _record("data.split.val_fraction=0.3"))


def test_claim_lets_runtime_keys_change_and_checks_inputs(tmp_path):
    stage = tmp_path / "train"
    outputs.claim(stage, outputs.record_of(C.load(RootConfig, REPO / "configs" / "tiny.yaml"), "train",
                                           {"shards": "aaa"}))
    (stage / "metrics.jsonl").write_text("{}\n")
    more = C.load(RootConfig, REPO / "configs" / "tiny.yaml",
                  ["train.max_steps=300", "train.num_workers=1", "train.log_interval=1", "cluster.num_cpus=1",
                   "train.cpu_matmul=blas"])
    outputs.claim(stage, outputs.record_of(more, "train", {"shards": "aaa"}))  # train longer, elsewhere: fine
    with pytest.raises(FileExistsError, match=r"inputs|shards: aaa -> bbb"):
        outputs.claim(stage, outputs.record_of(more, "train", {"shards": "bbb"}))
    lr = C.load(RootConfig, REPO / "configs" / "tiny.yaml", ["train.optim.lr=0.5"])
    with pytest.raises(FileExistsError, match=r"train.optim.lr: 0.001 -> 0.5"):
        outputs.claim(stage, outputs.record_of(lr, "train", {"shards": "aaa"}))


def test_folder_from_an_older_raylm_is_compared_through_its_config_yaml(tmp_path):
    stage = tmp_path / "data"
    stage.mkdir()
    C.save(C.load(RootConfig, REPO / "configs" / "tiny.yaml"), stage / "config.yaml")
    (stage / "stats.json").write_text("{}")
    outputs.claim(stage, _record())  # same keys: adopted, and the record written
    assert (stage / "fingerprint.json").is_file()
    (stage / "fingerprint.json").unlink()
    with pytest.raises(FileExistsError, match="data.seed|seed: 7 -> 8"):
        outputs.claim(stage, _record("seed=8"))


def test_a_folder_with_only_a_failed_runs_config_is_not_output(tmp_path):
    stage = tmp_path / "data"
    stage.mkdir()
    C.save(C.load(RootConfig, REPO / "configs" / "tiny.yaml", ["seed=99"]), stage / "config.yaml")
    outputs.claim(stage, _record())  # nothing was written with seed 99: no conflict
