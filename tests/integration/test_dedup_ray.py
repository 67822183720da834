"""The dedup stage on Ray Data (shared session Ray) equals the single-process reference."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.dedup.evaluate import load_pairs, load_spdx, scores
from raylm.data.dedup.minhash import MinHashConfig
from raylm.data.dedup.stage import DedupConfig, dedup_local, run
from raylm.data.config import StageContext


def _table(ds) -> pa.Table:
    import ray

    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def _drops(ds) -> dict:
    t = _table(ds)
    return dict(zip(t["id"].to_pylist(), t["drop"].to_pylist()))


def _in(work: Path, cfg: DedupConfig) -> DedupConfig:
    """`cfg` writing its steps under `work` (dedup.workdir: how the stage runs outside a pipeline)."""
    return replace(cfg, workdir=str(work))


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
    ctx = StageContext(out=tmp_path, seed=0)  # as in a pipeline run: the steps go to <out>/dedup

    got_drops = _drops(run(ds, cfg, ctx))
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
    assert _drops(run(ds, cfg, ctx)) == got_drops
    again_summary = json.loads((work / "summary.json").read_text())
    assert again_summary["signatures"] == summary["signatures"]  # read back, not recomputed

    with pytest.raises(ValueError, match="another config"):
        run(ds, DedupConfig(num_partitions=4, threshold=0.9), ctx)


@pytest.mark.slow
def test_incremental_against_previous_run(ray_session, shared_data, tmp_path):
    """Run 1 indexes half the licenses; run 2 (the other half + edited copies of run-1 docs)
    reuses run 1's signatures: the copies and clear near dups of run-1 docs are dropped."""
    import ray

    nd = shared_data / "neardup"
    docs = schema.conform(load_spdx(nd / "spdx-license-list-6.12.0.tgz"))
    first, second = docs.take(list(range(0, docs.num_rows, 2))), docs.take(list(range(1, docs.num_rows, 2)))
    long_first = [r for r in first.to_pylist() if len((r["text"] or "").split()) > 600][:3]
    copies = [{"id": "copy-" + r["id"], "text": r["text"].replace(" the ", " a ", 1)} for r in long_first]
    second = pa.concat_tables([second, schema.make_docs(copies)])
    cfg1 = DedupConfig(num_partitions=4, exact=False)
    _drops(run(ray.data.from_arrow(first), _in(tmp_path / "run1", cfg1)))
    cfg2 = DedupConfig(num_partitions=4, exact=False, previous=[str(tmp_path / "run1")])
    drops = _drops(run(ray.data.from_arrow(second), _in(tmp_path / "run2", cfg2)))

    assert len(drops) == second.num_rows and not any(i in drops for i in first["id"].to_pylist())
    for c in copies:
        assert drops[c["id"]] == "dedup:near"
    pairs = load_pairs(nd / "spdx_pairs_jaccard_ge_0.5.tsv")
    first_ids = set(first["id"].to_pylist())
    for i in second["id"].to_pylist():
        partners = [j for (a, b), j in pairs.items() if i in (a, b)]
        clear_dup_of_old = any(j >= 0.9 and (a in first_ids or b in first_ids) for (a, b), j in pairs.items()
                               if i in (a, b))
        if clear_dup_of_old:
            assert drops[i] == "dedup:near", i
        if not i.startswith("copy-") and max(partners, default=0) < 0.6:
            assert drops[i] is None, i
    with pytest.raises(ValueError, match="not comparable"):
        run(ray.data.from_arrow(second), DedupConfig(num_partitions=4, previous=[str(tmp_path / "run1")],
                                                     minhash=MinHashConfig(num_perm=64),
                                                     workdir=str(tmp_path / "run3")))


