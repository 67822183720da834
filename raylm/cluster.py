"""Connect to a Ray cluster, or start Ray in this process when none is given. Once per process.

Precedence: `--address` on the command line, then `cluster.address` in the config, then the
RAY_ADDRESS environment variable (set by `ray job submit` and by `ray start --head` users),
else a local Ray sized to this machine.

A local Ray runs its workers at `cluster.worker_niceness` (default 0, Ray's own default is 15):
the workers are the job, and at nice 15 every tick of Ray's daemons or any other process
preempts the training threads. Measured on 2 cores, Ray Train over plain PyTorch: 0.954 at nice 0
(benchmarks/results/shakespeare_char.json, steady state), 0.916 at nice 15
(shakespeare_char_worker_nice15.json, an older whole-run method, so not a like-for-like
comparison; docs/benchmarks.md). On `ray start` clusters
set RAY_worker_niceness=0 in the environment of `ray start` (cluster/ does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from raylm import console

log = logging.getLogger(__name__)


@dataclass
class ClusterConfig:
    address: str | None = None      # "auto", "ray://host:10001" or host:port; None = RAY_ADDRESS or local
    num_cpus: int | None = None     # local Ray only: CPUs to use; None = all
    include_dashboard: bool = True  # local Ray only: serve the dashboard (Tune + Train need it here)
    worker_niceness: int = 0        # local Ray only: nice level of Ray's worker processes (Ray's default 15)
    storage_path: str | None = None  # where Ray Train / Tune persist runs (a path all nodes see, or
                                     # s3:// gs://); None = <out>/<stage>
    local_dir: str | None = None    # node-local scratch: shard copies from an object store, a worker's
                                     # temp checkpoints and logs when out is one; None = the temp dir


def _reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds, with one line, when nothing listens at a cluster address (`ray.init`
    itself retries for minutes). "auto" and addresses without a port are left to Ray."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ValueError(f"no Ray cluster answers at {address} ({e.strerror or e}): start one with "
                         f"`ray start --head`, fix --address / cluster.address / RAY_ADDRESS, or leave them "
                         f"unset to run on a local Ray") from None


@contextlib.contextmanager
def _in_code_root():
    """Run `ray.init` from the folder that holds this process's `raylm` package, then come back.

    Ray puts the driver's working directory first on every worker's sys.path (and a local Ray's
    workers run in it), so started from another checkout, workers would import that checkout's
    raylm while the driver runs this one. From the package's own parent folder, the driver and
    its workers import the same code. Paths are resolved on the driver before they reach a
    worker, so the workers' working directory does not matter otherwise."""
    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        yield
    finally:
        os.chdir(here)


def connect(cfg: ClusterConfig, address: str | None = None) -> str:
    """Make sure Ray is initialised; returns a one-line description of what we joined."""
    import ray

    from raylm import interrupt

    if ray.is_initialized():
        console.quiet_ray_data()
        return "already connected"
    address = address or cfg.address or os.environ.get("RAY_ADDRESS")
    # Worker output reaches this terminal with -v only: raylm's training lines come through the
    # run's channel actor (launch.py), errors through the exceptions Ray raises here.
    quiet = {"log_to_driver": console.verbose(),
             "logging_level": logging.INFO if console.verbose() else logging.WARNING}
    if address:
        _reachable(address)
        try:
            with _in_code_root():
                ctx = ray.init(address=address, **quiet)
        except ConnectionError as e:  # "auto" with no cluster running, a refused handshake
            raise ValueError(f"cannot join the Ray cluster at {address}: {' '.join(str(e).split())[:300]}") from None
        where = f"joined Ray cluster at {address}"
    else:
        # "local": a new Ray here, never a stale `ray start` cluster found on disk. The raylet
        # reads the workers' nice level from the environment when it starts.
        os.environ.setdefault("RAY_worker_niceness", str(cfg.worker_niceness))
        ctx = _start_local(cfg, quiet)
        where = "started local Ray"
    interrupt.install()  # ray.init sets its own SIGTERM handler in the driver
    console.quiet_ray_data()
    url = getattr(ctx, "dashboard_url", None)
    res = ray.cluster_resources()
    msg = f"{where} ({int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs)"
    if url:
        msg += f"; dashboard: http://{url}"
    console.say(f"[raylm] {msg}")
    return msg


def _start_local(cfg: ClusterConfig, quiet: dict):
    """A local Ray; when its dashboard cannot start (a busy machine: "Module MetricsHead failed to
    start. Timeout after 30.0 seconds"), a warning and a Ray without it (Tune removes stopped
    trials' placement groups itself, so sweeps work without the dashboard)."""
    import ray

    try:
        with _in_code_root():
            return ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=cfg.include_dashboard, **quiet)
    except Exception as e:  # noqa: BLE001 -- Ray raises plain Exception / RuntimeError for this
        text = str(e)
        if not cfg.include_dashboard or not ("dashboard" in text.lower() or "Head failed to start" in text):
            raise
        ray.shutdown()
        print(f"[raylm] warning: the Ray dashboard did not start ({' '.join(str(e).split())[:160]}); "
              "going on without it", file=sys.stderr, flush=True)
        with _in_code_root():
            return ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=False, **quiet)



def label_matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    """Whether a node with `labels` satisfies a Ray label selector: `value`, `!value`,
    `in(a,b)`, `!in(a,b)` per key (Ray's selector syntax)."""
    for key, want in selector.items():
        have = labels.get(key)
        negate = want.startswith("!")
        want = want[1:] if negate else want
        if want.startswith("in(") and want.endswith(")"):
            ok = have in {v.strip() for v in want[3:-1].split(",")}
        else:
            ok = have == want
        if ok == negate:
            return False
    return True


def check_labels(key: str, selector: dict[str, str]) -> None:
    """Before long work: a node of the cluster has the labels `selector` (config key `key`)
    asks for. On a cluster with an autoscaler (it has node groups to start) a missing node is
    a warning, since the autoscaler may start one; on a fixed cluster (a local Ray, `ray start`
    nodes) nothing would ever run, so it is an error naming the labels the nodes do have."""
    if not selector:
        return
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if any(label_matches(n.get("Labels") or {}, selector) for n in nodes):
        return
    have = sorted({f"{k}={v}" for n in nodes for k, v in (n.get("Labels") or {}).items()
                   if not k.startswith("ray.io/")})
    if _autoscaling():
        console.say(f"[raylm] warning: {key}: no node has the labels {selector} yet; waiting for the autoscaler "
                    f"to start one")
        return
    raise ValueError(f"{key}: no node of this cluster has the labels {selector} (the nodes' labels: "
                     f"{', '.join(have) or 'none'}); start one with `ray start --labels=...`, or change {key}")


def _autoscaling() -> bool:
    """Whether this cluster has an autoscaler with node groups (a launcher or KubeRay cluster)."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # an API Ray may change: assume a fixed cluster is not known, so warn only
        return True
    return bool(config and config.node_group_configs)
