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
    import socket

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with socket.socket() as s:  # a free port: another Ray on this machine may hold 8265
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_port=port, log_to_driver=False,
                 configure_logging=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def make_tiny_shards(out_dir: Path, text: str | None = None, n_docs: int = 60) -> Path:
    """Char-level shards (train + val, every 10th paragraph val) in raylm's format, without Ray."""
    import pyarrow as pa

    from raylm.data import shards
    from raylm.data.tokenize import char_tokenizer

    text = text or (REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text()[:60_000]
    paras = [p for p in text.split("\n\n") if p.strip()][:n_docs]
    docs = pa.table({"id": [f"d{i:04d}" for i in range(len(paras))], "text": paras,
                     "split": ["val" if i % 10 == 0 else "train" for i in range(len(paras))]})
    shards.write_local(docs, char_tokenizer(text), out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    return make_tiny_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="session")
def make_shards():
    """`make_tiny_shards` as a fixture: `from conftest import ...` is ambiguous with several conftests."""
    return make_tiny_shards
