"""Incremental dedup pure parts: OLD/NEW rank tags, old-old pairs skipped, signature estimate."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from raylm.data.dedup.incremental import (
    NEW,
    OLD,
    check_previous,
    estimate,
    only_new,
    prefixed,
    without_old_pairs,
)
from raylm.data.dedup.minhash import MinHashConfig
from raylm.data.dedup.survivor import id_from_rank


def test_tags_rank_old_first_and_strip():
    old = prefixed(pa.table({"id": ["b"], "rank": ["b"], "n_shingles": [3]}), OLD)["rank"][0].as_py()
    new = prefixed(pa.table({"id": ["a"], "rank": ["a"], "n_shingles": [1]}), NEW)["rank"][0].as_py()
    assert old < new  # an earlier doc outranks a new one even with a larger id
    assert id_from_rank(pa.array([old, new]), 1).to_pylist() == ["b", "a"]


def test_pair_filters():
    e = pa.table({"src": ["0a", "0a", "1b"], "dst": ["0b", "1c", "1c"]})
    assert without_old_pairs(e).num_rows == 2
    assert only_new(e, True).to_pylist() == [{"src": "1b", "dst": "1c"}]
    assert only_new(e, False).num_rows == 2


def test_estimate_threshold():
    a = np.arange(10, dtype=np.uint32)
    b = a.copy()
    b[:1] = 99  # 9 of 10 equal
    c = a.copy()
    c[:5] = 99  # 5 of 10 equal
    t = pa.table({"src": ["x", "x"], "dst": ["y", "z"],
                  "src_minhash": pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([a, a])), 10),
                  "dst_minhash": pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([b, c])), 10)})
    out = estimate(t, 0.8)
    assert out.to_pylist() == [{"src": "x", "dst": "y", "jaccard": 0.9}]


def test_check_previous(tmp_path):
    import dataclasses

    mh = dataclasses.asdict(MinHashConfig())
    with pytest.raises(ValueError, match="no finished signatures"):
        check_previous([str(tmp_path)], mh, "min_id")
    (tmp_path / "signatures").mkdir()
    (tmp_path / "signatures" / "_DONE").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"minhash": mh, "survivor": "min_id"}))
    check_previous([str(tmp_path)], mh, "min_id")
    with pytest.raises(ValueError, match="not comparable"):
        check_previous([str(tmp_path)], {**mh, "num_perm": 64}, "min_id")
