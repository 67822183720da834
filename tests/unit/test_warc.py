"""WARC / WET reader on the real files in ../shared/data/warc (counts from the data README)."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest

from raylm.data import schema
from raylm.data.ingest.warc import WarcConfig, expand, expand_paths, read_table, read_warc

IAH = "IAH-20080430204825-00000-blackbook.warc.gz"


@pytest.fixture(scope="module")
def warc_dir(shared_data):
    return shared_data / "warc"


def test_iah_yields_every_response_record(warc_dir):
    stats = Counter()
    rows = list(read_warc(str(warc_dir / IAH), WarcConfig(content_types=[]), stats))
    assert len(rows) == 299
    assert sum(r["content_type"] == "text/html" for r in rows) == 140
    assert len({r["id"] for r in rows}) == 299
    assert all(r["source"] == "warc" and r["uri"].endswith(IAH) for r in rows)
    # 40 404s + 5 302s + 2 301s are kept as rows but marked; dns: records have no HTTP.
    assert stats["http_error"] == 47 and stats["corrupt"] == 0 and stats["truncated"] == 0
    assert Counter(r["drop"] for r in rows)["warc:http_404"] == 40
    assert sum(v for k, v in stats.items() if k != "decode_replaced") == 299


def test_iah_default_allow_list_marks_rather_than_omits(warc_dir):
    rows = list(read_warc(str(warc_dir / IAH), WarcConfig()))
    assert len(rows) == 299
    kept = [r for r in rows if r["drop"] is None]
    assert kept and all(r["content_type"] in ("text/html", "application/xhtml+xml", "text/plain") for r in kept)
    assert all(r["text"] == "" for r in rows if r["drop"] == "warc:content_type")
    robots = next(r for r in rows if r["url"] == "http://www.archive.org/robots.txt")
    assert robots["drop"] is None and "User-agent" in robots["text"]
    assert robots["fetched_at"] == "2008-04-30T20:48:25Z"


def test_common_crawl_excerpt_multilingual(warc_dir):
    rows = list(read_warc(str(warc_dir / "cc-main-2020-34-excerpt.warc.gz"), WarcConfig()))
    assert len(rows) == 16 and all(r["drop"] is None for r in rows)
    from urllib.parse import urlsplit
    # 16 pages from 15 hosts (06.live-radsport.ch twice).
    assert len({urlsplit(r["url"]).hostname for r in rows}) == 15
    texts = {r["url"]: r["text"] for r in rows}
    # A gb2312-declared page decodes to Chinese, a Russian site to Cyrillic, without U+FFFD.
    assert "湖北" in texts["http://003338.cn/l41/481397.html"]
    assert any("\u0400" <= ch <= "\u04ff" for ch in texts["http://01spb.ru/company/"])
    assert sum(t.count("\ufffd") for t in texts.values()) < 20


def test_whirlwind_wet_and_warc(warc_dir):
    (wet,) = list(read_warc(str(warc_dir / "whirlwind.warc.wet.gz"), WarcConfig()))
    assert wet["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert wet["content_type"] == "text/plain" and wet["fetched_at"] == "2024-05-18T01:58:10Z"
    assert wet["text"].startswith("Escopete - Biquipedia")
    (page,) = list(read_warc(str(warc_dir / "whirlwind.warc.gz"), WarcConfig()))
    assert page["url"] == wet["url"] and page["content_type"] == "text/html"
    assert "<html" in page["text"].lower() and "Escopete" in page["text"]
    # WAT holds metadata records only: nothing selected, nothing crashes.
    assert list(read_warc(str(warc_dir / "whirlwind.warc.wat.gz"), WarcConfig())) == []


def test_chunked_transfer_encoding_is_undone(warc_dir):
    rows = list(read_warc(str(warc_dir / "dolma-sample-0001.warc.gz"), WarcConfig()))
    assert len(rows) == 15
    # Chunked bodies would start with a hex chunk-size line; decoded ones start with the page.
    assert all(r["text"].lstrip().lower().startswith("<!doctype") for r in rows if r["drop"] is None)


def test_truncated_gzip_is_a_counted_skip(warc_dir, tmp_path):
    data = (warc_dir / IAH).read_bytes()
    p = tmp_path / "half.warc.gz"
    p.write_bytes(data[: len(data) // 2])
    stats = Counter()
    rows = list(read_warc(str(p), WarcConfig(content_types=[]), stats))
    assert 150 < len(rows) < 299
    assert stats["truncated"] == 1
    assert [r["drop"] for r in rows].count("warc:truncated") == 1


def test_corrupt_gzip_member_resyncs(warc_dir, tmp_path):
    data = bytearray((warc_dir / IAH).read_bytes())
    mid = len(data) // 3
    data[mid:mid + 200] = b"x" * 200
    p = tmp_path / "bad.warc.gz"
    p.write_bytes(bytes(data))
    stats = Counter()
    rows = list(read_warc(str(p), WarcConfig(content_types=[]), stats))
    assert stats["corrupt"] == 1
    # Only the damaged member is lost; reading resumes at the next one.
    assert len(rows) == 299 and sum(r["drop"] != "warc:corrupt" for r in rows) == 298


def test_garbage_and_empty_files(tmp_path):
    bad = tmp_path / "junk.warc.gz"
    bad.write_bytes(b"not a warc file\n" * 100)
    stats = Counter()
    rows = list(read_warc(str(bad), WarcConfig(), stats))
    assert [r["drop"] for r in rows] == ["warc:corrupt"] and stats["corrupt"] == 1
    empty = tmp_path / "empty.warc"
    empty.write_bytes(b"")
    assert list(read_warc(str(empty), WarcConfig())) == []


def test_uncompressed_warc_and_too_large(warc_dir, tmp_path):
    p = tmp_path / "raw.warc"
    p.write_bytes(gzip.decompress((warc_dir / IAH).read_bytes()))
    stats = Counter()
    rows = list(read_warc(str(p), WarcConfig(content_types=[], max_record_bytes=50_000), stats))
    assert len(rows) == 299 and stats["too_large"] > 0
    assert all(r["text"] == "" for r in rows if r["drop"] == "warc:too_large")


def test_read_table_blocks_have_doc_schema(warc_dir):
    cfg = WarcConfig(rows_per_block=100)
    tables = list(read_table([str(warc_dir / IAH), str(warc_dir / "whirlwind.warc.wet.gz")], cfg))
    assert [t.num_rows for t in tables] == [100, 100, 100]
    assert all(t.schema == schema.DOC_SCHEMA for t in tables)


def test_expand_paths(warc_dir, tmp_path):
    # A directory lists WARC and WET files; the WAT file (metadata only) is not a WARC suffix.
    assert len(expand_paths([str(warc_dir)])) == 6
    assert [p.rsplit("/", 1)[1] for p in expand_paths([str(warc_dir / "dolma-*.warc.gz")])] == [
        "dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        expand_paths([str(tmp_path / "nope.warc.gz")])
    with pytest.raises(FileNotFoundError, match="matches no files"):
        expand_paths([str(tmp_path / "*.warc.gz")])


def test_record_ids_do_not_depend_on_where_the_warc_is(warc_dir, tmp_path):
    import shutil

    for where in ("a", "b/c"):
        (tmp_path / where).mkdir(parents=True)
        shutil.copy(warc_dir / "whirlwind.warc.wet.gz", tmp_path / where)

    def ids(entry):
        return [r["id"] for u, n in expand([entry]) for r in read_warc(u, WarcConfig(), name=n)]

    wet = "whirlwind.warc.wet.gz"
    assert ids(str(tmp_path / "a")) == ids(str(tmp_path / "b/c/*.wet.gz")) == ids(str(warc_dir / wet))
    assert ids(str(tmp_path / "a")) != [r["id"] for r in read_warc(str(tmp_path / "a" / wet), WarcConfig())]


def test_config_checks():
    with pytest.raises(ValueError, match="kinds"):
        WarcConfig(kinds=[])
    assert WarcConfig(content_types=[" Text/HTML "]).content_types == ["text/html"]


def test_uri_paths_go_through_pyarrow_fs(warc_dir):
    # The same code path as s3:// or gs:// (pyarrow.fs.FileSystem.from_uri), on file://.
    uri = "file://" + str(warc_dir / "whirlwind.warc.wet.gz")
    assert expand_paths([uri]) == [str(warc_dir / "whirlwind.warc.wet.gz")]
    (row,) = list(read_warc(uri, WarcConfig()))
    assert row["uri"] == uri and row["url"] == "https://an.wikipedia.org/wiki/Escopete"
    with pytest.raises(FileNotFoundError):
        list(read_warc("file:///nonexistent/x.warc.gz", WarcConfig()))