@pytest.mark.slow
def test_exact_and_url_stage_on_ray(ray_session):
    import ray

    from raylm.data.dedup import exact

    docs = schema.make_docs([
        {"id": "a", "text": "Same text", "url": "http://x.org/1"},
        {"id": "b", "text": "same   TEXT", "url": "http://x.org/2"},
        {"id": "c", "text": "other text", "url": "HTTP://x.org/2/"},
        {"id": "d", "text": "third text", "url": "http://x.org/2#frag"},
        {"id": "e", "text": "same text", "drop": "lang:fr"},
    ])
    cfg = exact.ExactDedupConfig(url=True, num_partitions=2)
    got = _drops(exact.run(ray.data.from_arrow(docs).repartition(2), cfg))
    # b: exact dup of a. Among the rest, c and d share b's URL; b is gone, so c survives.
    assert got == {"a": None, "b": "dedup:exact", "c": None, "d": "dedup:url", "e": "lang:fr"}


def test_giant_bucket_split_on_ray_matches_unsplit_reference(ray_session, tmp_path):
    """300 templated pages share their LSH buckets: with lsh.max_bucket=64 every such bucket
    is split into sub-buckets on Ray, and the marks and clusters equal the unsplit
    single-process reference."""
    import random

    import ray

    from raylm.data.dedup.lsh import LSHConfig

    text = (Path(__file__).resolve().parents[2] / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text()
    words = text.split()
    rng = random.Random(0)
    template = " ".join(words[:400])
    rows = [{"id": f"t{i:04d}", "text": template + f" page {i} footer{i}"} for i in range(300)]
    for i in range(100):
        s = rng.randrange(len(words) - 300)
        rows.append({"id": f"d{i:04d}", "text": " ".join(words[s:s + 300])})
    docs = schema.make_docs(rows)
    cfg = DedupConfig(num_partitions=4, exact=False, lsh=LSHConfig(max_bucket=64))
    work = tmp_path / "dedup"
    got = _drops(run(ray.data.from_arrow(docs).repartition(4), _in(work, cfg)))
    summary = json.loads((work / "summary.json").read_text())
    assert summary["candidates"]["split_buckets"] >= 10 and summary["candidates"]["sub_buckets"] >= 50

    want, want_clusters, _ = dedup_local(docs, cfg)  # the reference never splits
    assert got == dict(zip(want["id"].to_pylist(), want["drop"].to_pylist()))
    assert sum(got[f"t{i:04d}"] is not None for i in range(300)) == 299  # one template page survives
    clusters = _table(ray.data.read_parquet(str(work / "clusters")))
    assert _sorted_rows(clusters, ["id", "cluster"]) == _sorted_rows(want_clusters, ["id", "cluster"])


def test_corpus_without_duplicates_runs_every_step_and_resumes(ray_session, tmp_path):
    """No exact duplicates and no LSH candidate pair (a real crawl of distinct pages hit this):
    every step is written empty, nothing is dropped, and a rerun reads the steps back."""
    import ray

    words = [f"w{i}" for i in range(4000)]
    texts = [" ".join(words[k * 40:(k + 1) * 40]) for k in range(100)]  # disjoint vocabularies
    docs = schema.conform(pa.table({"id": [f"d{k:03d}" for k in range(100)], "text": texts}))
    cfg = DedupConfig(num_partitions=4)
    work = tmp_path / "dedup"
    for attempt in range(2):
        got = _drops(run(ray.data.from_arrow(docs).repartition(3), _in(work, cfg)))
        assert got == {f"d{k:03d}": None for k in range(100)}, attempt
        summary = json.loads((work / "summary.json").read_text())
        assert {k: summary[k]["rows"] for k in ("exact_dups", "candidates", "edges", "components", "clusters",
                                                 "near_dups")} == dict.fromkeys(
            ("exact_dups", "candidates", "edges", "components", "clusters", "near_dups"), 0)
    # every document already dropped by an earlier stage: no signature at all, drops kept as they were
    gone = docs.set_column(docs.column_names.index("drop"), "drop", pa.array(["lang:fr"] * 100, pa.string()))
    got = _drops(run(ray.data.from_arrow(gone), _in(tmp_path / "dedup_gone", cfg)))
    assert got == {f"d{k:03d}": "lang:fr" for k in range(100)}
    assert json.loads((tmp_path / "dedup_gone" / "summary.json").read_text())["signatures"]["rows"] == 0
