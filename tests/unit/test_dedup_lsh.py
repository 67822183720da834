"""LSH buckets -> candidate edges, and the split of giant buckets (pure functions, no Ray)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raylm.data.dedup.lsh import (
    BUCKET_SCHEMA,
    LSHConfig,
    anchor_rows,
    bucket_edges,
    heavy_keys,
    sample_every,
    sampled_rows,
    split_heavy,
    split_local,
)

P = 8  # partitions


def _rows(buckets: dict[int, list[str]]) -> pa.Table:
    keys, ranks = [], []
    for k, members in buckets.items():
        keys += [k] * len(members)
        ranks += members
    keys = np.array(keys, dtype=np.int64)
    return pa.table({"key": keys, "rank": ranks, "part": (keys.view(np.uint64) % np.uint64(P)).astype(np.int64)},
                    schema=BUCKET_SCHEMA)


def _components(edges: pa.Table, nodes) -> list[set]:
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(edges["src"].to_pylist(), edges["dst"].to_pylist()):
        parent[find(a)] = find(b)
    groups: dict = {}
    for n in nodes:
        groups.setdefault(find(n), set()).add(n)
    return sorted(groups.values(), key=lambda g: min(g))


def _edges_by_partition(rows: pa.Table) -> tuple[pa.Table, int]:
    """Edges as run() makes them (one bucket_edges call per partition) and the largest
    number of rows of one bucket any call saw."""
    out, largest = [], 0
    for p in range(P):
        g = rows.filter(pa.compute.equal(rows["part"], p))
        if g.num_rows:
            largest = max(largest, max(np.unique(g["key"].to_numpy(), return_counts=True)[1]))
            out.append(bucket_edges(g, 16))
    return pa.concat_tables(out), largest


def test_giant_bucket_is_split_and_stays_connected():
    giant = [f"g{i:05d}" for i in range(5000)]
    small = {100 + i: [f"s{i}a", f"s{i}b", f"s{i}c"] for i in range(50)}
    rows = _rows({7: giant, **small})
    cfg = LSHConfig(max_bucket=400)
    split = split_local(rows, cfg.max_bucket, P)
    edges, largest = _edges_by_partition(split)
    # No task sees more than ~max_bucket/2 (+ sampling noise and the anchor) of the bucket.
    assert largest <= 0.75 * cfg.max_bucket, largest
    unsplit_edges, unsplit_largest = _edges_by_partition(rows)
    assert unsplit_largest == 5000
    nodes = giant + [m for ms in small.values() for m in ms]
    comps = _components(edges, nodes)
    assert comps == _components(unsplit_edges, nodes)  # same connected components
    assert set(giant) in comps
    # Small buckets are untouched: all their pairs, as before.
    small_edges = {e for e in zip(edges["src"].to_pylist(), edges["dst"].to_pylist()) if e[0].startswith("s")}
    assert small_edges == {(f"s{i}{a}", f"s{i}{b}") for i in range(50) for a, b in [("a", "b"), ("a", "c"), ("b", "c")]}
    # Edges stay O(bucket): a star per sub-bucket, not all pairs.
    assert edges.num_rows < 2 * 5000 + 150


def test_heavy_keys_estimate_and_anchor():
    rows = _rows({1: [f"a{i}" for i in range(3000)], 2: [f"b{i}" for i in range(50)]})
    every = sample_every(400)
    assert every == 8
    sample = sampled_rows(rows, every)
    assert 0.5 * rows.num_rows / every < sample.num_rows < 1.5 * rows.num_rows / every
    # Deterministic: the same rows are sampled every time (a hash of the rank, not an RNG).
    assert sampled_rows(rows, every).equals(sample)
    heavy = heavy_keys(sample, every, 400)
    assert heavy["key"].to_pylist() == [1]
    assert 10 <= heavy["n_sub"][0].as_py() <= 20  # ~3000 / 200
    assert heavy["anchor"][0].as_py() in {f"a{i}" for i in range(3000)}
    anchors = anchor_rows(heavy, P)
    assert anchors.num_rows == heavy["n_sub"][0].as_py() and len(set(anchors["key"].to_pylist())) == anchors.num_rows
    moved = split_heavy(rows, heavy, P)
    # Key 2 rows keep their key; key 1 rows are spread over exactly the anchors' sub-keys.
    assert moved.filter(pa.compute.starts_with(moved["rank"], "b"))["key"].to_pylist() == [2] * 50
    assert set(moved.filter(pa.compute.starts_with(moved["rank"], "a"))["key"].to_pylist()) == set(
        anchors["key"].to_pylist())


def test_no_split_below_limit_or_when_off():
    rows = _rows({1: [f"a{i}" for i in range(300)], 2: ["x", "y"]})
    assert split_local(rows, 400, P).equals(rows)
    assert LSHConfig(max_bucket=0).max_bucket == 0
    with pytest.raises(ValueError, match="max_bucket"):
        LSHConfig(max_bucket=10)
