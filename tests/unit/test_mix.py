"""data.mix (issue 24 item 6): seeded repetition per source on the train split, its config
checks, its stats, and documents / tokens per source in the manifest; no Ray."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raylm import config as C
from raylm.root import RootConfig
from raylm.data import mix, stats
from raylm.data.config import DataConfig, fingerprint, plan
from raylm.data.shards import source_counts, write_manifest


def _batch(n_per=6):
    rows = []
    for src in ("wiki", "books", "web"):
        for i in range(n_per):
            rows.append({"id": f"{src}{i}", "text": f"{src} text {i}", "source": src,
                         "split": "val" if i == 0 else "train", "drop": "quality:x" if i == 1 else None,
                         "_bytes_ingest": 10})
    return pa.Table.from_pylist(rows)


def test_integer_weights_repeat_and_drop_only_kept_train_documents():
    out = mix.mix(_batch(), {"wiki": 3.0, "books": 0.0}, seed=1)
    by = {}
    for r in out.to_pylist():
        by.setdefault((r["source"], r["repeat_of"] is not None), []).append(r)
    # wiki: rows 2-5 are kept train -> 2 repeats each; the val row and the dropped row untouched
    assert len(by[("wiki", True)]) == 8
    assert sorted({r["repeat_of"] for r in by[("wiki", True)]}) == ["wiki2", "wiki3", "wiki4", "wiki5"]
    assert all(r["text"] == r["repeat_of"].replace("wiki", "wiki text ") for r in by[("wiki", True)])
    assert all(r["_bytes_ingest"] == 0 for r in by[("wiki", True)])  # counted once, on the original
    ids = [r["id"] for r in out.to_pylist()]
    assert len(ids) == len(set(ids))
    # books weight 0: kept train rows marked, the val row and the already-dropped row untouched
    books = {r["id"]: r["drop"] for r in by[("books", False)]}
    assert books == {"books0": None, "books1": "quality:x", **{f"books{i}": mix.DOWNSAMPLED for i in range(2, 6)}}
    assert ("books", True) not in by and ("web", True) not in by
    assert all(r["drop"] in (None, "quality:x") for r in by[("web", False)])  # unnamed: weight 1


def test_fractional_weights_are_seeded_per_document():
    ids = [f"doc{i}" for i in range(20000)]
    for w in (0.3, 1.5, 2.25):
        counts = [mix.copies(i, w, seed=7) for i in ids]
        assert set(counts) == {int(w), int(w) + 1}
        assert abs(sum(counts) / len(ids) - w) < 0.02, w
    assert [mix.copies(i, 0.5, 7) for i in ids[:50]] == [mix.copies(i, 0.5, 7) for i in ids[:50]]
    assert [mix.copies(i, 0.5, 7) for i in ids[:200]] != [mix.copies(i, 0.5, 8) for i in ids[:200]]
    # batch boundaries do not matter
    b = _batch(40)
    whole = mix.mix(b, {"web": 1.5}, 3)
    parts = pa.concat_tables([mix.mix(b.slice(0, 50), {"web": 1.5}, 3), mix.mix(b.slice(50), {"web": 1.5}, 3)])
    assert sorted(whole["id"].to_pylist()) == sorted(parts["id"].to_pylist())


def test_stats_count_repeats_as_added_not_read():
    out = mix.mix(_batch(), {"wiki": 2.0, "books": 0.0}, seed=1)
    out = stats.add_stage_bytes(out, "mix")
    report = stats.merge([stats.partial(out)["stats"][0].as_py()], ["quality", "mix"])
    assert report["documents_read"] == 18
    q, m = report["stages"]
    assert (q["docs_in"], q["docs_out"]) == (18, 15)
    assert m == {**m, "docs_in": 15, "dropped": 4, "added": 4, "docs_out": 15}
    assert report["drop_reasons"][mix.DOWNSAMPLED] == 4


def test_check_names_bad_entries():
    with pytest.raises(ValueError, match="'wikk' is not a source of this run; its sources: file, wiki"):
        mix.check({"wikk": 2}, ["file", "wiki"])
    with pytest.raises(ValueError, match=r"data.mix.wiki: weight -1"):
        mix.check({"wiki": -1}, ["wiki"])
    with pytest.raises(ValueError, match="every source has weight 0"):
        mix.check({"wiki": 0, "file": 0}, ["file", "wiki"])
    mix.check({"wiki": 0}, ["file", "wiki"])


def test_config_sources_and_mix(tmp_path):
    src = {"data.ingest.sources": {"wiki": {"paths": ["w/*.xml"]}, "books": {"paths": ["b/*.txt"]}},
           "data.ingest.files.paths": ["x.txt"]}
    ok = C.load(RootConfig, None, [f"{k}={v}" for k, v in src.items()] + ["data.mix={wiki: 2, file: 0.5}"]).data
    assert ok.ingest.source_names() == ["file", "wiki", "books"]
    assert plan(ok.steps, mix=True) == ["split", "mix"]
    assert plan(["dedup", "augment"], mix=True) == ["dedup", "split", "mix", "augment"]
    bad = {
        "data.mix={wikk: 2}": "data.mix: 'wikk' is not a source",
        "data.steps=[mix, split]": "mix must come after split",
    }
    for override, match in bad.items():
        with pytest.raises(C.ConfigError, match=match):
            C.load(RootConfig, None, [f"{k}={v}" for k, v in src.items()] + ["data.mix={wiki: 2}", override])
    with pytest.raises(C.ConfigError, match="mix is listed but data.mix names no source weights"):
        C.load(RootConfig, None, ["data.steps=[mix]"])
    with pytest.raises(C.ConfigError, match="data.ingest.sources.file: a source name"):
        C.load(RootConfig, None, ["data.ingest.sources={file: {paths: [a.txt]}}"])
    with pytest.raises(C.ConfigError, match=r"data.ingest.sources.wiki.paths is empty"):
        C.load(RootConfig, None, ["data.ingest.sources={wiki: {format: txt}}"])


def test_fingerprint_moves_with_mix_only_when_set():
    from raylm.data.config import IngestConfig
    from raylm.data.ingest.files import FilesConfig

    ing = IngestConfig(files=FilesConfig(paths=["a.txt"]))
    base = DataConfig(ingest=ing, steps=["dedup"])
    assert fingerprint(base, 1) == fingerprint(DataConfig(ingest=ing, steps=["dedup"], mix={}), 1)
    assert fingerprint(base, 1) != fingerprint(DataConfig(ingest=ing, steps=["dedup"], mix={"file": 2.0}), 1)


def test_source_counts_and_manifest_per_source(tmp_path):
    idx = pa.table({"source": ["wiki", "wiki", "books"], "n_tokens": [10, 20, 5],
                    "repeat_of": [None, "w1", None]})
    assert source_counts(idx) == {"wiki": {"documents": 2, "tokens": 30, "repeats": 1},
                                  "books": {"documents": 1, "tokens": 5, "repeats": 0}}
    import json

    metas = [{"name": "train-00000", "tokens": 30, "documents": 2, "bytes": 9,
              "sources": json.dumps({"wiki": {"documents": 2, "tokens": 30, "repeats": 1}})},
             {"name": "train-00001", "tokens": 5, "documents": 1, "bytes": 3,
              "sources": json.dumps({"books": {"documents": 1, "tokens": 5, "repeats": 0}})},
             {"name": "val-00000", "tokens": 7, "documents": 1, "bytes": 2,
              "sources": json.dumps({"wiki": {"documents": 1, "tokens": 7, "repeats": 0}})}]
    write_manifest(tmp_path, metas, dtype="uint16", vocab_size=9, eos_id=8, tokenizer="tokenizer.json")
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["splits"]["train"]["sources"] == {"wiki": {"documents": 2, "tokens": 30, "repeats": 1},
                                               "books": {"documents": 1, "tokens": 5, "repeats": 0}}
    assert m["sources"]["wiki"] == {"documents": 3, "tokens": 37, "repeats": 1}
    assert "sources" not in m["splits"]["train"]["shards"][0]
