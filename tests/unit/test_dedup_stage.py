"""The dedup stage's pure reference (dedup_local): tiny tables and the real SPDX license set."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.dedup.evaluate import cluster_pairs, load_pairs, load_spdx, scores
from raylm.data.dedup.lsh import LSHConfig
from raylm.data.dedup.stage import DedupConfig, dedup_local, signature_table

BASE = ("the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat "
        "and the bird sings a song in the tall green tree near the old stone house")


def _docs():
    return schema.make_docs([
        {"id": "d1", "text": BASE},
        {"id": "d2", "text": BASE.replace("old stone house", "old stone barn")},   # near dup of d1
        {"id": "d3", "text": BASE.upper()},                                        # exact dup of d1
        {"id": "d4", "text": "an entirely different document about shingles and hashes " * 3},
        {"id": "d5", "text": BASE, "drop": "quality:short"},                       # dropped earlier
        {"id": "d6", "text": ""},
    ])


def test_exact_then_near_marks():
    marked, clusters, pairs = dedup_local(_docs(), DedupConfig())
    drops = dict(zip(marked["id"].to_pylist(), marked["drop"].to_pylist()))
    assert drops == {"d1": None, "d2": "dedup:near", "d3": "dedup:exact", "d4": None,
                     "d5": "quality:short", "d6": None}
    assert sorted(zip(clusters["id"].to_pylist(), clusters["cluster"].to_pylist())) == [
        ("d1", "d1"), ("d2", "d1"), ("d3", "d1")]
    assert all(j >= 0.8 for j in pairs["jaccard"].to_pylist())
    assert marked.num_rows == 6 and marked.column_names[:9] == list(schema.DOC_COLUMNS)


def test_survivor_longest():
    docs = schema.make_docs([{"id": "a", "text": BASE}, {"id": "b", "text": BASE + " and more"}])
    marked, clusters, _ = dedup_local(docs, DedupConfig(survivor="longest", threshold=0.7,
                                                        lsh=LSHConfig(threshold=0.5)))
    assert marked["drop"].to_pylist() == ["dedup:near", None]
    assert set(clusters["cluster"].to_pylist()) == {"b"}


def test_signature_table_skips_dropped():
    t = signature_table(_docs(), DedupConfig())
    assert t["id"].to_pylist() == ["d1", "d2", "d3", "d4", "d6"]
    assert t["n_shingles"].to_pylist()[-1] == 0
    assert t.schema.field("minhash").type == pa.list_(pa.uint32(), 128)


def test_config_checks():
    with pytest.raises(ValueError, match="lsh.threshold"):
        DedupConfig(threshold=0.6, lsh=LSHConfig(threshold=0.7))
    with pytest.raises(ValueError, match="score_column"):
        DedupConfig(survivor="score")


def _load(*sets):
    from raylm import config as C
    from raylm.root import RootConfig

    return C.load(RootConfig, None, list(sets)).data.dedup


def test_unverified_dedup_has_one_threshold():
    """verify: false makes the LSH the decision, so dedup.threshold must be the LSH's: a config
    error naming the keys, never a threshold silently ignored (issue 21)."""
    from raylm.config import ConfigError

    with pytest.raises(ConfigError, match=r"data.dedup: dedup.verify is false.*dedup.threshold \(0.8\).*"
                                          r"dedup.lsh.threshold"):
        _load("data.dedup.verify=false")  # the defaults disagree: 0.8 decides, the LSH is tuned at 0.7
    with pytest.raises(ConfigError, match="dedup.threshold .0.6.*dedup.lsh.threshold to the same value .now 0.7"):
        _load("data.dedup.verify=false", "data.dedup.threshold=0.6")
    with pytest.raises(ConfigError, match="dedup.lsh.bands/rows are set"):
        _load("data.dedup.verify=false", "data.dedup.lsh.threshold=0.8", "data.dedup.lsh.bands=8",
              "data.dedup.lsh.rows=16")
    agreed = _load("data.dedup.verify=false", "data.dedup.lsh.threshold=0.8")  # one knob: both 0.8
    assert agreed.lsh.params(128) == LSHConfig(threshold=agreed.threshold).params(128)
    _load("data.dedup.verify=false", "data.dedup.threshold=0.7")
    _load("data.dedup.verify=false", "data.dedup.near=false")  # no near dedup: no threshold to honour
    with pytest.raises(ConfigError, match="dedup.lsh.threshold .0.9. above dedup.threshold .0.8."):
        _load("data.dedup.lsh.threshold=0.9")  # verified: the LSH may not be tuned above the decision


def test_defaults_decide_at_0_8_on_lsh_tuned_at_0_7():
    d = DedupConfig()
    assert (d.verify, d.threshold, d.lsh.threshold) == (True, 0.8, 0.7)
    assert d.lsh.params(d.minhash.num_perm) == LSHConfig(threshold=0.7).params(128)


def test_workdir_comes_from_the_config_then_the_run(tmp_path):
    from raylm.data.dedup.stage import workdir_of
    from raylm.data.config import StageContext

    ctx = StageContext(out=tmp_path, seed=1)
    assert workdir_of(DedupConfig(), ctx) == str(tmp_path / "dedup")
    assert workdir_of(DedupConfig(workdir="dd"), ctx) == str(tmp_path / "dd")
    assert workdir_of(DedupConfig(workdir="/abs/dd"), ctx) == "/abs/dd"
    assert workdir_of(DedupConfig(workdir="dd"), None) == "dd"


def test_license_set_pair_precision_recall(shared_data):
    """Issue 5 target: pair-level precision and recall >= 0.95 at J >= 0.8 (defaults)."""
    nd = shared_data / "neardup"
    docs = load_spdx(nd / "spdx-license-list-6.12.0.tgz")
    truth = {p for p, j in load_pairs(nd / "spdx_pairs_jaccard_ge_0.5.tsv").items() if j >= 0.8}
    assert docs.num_rows == 728 and len(truth) > 300
    _, clusters, pairs = dedup_local(docs, DedupConfig(exact=False))
    s = scores(set(zip(pairs["src"].to_pylist(), pairs["dst"].to_pylist())), truth)
    assert s["precision"] >= 0.95 and s["recall"] >= 0.95, s
    # Clusters are connected components: every true pair ends up in one cluster.
    assert scores(cluster_pairs(clusters), truth)["recall"] >= 0.95
