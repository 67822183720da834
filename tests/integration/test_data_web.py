"""The whole cleaning pipeline on real WARC crawls: every stage runs, stats add up, and no PII
reaches the shards."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from raylm.cli import main
from raylm.data import shards

REPO = Path(__file__).resolve().parents[2]
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


@pytest.fixture(scope="module")
def web_run(ray_session, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    warcs = [str(shared_data / "warc" / n) for n in ("IAH-20080430204825-00000-blackbook.warc.gz",
                                                    "cc-main-2020-34-excerpt.warc.gz")]
    rc = main(["data", str(REPO / "configs" / "web.yaml"), "--set", f"out={out}",
               "--set", f"data.ingest.warc.paths={json.dumps(warcs)}", "--set", "data.tokenizer.vocab_size=512"])
    assert rc == 0
    return out


def test_every_stage_reports_and_counts_add_up(web_run):
    st = json.loads((web_run / "data" / "stats.json").read_text())
    names = [s["stage"] for s in st["stages"]]
    assert names == ["extract", "normalise", "langid", "quality", "content", "pii", "dedup", "augment"]
    for a, b in zip(st["stages"], st["stages"][1:]):
        assert a["docs_out"] == b["docs_in"]
    m = shards.read_manifest(web_run / "data" / "shards")
    assert st["documents_kept"] == m["splits"]["train"]["documents"] + m["splits"]["val"]["documents"]
    assert st["stages"][-1]["added"] > 0


def test_no_email_reaches_the_shards(web_run):
    from tokenizers import Tokenizer

    d = web_run / "data" / "shards"
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    text = "".join(tok.decode(np.fromfile(p, dtype="<u2").tolist()) for p in sorted(d.glob("*.bin")))
    assert len(text) > 1000
    assert not EMAIL.search(text)
    counts = json.loads((web_run / "data" / "stats.json").read_text())["counts"]
    assert "<EMAIL>" in text or counts.get("pii_email", 0) == 0


def test_augmented_documents_are_train_only_with_provenance(web_run):
    import pyarrow.parquet as pq

    d = web_run / "data" / "shards"
    train = [pq.read_table(p) for p in d.glob("train-*.idx.parquet")]
    val = [pq.read_table(p) for p in d.glob("val-*.idx.parquet")]
    assert any(t["augmented_from"].null_count < t.num_rows for t in train)
    assert all(t["augmented_from"].null_count == t.num_rows for t in val)
    assert all(u is not None for t in train for u in t["url"].to_pylist())
