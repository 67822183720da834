"""`ray job submit`, for real: a `ray start --head` cluster on 127.0.0.1, the tiny run submitted
with the Ray CLI, SUCCEEDED, outputs on disk, and the cluster stopped again.

Isolation from everything else on the machine (other tests' Ray, other users' Ray):
- its own `--temp-dir` (short, under /tmp: Ray's unix socket paths must stay < 108 bytes) and
  its own free ports for every listener `ray start` opens;
- never `ray stop`, which kills every Ray process of the user on this machine. The head runs
  with `--block` in a new process session; teardown sends SIGTERM to that `ray start` (it stops
  its own GCS, raylet, dashboard and workers), then SIGKILLs whatever is left in the session
  and any process still holding our temp dir in its command line, by PID.

The working dir uploaded with the job is a temp copy of raylm/, configs/ and pyproject.toml
(about 1 MB; Ray's limit is 512 MiB, see cluster/README.md): no .git, .venv, runs/ or caches.
"""

from __future__ import annotations

import contextlib

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: `ray`, and `python` for the job's entrypoint
HEAD_START_S = 90                  # `ray start --head` + dashboard up, on a busy 2-core machine
JOB_TIMEOUT_S = 420                # the tiny run takes ~1 min alone; allow for a loaded machine

pytestmark = pytest.mark.network  # starts its own `ray start --head` on 127.0.0.1 (~2 min)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    for k in ("RAY_ADDRESS", "PYTHONPATH"):  # nothing may point the job at another cluster or checkout
        env.pop(k, None)
    return env


def make_working_dir(dst: Path) -> Path:
    """What the job needs and nothing more: the package, its configs and pyproject.toml."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "raylm", dst / "raylm", ignore=ignore)
    shutil.copytree(REPO / "configs", dst / "configs", ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", dst / "pyproject.toml")
    return dst


def _dashboard_up(port: int, proc: subprocess.Popen, deadline: float) -> None:
    """Wait until the job API answers (the dashboard starts after `ray start` prints its banner)."""
    import urllib.request

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)  # polling a server another process is starting; there is no event to wait on
    raise TimeoutError(f"dashboard on port {port} not up after {HEAD_START_S} s")


def _stop(proc: subprocess.Popen, temp_dir: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` tears down the processes it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers in the session we created
    except ProcessLookupError:
        pass
    # Daemons that left the session still name our temp dir. Killed processes take a moment to
    # leave /proc, and a dying raylet can still spawn one, so kill until none is left (10 s).
    deadline = time.monotonic() + 10
    while (pids := _pids_mentioning(temp_dir)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if text in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


@contextlib.contextmanager
def _head(tmp_path: Path):
    """A `ray start --head --block` cluster on 127.0.0.1 with its dashboard; yields its address."""
    ray = str(BIN / "ray")
    temp_dir = tempfile.mkdtemp(prefix="rlj", dir="/tmp")
    gcs, dash, client, agent, agent_grpc, metrics, rte, nm, om = _free_ports(9)
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1",
         f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
         f"--runtime-env-agent-port={rte}", f"--node-manager-port={nm}", f"--object-manager-port={om}",
         "--num-cpus=2", "--disable-usage-stats"],
        env=_env(), cwd=temp_dir, start_new_session=True,
        stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT)
    try:
        _dashboard_up(dash, head, time.monotonic() + HEAD_START_S)
        yield f"http://127.0.0.1:{dash}"
    finally:
        _stop(head, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not _pids_mentioning(temp_dir), "processes of the test's Ray head survived teardown"


def _submit(address: str, tmp_path: Path, *cmd: str) -> tuple[str, subprocess.CompletedProcess]:
    """`ray job submit` (blocking, streaming the driver's output) of `python -m raylm ...`."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    wd = make_working_dir(tmp_path / "wd")
    job_id = f"raylm-test-{uuid.uuid4().hex[:8]}"
    sub = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--submission-id", job_id, "--working-dir",
         str(wd), "--", "python", "-m", "raylm", *cmd],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    status = JobSubmissionClient(address).get_job_status(job_id)  # the machine-readable status
    assert status == JobStatus.SUCCEEDED, (
        f"job {job_id}: {status}\n--- submit output (tail) ---\n{(sub.stdout + sub.stderr)[-4000:]}")
    assert sub.returncode == 0
    # the driver joined this cluster (RAY_ADDRESS set by the job), not a Ray of its own
    assert "[raylm] joined Ray cluster" in sub.stdout
    return job_id, sub


def test_ray_job_submit_tiny_run(tmp_path):
    with _head(tmp_path) as address:
        out = tmp_path / "out"
        _submit(address, tmp_path, "run", "configs/tiny.yaml", "--set", f"out={out}")
        manifest = json.loads((out / "data" / "shards" / "manifest.json").read_text())
        assert manifest["splits"]["train"]["tokens"] > 0
        train = json.loads((out / "train" / "result.json").read_text())
        assert train["metrics"]["step"] == 30 and train["checkpoint"]
        report = json.loads((out / "eval" / "report.json").read_text())
        assert report["lm"]["perplexity"] > 1


@pytest.mark.slow
def test_ray_job_submit_tune_sweep_with_dashboard(tmp_path):
    """A sweep submitted to a `ray start --head` cluster: every trial a Ray Train run on it, the
    dashboard answering and listing the job while it runs, the report and best.yaml written."""
    import urllib.request

    with _head(tmp_path) as address:
        out = tmp_path / "out"
        job_id, sub = _submit(address, tmp_path, "tune", "configs/tune_tiny.yaml", "--set", f"out={out}",
                              "--set", "tune.num_samples=2", "--set", "train.max_steps=10",
                              "--set", "train.eval_interval=5", "--set", "tune.grace_period=5")
        with urllib.request.urlopen(f"{address}/api/jobs/", timeout=10) as r:  # the dashboard's job API
            jobs = {j.get("submission_id"): j for j in json.loads(r.read())}
        assert jobs[job_id]["status"] == "SUCCEEDED"
        with urllib.request.urlopen(address, timeout=10) as r:  # the dashboard page itself
            assert r.status == 200
        sweep_dir = out / "tune" / "sweep"
        trials = json.loads((sweep_dir / "trials.json").read_text())
        assert len(trials) == 2 and all(t["history"] for t in trials)
        assert (sweep_dir / "report.md").is_file() and (sweep_dir / "best.yaml").is_file()
        assert "tune done: best trial" in sub.stdout
