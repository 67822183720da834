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

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class ClusterConfig:
    address: str | None = None      # "auto", "ray://host:10001" or host:port; None = RAY_ADDRESS or local
    num_cpus: int | None = None     # local Ray only: CPUs to use; None = all
    include_dashboard: bool = True  # local Ray only: serve the dashboard (Tune + Train need it here)
    worker_niceness: int = 0        # local Ray only: nice level of Ray's worker processes (Ray's default 15)
    storage_path: str | None = None  # where Ray Train / Tune persist runs (a path all nodes see, or
                                     # s3:// gs://); None = <out>/... on this machine


def connect(cfg: ClusterConfig, address: str | None = None) -> str:
    """Make sure Ray is initialised; returns a one-line description of what we joined."""
    import ray

    if ray.is_initialized():
        return "already connected"
    address = address or cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ctx = ray.init(address=address, log_to_driver=True)
        where = f"joined Ray cluster at {address}"
    else:
        # "local": a new Ray here, never a stale `ray start` cluster found on disk. The raylet
        # reads the workers' nice level from the environment when it starts.
        os.environ.setdefault("RAY_worker_niceness", str(cfg.worker_niceness))
        ctx = ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=cfg.include_dashboard)
        where = "started local Ray"
    url = getattr(ctx, "dashboard_url", None)
    res = ray.cluster_resources()
    msg = f"{where} ({int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs)"
    if url:
        msg += f"; dashboard: http://{url}"
    print(f"[raylm] {msg}", flush=True)
    return msg
