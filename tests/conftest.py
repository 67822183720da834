"""Fixtures shared by every test directory.

`shared_data`: the third-party data in ../shared/data (or $RAYLM_SHARED_DATA); tests that
need it skip with a reason when it is absent. `ray_session`: one local Ray for the whole
session (ray.init costs 3-8 s here), with fixed num_cpus so tests see the same cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("RAYLM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = _shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d} (set RAYLM_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def ray_session():
    """One Ray for all integration tests: 2 CPUs, dashboard on (Tune + Train need it)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False,
                 configure_logging=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()
