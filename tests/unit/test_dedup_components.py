"""Large-star / small-star connected components against a union-find reference."""

from __future__ import annotations

import random

import pyarrow as pa

from raylm.data.dedup.components import components_local, keyed_large, large_star, normalise, small_star


def _union_find(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def _as_map(result: pa.Table) -> dict:
    out = dict(zip(result["hi"].to_pylist(), result["lo"].to_pylist()))
    for root in set(out.values()):
        out[root] = root
    return out


def test_star_steps_on_a_path():
    e = normalise(pa.table({"src": ["b", "c", "d"], "dst": ["a", "b", "c"]}))
    assert sorted(e["hi"].to_pylist()) == ["b", "c", "d"]
    ls = large_star(keyed_large(e, 1))
    # node a (nbr b): b -> a; node b (nbrs a, c): c -> a; node c (nbrs b, d): d -> b.
    assert sorted(zip(ls["hi"].to_pylist(), ls["lo"].to_pylist())) == [("b", "a"), ("c", "a"), ("d", "b")]
    empty = pa.table({"x": [], "y": []}, schema=pa.schema([("x", pa.string()), ("y", pa.string())]))
    assert small_star(empty).num_rows == 0


def test_matches_union_find_on_random_graphs():
    rng = random.Random(0)
    for trial in range(20):
        nodes = [f"n{i:03d}" for i in range(rng.randint(2, 120))]
        edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(1, 150))]
        # a long chain, the worst case for label propagation
        if trial % 5 == 0:
            edges += [(nodes[i], nodes[i + 1]) for i in range(len(nodes) - 1)]
        table = pa.table({"src": [a for a, _ in edges], "dst": [b for _, b in edges]})
        got = _as_map(components_local(table))
        want = {k: v for k, v in _union_find(edges).items()}
        # nodes only in self loops are not in any non-trivial component
        want = {k: v for k, v in want.items() if any(k in e and e[0] != e[1] for e in edges) or v != k}
        assert got == {k: v for k, v in want.items() if k in got or v != k}
        assert set(got) == {k for k in want if k in got}


def test_output_is_star_form():
    table = pa.table({"src": ["e", "d", "c", "b", "x"], "dst": ["d", "c", "b", "a", "y"]})
    res = components_local(table)
    assert _as_map(res) == {"a": "a", "b": "a", "c": "a", "d": "a", "e": "a", "x": "x", "y": "x"}
    assert res.num_rows == 5  # one edge per non-root node, no duplicates
