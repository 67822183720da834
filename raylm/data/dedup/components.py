"""Distributed connected components by alternating large-star / small-star rounds.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014). Nodes are
rank strings (survivor.py), so a component's minimum node is its survivor. Edges are
kept normalised as (hi, lo) with hi > lo. One round:

- large-star: for every node x with neighbours N(x): m = min(x, N(x));
  emit (y, m) for every y in N(x) with y > x.
- small-star: for every node x with smaller neighbours L(x): m = min(L(x));
  emit (y, m) for every y in L(x) + {x}, y != m.

Each star groups edges by one endpoint: the edge table is hash-partitioned on it with
Ray Data (`groupby(part).map_groups`), so each node's edges are seen by one task and
the graph never meets the driver. The driver only compares a (count, hash-sum)
fingerprint of the edge set between rounds; equal fingerprints = a fixed point, at
which every edge is (node, component minimum). O(log n) rounds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.dedup.minhash import fmix64, string_hashes

EDGE_SCHEMA = pa.schema([("hi", pa.string()), ("lo", pa.string())])
KEYED_SCHEMA = pa.schema([("x", pa.string()), ("y", pa.string()), ("part", pa.int64())])


def normalise(edges: pa.Table) -> pa.Table:
    """(src, dst) or (hi, lo) pairs of any orientation -> (hi, lo) with hi > lo; self loops removed."""
    a, b = edges.column(0).cast(pa.string()), edges.column(1).cast(pa.string())
    hi, lo = pc.max_element_wise(a, b), pc.min_element_wise(a, b)
    out = pa.table({"hi": hi, "lo": lo}, schema=EDGE_SCHEMA)
    return out.filter(pc.not_equal(out["hi"], out["lo"]))


def _part(col: pa.ChunkedArray | pa.Array, num_partitions: int) -> pa.Array:
    return pa.array((string_hashes(col) % np.uint64(num_partitions)).astype(np.int64))


def keyed_large(edges: pa.Table, num_partitions: int) -> pa.Table:
    """Both directions (x, y) of each edge, partitioned by x: input of large_star."""
    if edges.num_rows == 0:
        return KEYED_SCHEMA.empty_table()
    hi, lo = edges["hi"].combine_chunks(), edges["lo"].combine_chunks()
    x, y = pa.concat_arrays([hi, lo]), pa.concat_arrays([lo, hi])
    return pa.table({"x": x, "y": y, "part": _part(x, num_partitions)}, schema=KEYED_SCHEMA)


def keyed_small(edges: pa.Table, num_partitions: int) -> pa.Table:
    """(x=hi, y=lo) partitioned by hi: input of small_star."""
    x, y = edges["hi"], edges["lo"]
    return pa.table({"x": x, "y": y, "part": _part(x, num_partitions)}, schema=KEYED_SCHEMA)


def _distinct(t: pa.Table) -> pa.Table:
    return t.group_by(["x", "y"], use_threads=False).aggregate([])


def large_star(group: pa.Table) -> pa.Table:
    """Large-star over rows (x, y[, part]) holding every edge of each x in `group`."""
    t = _distinct(group.select(["x", "y"]))
    if t.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    m = t.group_by("x", use_threads=False).aggregate([("y", "min")])
    t = t.join(m, "x", use_threads=False)
    m_all = pc.min_element_wise(t["x"], t["y_min"])
    keep = pc.greater(t["y"], t["x"])
    return pa.table({"hi": pc.filter(t["y"], keep), "lo": pc.filter(m_all, keep)}, schema=EDGE_SCHEMA)


def small_star(group: pa.Table) -> pa.Table:
    """Small-star over rows (x=hi, y=lo[, part]) holding every smaller neighbour of each x."""
    t = _distinct(group.select(["x", "y"]))
    if t.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    m = t.group_by("x", use_threads=False).aggregate([("y", "min")])
    t = t.join(m, "x", use_threads=False)
    # (y, m) for the neighbours other than m, and (x, m) once per x.
    keep = pc.not_equal(t["y"], t["y_min"])
    hi = pa.concat_arrays([pc.filter(t["y"], keep).combine_chunks().cast(pa.string()),
                           m["x"].combine_chunks().cast(pa.string())])
    lo = pa.concat_arrays([pc.filter(t["y_min"], keep).combine_chunks().cast(pa.string()),
                           m["y_min"].combine_chunks().cast(pa.string())])
    return pa.table({"hi": hi, "lo": lo}, schema=EDGE_SCHEMA)


def fingerprint(edges: pa.Table) -> pa.Table:
    """One row (n, h1, h2): edge count and two 28-bit hash sums (order-free, no overflow)."""
    h = fmix64(string_hashes(edges["hi"]) ^ (string_hashes(edges["lo"]) * np.uint64(0x9E3779B97F4A7C15)))
    mask = np.uint64((1 << 28) - 1)
    return pa.table({"n": [edges.num_rows], "h1": [int((h & mask).sum())],
                     "h2": [int(((h >> np.uint64(32)) & mask).sum())]})


def components_local(edges: pa.Table, max_rounds: int = 64) -> pa.Table:
    """Single-process reference: the same rounds on one table -> (hi=node, lo=root) star edges."""
    e = normalise(edges)
    prev = None
    for _ in range(max_rounds):
        e = small_star(keyed_small(large_star(keyed_large(e, 1)), 1))
        fp = fingerprint(e).to_pylist()[0]
        if fp == prev:
            return e
        prev = fp
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


# ---------------------------------------------------------------- Ray shell

def run(edges_ds, num_partitions: int = 32, max_rounds: int = 64, info: dict | None = None):
    """(hi=node, lo=root) for every non-root node of every component of `edges_ds` (2 cols).

    Each round is two shuffles of the edge table; rounds repeat until the edge-set
    fingerprint stops changing (the last round only confirms). Returns a materialised
    dataset; info["rounds"] gets the number of rounds.
    """
    import functools

    ds = edges_ds.map_batches(normalise, batch_format="pyarrow", num_cpus=0.5).materialize()
    prev = None
    for rounds in range(1, max_rounds + 1):
        ls = (ds.map_batches(functools.partial(keyed_large, num_partitions=num_partitions),
                             batch_format="pyarrow", num_cpus=0.5)
              .groupby("part", num_partitions=num_partitions)
              .map_groups(large_star, batch_format="pyarrow", num_cpus=0.5))
        ds = (ls.map_batches(functools.partial(keyed_small, num_partitions=num_partitions),
                             batch_format="pyarrow", num_cpus=0.5)
              .groupby("part", num_partitions=num_partitions)
              .map_groups(small_star, batch_format="pyarrow", num_cpus=0.5)).materialize()
        rows = ds.map_batches(fingerprint, batch_format="pyarrow", batch_size=None, num_cpus=0.5).take_all()
        fp = (sum(r["n"] for r in rows), sum(r["h1"] for r in rows), sum(r["h2"] for r in rows))
        if info is not None:
            info["rounds"] = rounds
        if fp == prev:
            return ds
        prev = fp
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
