"""Multi-node behaviour on simulated clusters (`ray.cluster_utils.Cluster`: several raylets on this
machine, each with its own logical CPUs / GPUs / custom resources / labels).

- the data pipeline on 3 nodes writes the same bytes as on one node;
- training with one worker on each of 2 nodes reaches the same loss as 2 workers on one node;
- placement: CPU-only tasks (data stages) may use a GPU node's spare CPUs unless a label keeps
  them off, and a Ray Train worker asking for the `trainer` resource or the `raylm-role=train`
  label lands on the node that offers it (the resources and labels cluster/*.yaml give GPU nodes).

Node CPU counts are logical: the machine has 2 cores, the nodes share them. The head gets 0
CPUs, as in cluster/*.yaml, so every task runs on a worker node.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
from collections import Counter
from pathlib import Path

import pytest

from raylm import config as C
from raylm.root import RootConfig

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def simulated_cluster(*nodes: dict, head: dict | None = None):
    """Head (0 CPUs unless given) + one raylet per dict of node args; connected; torn down after."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=head or {"num_cpus": 0})
    try:
        added = [cluster.add_node(**n) for n in nodes]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, [n.node_id for n in added]
    finally:
        ray.shutdown()
        cluster.shutdown()


@contextlib.contextmanager
def single_node(num_cpus: int = 2):
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _tiny() -> RootConfig:
    """configs/tiny.yaml with its input path made absolute (workers need not share our cwd)."""
    cfg = C.load(RootConfig, REPO / "configs" / "tiny.yaml")
    cfg.data.ingest.files.paths = [str(REPO / p) for p in cfg.data.ingest.files.paths]
    return cfg


