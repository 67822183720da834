"""tests/cluster start their own Ray (a `ray.cluster_utils.Cluster`, or a `ray start --head`
process), so no other Ray may be connected in this process while they run.

pytest collects tests/cluster before tests/integration (alphabetical), so the session-scoped
`ray_session` fixture is normally not started yet; if it is (an explicit order such as
`pytest tests/integration tests/cluster`), it is shut down here, and integration tests that run
afterwards would start a fresh default Ray on first use. Every module leaves Ray shut down.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="module")
def no_other_ray():
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    yield
    if ray.is_initialized():
        ray.shutdown()
