"""The dedup stage on Ray Data (shared session Ray) equals the single-process reference."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.dedup.evaluate import load_pairs, load_spdx, scores
from raylm.data.dedup.stage import DedupConfig, dedup_local, run


def _table(ds) -> pa.Table:
    import ray

    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def _drops(ds) -> dict:
    t = _table(ds)
    return dict(zip(t["id"].to_pylist(), t["drop"].to_pylist()))


def _sorted_rows(table, cols):
    return sorted(zip(*(table[c].to_pylist() for c in cols)))


@pytest.mark.slow
def test_license_set_matches_reference_and_resumes(ray_session, shared_data, tmp_path):
    import ray

    nd = shared_data / "neardup"
    texts = load_spdx(nd / "spdx-license-list-6.12.0.tgz")
    docs = schema.conform(texts)
    cfg = DedupConfig(num_partitions=4)
    ds = ray.data.from_arrow(docs).repartition(4)
    work = tmp_path / "dedup"

    got_drops = _drops(run(ds, cfg, str(work)))
    want, want_clusters, _ = dedup_local(docs, cfg)
    assert len(got_drops) == docs.num_rows  # rows are marked, never deleted
    assert got_drops == dict(zip(want["id"].to_pylist(), want["drop"].to_pylist()))
    clusters = _table(ray.data.read_parquet(str(work / "clusters")))
    assert _sorted_rows(clusters, ["id", "cluster"]) == _sorted_rows(want_clusters, ["id", "cluster"])

    edges = _table(ray.data.read_parquet(str(work / "edges")))  # survivor=min_id: ranks are ids
    truth = {p for p, j in load_pairs(nd / "spdx_pairs_jaccard_ge_0.5.tsv").items() if j >= 0.8}
    s = scores(set(zip(edges["src"].to_pylist(), edges["dst"].to_pylist())), truth)
    assert s["precision"] >= 0.95 and s["recall"] >= 0.95, s

    # Resume: drop the last two steps; the rerun redoes only those and gives the same marks.
    summary = json.loads((work / "summary.json").read_text())
    assert summary["components"]["rounds"] >= 2
    shutil.rmtree(work / "clusters")
    shutil.rmtree(work / "near_dups")
    assert _drops(run(ds, cfg, str(work))) == got_drops
    again_summary = json.loads((work / "summary.json").read_text())
    assert again_summary["signatures"] == summary["signatures"]  # read back, not recomputed

    with pytest.raises(ValueError, match="another config"):
        run(ds, DedupConfig(num_partitions=4, threshold=0.9), str(work))
