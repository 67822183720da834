"""Dedup on a simulated 3-node Ray cluster gives the same marks and clusters as one process.

This module starts its own `ray.cluster_utils.Cluster`, so it shuts down any Ray the
process already runs (the session Ray of tests/conftest.py is started lazily by
integration tests, which pytest collects after tests/cluster) and shuts the cluster down
again at the end, leaving the session fixture free to start a fresh local Ray.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.dedup.evaluate import load_spdx
from raylm.data.dedup.stage import DedupConfig, dedup_local, run


@pytest.fixture
def three_nodes():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # 2 logical CPUs per node: hash-shuffle aggregators hold CPUs, and with 1 per node the
    # shuffle tasks of a 3-partition groupby wait forever for a free one.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    cluster.wait_for_nodes()
    yield ray
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_three_nodes_same_clusters_as_one_process(three_nodes, shared_data, tmp_path):
    ray = three_nodes
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    docs = schema.conform(load_spdx(shared_data / "neardup" / "spdx-license-list-6.12.0.tgz"))
    cfg = DedupConfig(num_partitions=3, workdir=str(tmp_path / "dedup"))
    out = pa.concat_tables(ray.get(run(ray.data.from_arrow(docs).repartition(6), cfg).to_arrow_refs()))
    want, want_clusters, _ = dedup_local(docs, cfg)
    assert dict(zip(out["id"].to_pylist(), out["drop"].to_pylist())) == \
        dict(zip(want["id"].to_pylist(), want["drop"].to_pylist()))
    clusters = pa.concat_tables(ray.get(ray.data.read_parquet(str(tmp_path / "dedup" / "clusters")).to_arrow_refs()))
    got = sorted(zip(clusters["id"].to_pylist(), clusters["cluster"].to_pylist()))
    assert got == sorted(zip(want_clusters["id"].to_pylist(), want_clusters["cluster"].to_pylist()))
    assert len(got) > 100