def _same_tree(a: Path, b: Path) -> list[str]:
    """Names of files that differ between two shard folders (manifest compared without paths)."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    diff = [n for n in names if n != "manifest.json" and not filecmp.cmp(a / n, b / n, shallow=False)]
    if json.loads((a / "manifest.json").read_text()) != json.loads((b / "manifest.json").read_text()):
        diff.append("manifest.json")
    return diff


@pytest.mark.slow
def test_data_pipeline_on_three_nodes_writes_the_same_shards(tmp_path):
    from raylm.data import pipeline

    cfg = _tiny()
    with single_node():
        one = pipeline.run(cfg.data, tmp_path / "one", cfg.seed)
    with simulated_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1}):
        import ray

        assert len([n for n in ray.nodes() if n["Alive"]]) == 4  # head + 3 workers
        three = pipeline.run(cfg.data, tmp_path / "three", cfg.seed)
    assert one["splits"]["train"]["tokens"] > 0 and len(one["splits"]["train"]["shards"]) > 1
    assert _same_tree(tmp_path / "one" / "shards", tmp_path / "three" / "shards") == []
    assert three == one


@pytest.mark.slow
def test_training_on_two_nodes_matches_one_node(tmp_path, tiny_shards):
    """2 DDP workers, world size 2 either way: one node with 2 CPUs, or 2 nodes with 1 CPU each
    (a worker needs 1 CPU and the head has none, so the workers must be on different nodes)."""
    import ray

    from raylm.model.gpt import GPTConfig
    from raylm.train.config import ScheduleConfig, TrainConfig
    from raylm.train.trainer import fit

    model = GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=32)
    train = TrainConfig(max_steps=6, batch_size=4, eval_interval=3, eval_batches=2, log_interval=3,
                        num_workers=2, cpus_per_worker=1, schedule=ScheduleConfig(warmup_steps=1))
    with single_node():
        a = fit(model, train, str(tiny_shards), str(tmp_path / "one"), seed=3)
    with simulated_cluster({"num_cpus": 1}, {"num_cpus": 1}) as (_, node_ids):
        assert {k: v for k, v in ray.cluster_resources().items() if k == "CPU"} == {"CPU": 2}
        b = fit(model, train, str(tiny_shards), str(tmp_path / "two"), seed=3,
                storage_path=str(tmp_path / "shared" / "train"))  # a path every node sees
        workers = _train_worker_nodes()
    assert workers == set(node_ids), f"workers ran on {workers}, expected one on each of {node_ids}"
    assert a["metrics"]["step"] == b["metrics"]["step"] == 6
    assert b["metrics"]["loss"] == pytest.approx(a["metrics"]["loss"], rel=1e-5)
    assert b["metrics"]["val_loss"] == pytest.approx(a["metrics"]["val_loss"], rel=1e-5)
    assert Path(b["checkpoint"]).is_relative_to(tmp_path / "shared" / "train")


def _train_worker_nodes() -> set[str]:
    """Node ids of the Ray Train worker actors of the finished run (dead actors stay listed).

    Read from the GCS actor table directly: the public state API (ray.util.state) goes through
    the dashboard, which these simulated clusters do not start (it costs ~10 s per cluster here).
    """
    from ray._private.state import actors

    return {a["Address"]["NodeID"] for a in actors().values() if a["ActorClassName"] == "RayTrainWorker"}


def test_data_tasks_use_gpu_nodes_spare_cpus_unless_a_label_keeps_them_off():
    """Data stages ask for CPUs only, so Ray may run them on a GPU node's spare CPUs (the autoscaler
    still never *launches* a GPU node for CPU-only demand). A label selector keeps a task on the
    data nodes, which is what `raylm-role=data` in cluster/*.yaml is for."""
    import ray

    with simulated_cluster({"num_cpus": 1, "labels": {"raylm-role": "data"}},
                           {"num_cpus": 1, "num_gpus": 1, "labels": {"raylm-role": "train"}}
                           ) as (_, (cpu_node, gpu_node)):
        @ray.remote(num_cpus=1)
        def where() -> str:
            return ray.get_runtime_context().get_node_id()

        # two at once need both nodes' CPUs: one of them runs on the GPU node
        assert set(ray.get([where.remote() for _ in range(2)])) == {cpu_node, gpu_node}
        pinned = where.options(label_selector={"raylm-role": "data"})
        assert set(ray.get([pinned.remote() for _ in range(4)])) == {cpu_node}
        assert ray.get(where.options(num_gpus=1).remote()) == gpu_node


@pytest.mark.slow
def test_data_pipeline_with_label_selector_stays_on_data_nodes(tmp_path):
    """`data.label_selector: {raylm-role: data}`: every Ray Data task and actor of `raylm data`
    (reads, stage maps, shuffles, shard writers) runs on the data node, none on the GPU node,
    and the shards equal an unpinned run's. Task placement is read from Ray's state API, so
    this cluster's head runs the dashboard."""
    import socket

    import ray
    from ray.util.state import list_tasks

    from raylm.data import pipeline

    cfg = _tiny()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The data node has 2 CPUs: Ray Data's hash-shuffle aggregators stalled when the
    # selected nodes held only 1 of the cluster's CPUs.
    with simulated_cluster({"num_cpus": 2, "labels": {"raylm-role": "data"}},
                           {"num_cpus": 2, "num_gpus": 1, "labels": {"raylm-role": "train"}},
                           head={"num_cpus": 0, "include_dashboard": True, "dashboard_port": port}
                           ) as (_, (data_node, gpu_node)):
        cfg.data.label_selector = {"raylm-role": "data"}
        pinned = pipeline.run(cfg.data, tmp_path / "pinned", cfg.seed)
        tasks = list_tasks(limit=10_000, raise_on_missing_output=False)
        assert ray.data.DataContext.get_current().execution_options.label_selector in (None, {})
    on = Counter(t.node_id for t in tasks if t.node_id)
    assert on[data_node] >= 5 and on[gpu_node] == 0, on
    # anything else ran on the head: Ray Data's own bookkeeping actors (stats, autoscaling, locations)
    elsewhere = {t.name.split(".")[0] for t in tasks if t.node_id and t.node_id != data_node}
    assert elsewhere <= {"_StatsActor", "_AutoscalingCoordinatorActor", "ActorLocationTracker"}, elsewhere
    with single_node():
        cfg.data.label_selector = {}
        free = pipeline.run(cfg.data, tmp_path / "free", cfg.seed)
    assert _same_tree(tmp_path / "pinned" / "shards", tmp_path / "free" / "shards") == []
    assert pinned == free


def _train_once(scaling, tmp_path) -> str:
    """Run a one-worker TorchTrainer with `scaling`; return the node id its worker ran on."""
    from ray.train import RunConfig
    from ray.train.torch import TorchTrainer

    marker = tmp_path / "node_id"

    def loop(config):
        import ray

        Path(config["marker"]).write_text(ray.get_runtime_context().get_node_id())

    TorchTrainer(loop, train_loop_config={"marker": str(marker)}, scaling_config=scaling,
                 run_config=RunConfig(name="placement", storage_path=str(tmp_path / "ray"))).fit()
    return marker.read_text()


@pytest.mark.slow
def test_train_worker_lands_on_the_node_with_the_trainer_resource_or_label(tmp_path):
    """What trainer.py does with ScalingConfig(resources_per_worker=...), plus the custom resource
    and label that cluster/*.yaml give GPU nodes (logical here: no CUDA, so gloo on CPU)."""
    from ray.train import ScalingConfig

    with simulated_cluster({"num_cpus": 1, "labels": {"raylm-role": "data"}},
                           {"num_cpus": 1, "resources": {"trainer": 1}, "labels": {"raylm-role": "train"}}
                           ) as (_, (data_node, train_node)):
        by_resource = ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1, "trainer": 1})
        assert _train_once(by_resource, tmp_path / "r") == train_node
        by_label = ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1},
                                 label_selector={"raylm-role": "train"})
        assert _train_once(by_label, tmp_path / "l") == train_node
