"""A label selector no node has is refused before any work on a fixed cluster, and only warned
about where an autoscaler may start such a node (issue 22, bad input). No Ray: ray.nodes() and
the autoscaler probe are stand-ins."""

from __future__ import annotations

import pytest
import ray

from raylm import cluster, console

NODES = [{"Alive": True, "Labels": {"ray.io/node-id": "abc", "raylm-role": "data"}},
         {"Alive": False, "Labels": {"raylm-role": "train"}},  # dead: does not count
         {"Alive": True, "Labels": {"ray.io/node-id": "def", "zone": "b"}}]


@pytest.mark.parametrize("selector,ok", [
    ({"raylm-role": "data"}, True),
    ({"raylm-role": "!train"}, True),
    ({"raylm-role": "in(train,data)"}, True),
    ({"raylm-role": "!in(train,data)"}, False),
    ({"raylm-role": "data", "zone": "b"}, False),  # both on one node
    ({"zone": "c"}, False),
    ({"other": "x"}, False),
])
def test_label_matches(selector, ok):
    labels = {"raylm-role": "data", "zone": "a"}
    assert cluster.label_matches(labels, selector) is ok


def test_no_matching_node_is_an_error_on_a_fixed_cluster(monkeypatch):
    monkeypatch.setattr(ray, "nodes", lambda: NODES)
    monkeypatch.setattr(cluster, "_autoscaling", lambda: False)
    cluster.check_labels("data.label_selector", {"raylm-role": "data"})
    cluster.check_labels("train.label_selector", {})
    with pytest.raises(ValueError, match=r"^train.label_selector: no node of this cluster has the labels "
                                         r"\{'raylm-role': 'train'\} \(the nodes' labels: raylm-role=data, zone=b\); "
                                         r"start one with `ray start --labels=...`, or change train.label_selector$"):
        cluster.check_labels("train.label_selector", {"raylm-role": "train"})


def test_with_an_autoscaler_it_is_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(ray, "nodes", lambda: NODES)
    monkeypatch.setattr(cluster, "_autoscaling", lambda: True)
    console.set_level(console.NORMAL)
    cluster.check_labels("train.label_selector", {"raylm-role": "train"})
    assert "warning: train.label_selector: no node has the labels" in capsys.readouterr().out
