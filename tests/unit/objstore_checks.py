"""The checks both object-store test files run, on whichever store `put` uploads to.

test_object_store.py (s3:// on moto) and test_object_store_gcs.py (gs:// on a GCS emulator)
differ only in their server and upload call; what raylm must read back is the same."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

Put = Callable[[str, bytes], None]  # (key in the test bucket, body)


def jsonl_glob_keeps_ids_uris_and_licenses(put: Put, prefix: str) -> None:
    """A `**.jsonl` glob under `prefix` (e.g. "s3://bucket") lists only the jsonl objects and
    reads them with text, url, license, mtime and stable ids; an empty glob is an error."""
    from raylm.data.ingest.files import FilesConfig, expand_paths, read_one

    rows = [{"text": f"document number {i} from the bucket", "url": f"https://example.org/{i}"} for i in range(5)]
    put("corpus/a.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:3]).encode())
    put("corpus/sub/b.jsonl", "".join(json.dumps(r) + "\n" for r in rows[3:]).encode())
    put("corpus/notes.bin", b"\x00\x01")
    uris = expand_paths([f"{prefix}/corpus/**.jsonl"])
    assert uris == [f"{prefix}/corpus/a.jsonl", f"{prefix}/corpus/sub/b.jsonl"]
    cfg = FilesConfig(paths=uris, url_field="url", license="CC-BY-4.0")
    tables = [read_one(u, cfg)[0].to_pylist() for u in uris]
    docs = [d for t in tables for d in t]
    assert [d["text"] for d in docs] == [r["text"] for r in rows]
    assert all(d["uri"].startswith(f"{prefix}/corpus/") and d["license"] == "CC-BY-4.0" for d in docs)
    assert [d["url"] for d in docs] == [r["url"] for r in rows]
    assert all(d["fetched_at"] for d in docs)  # the object's mtime, as for local files
    again = [d["id"] for u in uris for d in read_one(u, cfg)[0].to_pylist()]
    assert again == [d["id"] for d in docs] and len(set(again)) == 5  # stable ids
    with pytest.raises(FileNotFoundError):
        expand_paths([f"{prefix}/nothing-here/*.jsonl"])


def warc_reads_the_same_records_as_from_disk(put: Put, prefix: str, local: Path) -> None:
    """The WARC at `local`, uploaded under `prefix`/crawl/, gives its 299 records and the same
    counts as from disk."""
    from raylm.data.ingest.warc import WarcConfig, expand_paths, read_warc

    put("crawl/blackbook.warc.gz", local.read_bytes())
    uris = expand_paths([f"{prefix}/crawl/"])
    assert uris == [f"{prefix}/crawl/blackbook.warc.gz"]
    cfg = WarcConfig(paths=uris, content_types=[])
    stats_store, stats_disk = Counter(), Counter()
    from_store = [(r["url"], r["text"]) for r in read_warc(uris[0], cfg, stats_store)]
    from_disk = [(r["url"], r["text"]) for r in read_warc(str(local), cfg, stats_disk)]
    assert len(from_store) == 299 and from_store == from_disk and stats_store == stats_disk
