"""`raylm data` on the seed's sources (issue 24): a Wikipedia dump, a Project Gutenberg book and
Pushshift-style Reddit dumps, real samples from tests/data/readers, plus a cut copy of a dump
each. Every format is told by `format: auto`; skips and damage are counted per reason in
stats.json, and the provenance (page URL, subreddit) reaches the shard index."""

from __future__ import annotations

import bz2
import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raylm.cli import main
from raylm.data.ingest.files import FilesConfig, read_one

DATA = Path(__file__).resolve().parents[1] / "data" / "readers"

CONFIG = """\
out: {out}
data:
  ingest: {{files: {{paths: ["{src}"], rows_per_block: 100}}}}
  tokenizer: {{kind: char}}
  split: {{val_fraction: 0.2}}
"""


def test_seed_sources_through_the_pipeline(ray_session, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DATA / "enwiki-sample.xml.bz2", src / "enwiki-20160501-pages-articles.xml.bz2")
    xml = bz2.decompress((DATA / "enwiki-sample.xml.bz2").read_bytes())
    small_blocks = bz2.compress(xml, compresslevel=1)
    (src / "enwiki-cut.xml.bz2").write_bytes(small_blocks[:len(small_blocks) * 8 // 10])  # a cut download
    (src / "pg11.txt").write_bytes((DATA / "pg11-alice.txt").read_bytes()
                                   + (DATA / "pg11-alice-license.txt").read_bytes())
    shutil.copy(DATA / "reddit-comments.jsonl.zst", src / "RC_2016-12.zst")  # Pushshift's names
    shutil.copy(DATA / "reddit-submissions.jsonl.zst", src / "RS_2016-12.zst")
    zst = (DATA / "reddit-comments.jsonl.zst").read_bytes()
    (src / "RC_2016-11.zst").write_bytes(zst[:len(zst) // 2])

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "run", src=src))
    assert main(["data", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "dropped ingest:truncated: 2" in out

    stats = json.loads((tmp_path / "run" / "data" / "stats.json").read_text())
    # the same files read one by one without Ray: every skip and every damage reaches stats.json
    expected, kept = Counter(), 0
    for f in sorted(src.iterdir()):
        rows = read_one(str(f), FilesConfig(), f.name)[0].to_pylist()
        expected.update(r["drop"] for r in rows if r["drop"])
        kept += sum(r["drop"] is None for r in rows)
    assert stats["drop_reasons"] == dict(expected)
    assert expected["ingest:redirect"] > 37 and expected["ingest:namespace"] == 1  # + the cut dump's pages
    assert expected["ingest:truncated"] == 2 and expected["ingest:deleted"] >= 15 and expected["ingest:removed"] >= 8
    assert set(expected) == {"ingest:redirect", "ingest:namespace", "ingest:truncated", "ingest:deleted",
                             "ingest:removed"}
    assert stats["documents_kept"] == kept > 31 + 1 + 292 + 145  # + what the cut files kept

    idx = pa.concat_tables(pq.read_table(p) for p in (tmp_path / "run" / "data" / "shards").glob("*.idx.parquet"))
    rows = idx.select(["source", "uri", "url", "license"]).to_pylist()
    urls = {r["url"] for r in rows}
    assert "https://en.wikipedia.org/wiki/Anarchism" in urls
    assert "https://www.gutenberg.org/ebooks/11" in urls
    assert "https://www.reddit.com/r/coins/comments/5jffj1/_/dbhn11d/" in urls  # the subreddit, as provenance
    assert {r["license"] for r in rows if "wikipedia" in (r["url"] or "")} == {"CC-BY-SA-4.0"}
    assert {r["uri"].rsplit("/", 1)[1] for r in rows} == {
        "enwiki-20160501-pages-articles.xml.bz2", "enwiki-cut.xml.bz2", "pg11.txt", "RC_2016-12.zst",
        "RS_2016-12.zst", "RC_2016-11.zst"}
