"""URL normalisation, link extraction, host and address rules, robots policy, frontier logic."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.ingest.crawl import PART_SCHEMA, PartWriter, group_by_host, next_frontier, result_row
from raylm.data.ingest.crawl_url import address_refused, extract_links, host_allowed, normalize, parse_sitemap
from raylm.data.ingest.robots import policy_from_response, product_token


@pytest.mark.parametrize("raw, want", [
    ("HTTP://Docs.Python.ORG:80/3/index.html#intro", "http://docs.python.org/3/index.html"),
    ("https://example.com:443", "https://example.com/"),
    ("https://example.com:8443/a/./b/../c/", "https://example.com:8443/a/c/"),
    ("http://user:pw@example.com/x?b=2&a=1", "http://example.com/x?b=2&a=1"),
    ("http://[::1]:8080/", "http://[::1]:8080/"),
    ("mailto:someone@example.com", None), ("javascript:void(0)", None), ("ftp://x/y", None),
    ("http://example.com:99999/", None), ("", None), ("http:///nohost", None),
    ("http://Bücher.Example/a", "http://xn--bcher-kva.example/a"),  # IDN -> punycode, same as its ASCII form
    ("http://xn--bcher-kva.example/a", "http://xn--bcher-kva.example/a"),
])
def test_normalize(raw, want):
    assert normalize(raw) == want


def test_normalize_relative():
    assert normalize("../b.html#x", "http://h/a/c/d.html") == "http://h/a/b.html"
    assert normalize("//other.org/p", "https://h/") == "https://other.org/p"


def test_extract_links_base_nofollow_and_dedup():
    html = ('<base href="http://h/docs/"><a href="a.html">1</a><a href="a.html#s">2</a>'
            '<a rel="nofollow" href="x.html">3</a><iframe src="/f.html"></iframe><a href="mailto:x@y">m</a>')
    assert extract_links(html, "http://h/index.html") == ["http://h/docs/a.html", "http://h/f.html"]
    assert extract_links('<meta name="robots" content="noindex, nofollow"><a href="a">', "http://h/") == []
    assert extract_links("<a href='x'><<<>>>&&<a", "http://h/") == ["http://h/x"]


def test_host_rules():
    assert host_allowed("docs.python.org", ["docs.python.org"])
    assert not host_allowed("evil-docs.python.org", ["docs.python.org"])
    assert host_allowed("a.b.python.org", [".python.org"]) and host_allowed("python.org", [".python.org"])
    assert not host_allowed("notpython.org", [".python.org"])
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0",
               "::ffff:127.0.0.1", "224.0.0.1"):
        assert address_refused(ip), ip
    assert not address_refused("151.101.0.223") and not address_refused("2a04:4e42::223")


def test_robots_policy():
    text = ("User-agent: raylm\nDisallow: /private/\nCrawl-delay: 2.5\n\n"
            "User-agent: *\nDisallow: /\nCrawl-delay: 9\n")
    p = policy_from_response(200, text, "raylm/0.1 (+https://x)")
    assert product_token("raylm/0.1 (+https://x)") == "raylm"
    assert p.allowed("http://h/public.html") and not p.allowed("http://h/private/a.html")
    assert p.crawl_delay() == 2.5
    other = policy_from_response(200, text, "otherbot")
    assert not other.allowed("http://h/public.html") and other.crawl_delay() == 9
    assert policy_from_response(404, None, "raylm").allowed("http://h/x")
    assert not policy_from_response(503, "", "raylm").allowed("http://h/x")
    assert not policy_from_response(None, None, "raylm").allowed("http://h/x")


def test_sitemap_parse():
    urls, index = parse_sitemap("<sitemapindex><sitemap><loc> https://h/s1.xml </loc></sitemap></sitemapindex>")
    assert urls == ["https://h/s1.xml"] and index
    assert parse_sitemap("<urlset><url><loc>https://H/a</loc></url></urlset>") == (["https://h/a"], False)


def _res(url, outcome="ok", depth=0, links=(), status=200, text="<p>x</p>"):
    return {"requested_url": url, "url": url, "depth": depth, "status": status, "outcome": outcome,
            "content_type": "text/html", "text": text if outcome == "ok" else None, "links": list(links),
            "attempts": 1, "error": None, "fetched_at": "2026-01-01T00:00:00Z"}


def test_result_rows_and_frontier():
    rows = [result_row(_res("http://h/", links=["http://h/a", "http://h/b", "http://o/x"])),
            result_row(_res("http://h/404", outcome="http_error", status=404)),
            result_row(_res("http://h/r", outcome="redirect", depth=2, links=["http://g/r"]))]
    t = pa.Table.from_pylist(rows, schema=PART_SCHEMA)
    assert t.select(list(schema.DOC_COLUMNS)).schema == schema.DOC_SCHEMA
    assert t.column("drop").to_pylist() == [None, "crawl:http_error", "crawl:redirect"]
    assert t.column("text").to_pylist()[1] == ""
    seen = {"http://h/", "http://h/404", "http://h/r", "http://h/a"}
    nxt = next_frontier(t, seen, ["h", "g"], max_depth=2, budget=10)
    # Seen and off-host links are skipped; a cross-host redirect keeps its depth (2 <= max_depth).
    assert nxt == [("http://h/b", 1), ("http://g/r", 2)]
    assert next_frontier(t, set(), ["h", "g"], max_depth=2, budget=1) == [("http://h/a", 1)]
    assert next_frontier(t, set(), ["h", "g"], max_depth=0, budget=10) == []
    assert group_by_host([("http://h/1", 0), ("https://h/2", 0), ("http://g/", 0)]) == {
        "h": [("http://h/1", 0), ("https://h/2", 0)], "g": [("http://g/", 0)]}


def test_robots_sitemaps_enter_the_frontier(tmp_path):
    from raylm.data.ingest.crawl import _round_sitemaps, _sitemaps_writer

    write = _sitemaps_writer(tmp_path / "sitemaps")
    write("http://h", ["http://h/sitemap.xml", "http://H/sitemap.xml", "ftp://h/x"])  # dup, not http(s)
    write("https://o", ["https://o/s.xml"])
    write("http://h", ["http://h/sitemap.xml"])  # a retried task writes the same file again
    sitemaps = _round_sitemaps(tmp_path)
    assert sorted(sitemaps) == ["http://h/sitemap.xml", "https://o/s.xml"]
    rows = [result_row(_res("http://h/", links=["http://h/a"], depth=3)),
            result_row(_res("http://h/s1.xml", outcome="sitemap", depth=-1, links=["http://h/b", "http://o/c"])),
            result_row(_res("http://h/index.xml", outcome="sitemap_index", depth=-1, links=["http://h/s2.xml"]))]
    t = pa.Table.from_pylist(rows, schema=PART_SCHEMA)
    assert t.column("drop").to_pylist() == [None, "crawl:sitemap", "crawl:sitemap_index"]
    # Sitemaps go at depth -1 (fetched as sitemaps), their pages at depth 0, even past max_depth;
    # only allowed hosts, each URL once.
    nxt = next_frontier(t, {"http://h/"}, ["h"], max_depth=3, budget=10, sitemaps=sitemaps)
    assert nxt == [("http://h/sitemap.xml", -1), ("http://h/b", 0), ("http://h/s2.xml", -1)]


def test_part_writer_is_atomic_and_resumable(tmp_path):
    w = PartWriter(tmp_path, "h", rows=2)
    for i in range(5):
        w.add(_res(f"http://h/{i}"))
    assert len(list(tmp_path.glob("*.parquet"))) == 2  # two full parts; one row still buffered
    w.flush()
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    assert PartWriter(tmp_path, "h", rows=2).done_urls() == {f"http://h/{i}" for i in range(5)}
    assert PartWriter(tmp_path, "g", rows=2).done_urls() == set()


def test_crawl_refuses_bad_seeds_before_starting(tmp_path):
    from raylm.data.ingest.crawl import CrawlConfig, crawl

    with pytest.raises(ValueError, match="no valid http"):
        crawl(CrawlConfig(seeds=["mailto:x@y", "ftp://h/"], work_dir=str(tmp_path / "a")))
    with pytest.raises(ValueError, match="outside crawl.allowed_hosts"):
        crawl(CrawlConfig(seeds=["http://other.org/"], allowed_hosts=["h.org"], work_dir=str(tmp_path / "b")))
    assert not list(tmp_path.glob("*/round-*"))  # nothing written


def test_resume_with_other_scope_settings_is_refused(tmp_path):
    from raylm.data.ingest.crawl import CrawlConfig, check_scope

    base = dict(seeds=["http://h.org/"], work_dir=str(tmp_path), max_pages=50)
    check_scope(tmp_path, CrawlConfig(**base))
    check_scope(tmp_path, CrawlConfig(**base, retries=7, min_delay_s=0.2, num_cpus=0.5))  # speed knobs: fine
    with pytest.raises(ValueError, match=r"crawl.max_pages was 50, now 60.*new crawl.work_dir"):
        check_scope(tmp_path, CrawlConfig(**{**base, "max_pages": 60}))
    with pytest.raises(ValueError, match="crawl.allowed_hosts"):
        check_scope(tmp_path, CrawlConfig(**base, allowed_hosts=["other.org"]))
