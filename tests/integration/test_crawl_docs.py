"""Crawl the real Python 3.11 docs (Debian python3.11-doc) served on 127.0.0.1, through Ray.

Ground truth comes from the file tree, not from the crawler: a breadth-first walk of the
HTML files over their relative hrefs gives every reachable page and every broken link
(the one real one is whatsnew/changelog.html). The server's own request log shows what
was fetched, so "nothing outside the allowed host" and "no page fetched twice on resume"
are checked on the wire.
"""

from __future__ import annotations

import json
import posixpath
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq
import pytest

from raylm.data import schema
from raylm.data.ingest.crawl import CrawlConfig, crawl, run

DOCS = Path("/usr/share/doc/python3.11/html")
pytestmark = [pytest.mark.network,
              pytest.mark.skipif(not (DOCS / "index.html").exists(),
                                 reason=f"{DOCS} absent: apt-get install -y --no-install-recommends python3.11-doc")]


def reachable_from_files(root: Path, start: str = "index.html") -> tuple[set[str], set[str]]:
    """(HTML pages reachable from `start`, missing HTML targets) by walking files and hrefs."""
    href = re.compile(r'href="([^"#?]*)')
    seen, missing, todo = {start}, set(), [start]
    while todo:
        page = todo.pop()
        html = (root / page).read_text(errors="replace")
        for h in href.findall(html):
            if not h or "://" in h or h.startswith(("mailto:", "javascript:", "//")):
                continue
            h = unquote(h)
            base = "" if h.startswith("/") else posixpath.dirname(page)  # a few hrefs are site-absolute
            target = posixpath.normpath(posixpath.join(base, h.lstrip("/")))
            if h.endswith("/"):
                target += "/index.html"
            if not target.endswith(".html") or target in seen or target.startswith(".."):
                continue
            seen.add(target)
            if (root / target).is_file():
                todo.append(target)
            else:
                missing.add(target)
    return seen - missing, missing


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("httpd") / "access.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                                 "--directory", str(DOCS)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(100):  # wait for the port to accept connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def requests_in(log: Path) -> list[str]:
    """Paths requested so far, from http.server's access log on stderr."""
    return re.findall(r'"GET (\S+) HTTP', log.read_text())


def test_docs_crawl_fetches_every_reachable_page_and_resumes(ray_session, docs_server, tmp_path):
    root, log = docs_server
    cfg = CrawlConfig(seeds=[root + "/index.html"], allow_private_addresses=True, min_delay_s=0.0,
                      per_host_concurrency=4, max_depth=50, max_pages=5000, retries=1, backoff_s=0.1,
                      work_dir=str(tmp_path / "crawl"))
    stats = crawl(cfg)
    pages, missing = reachable_from_files(DOCS)
    assert missing == {"whatsnew/changelog.html"} and len(pages) > 500

    rows = [r for f in sorted((tmp_path / "crawl").glob("round-*/parts/*.parquet"))
            for r in pq.read_table(f).to_pylist()]
    ok = {urlsplit(r["url"]).path.lstrip("/") for r in rows if r["outcome"] == "ok"}
    assert {p for p in ok if p.endswith(".html")} == pages
    failures = [json.loads(line) for line in (tmp_path / "crawl" / "failures.jsonl").read_text().splitlines()]
    assert [f["url"] for f in failures if f["status"] == 404] == [root + "/whatsnew/changelog.html"]
    assert stats["outcomes"]["ok"] == len(ok) and stats["urls"] == len(rows)
    assert len({r["requested_url"] for r in rows}) == len(rows)  # URL-level dedup: each URL once
    # Nothing off the allowed host: every row is on it, and the server saw each page once.
    assert all(r["url"].startswith(root + "/") for r in rows)
    wire = requests_in(log)
    pages_wire = [p for p in wire if p != "/robots.txt"]
    assert len(pages_wire) == len(set(pages_wire)) == len(rows)
    assert wire.count("/robots.txt") == 1 < stats["rounds"]  # asked once per crawl (cached; a 404: allow all)

    # Interrupt the last round: its marker and half its parts vanish. A rerun fetches only those.
    last = sorted((tmp_path / "crawl").glob("round-*"))[-1]
    (last / "_DONE").unlink()
    parts = sorted((last / "parts").glob("*.parquet"))
    lost = {r["requested_url"] for p in parts[: len(parts) // 2 + 1] for r in pq.read_table(p).to_pylist()}
    for p in parts[: len(parts) // 2 + 1]:
        p.unlink()
    again = crawl(cfg)
    wire2 = requests_in(log)[len(wire):]
    assert {root + p for p in wire2 if p != "/robots.txt"} == lost
    assert "/robots.txt" not in wire2  # the resumed crawl reads its cached answer
    assert again["outcomes"] == stats["outcomes"]

    ds = run(cfg)  # already complete: no request, just the documents
    assert requests_in(log)[len(wire) + len(wire2):] == []
    t = ds.to_arrow_refs()
    import ray

    table = ray.get(t)
    got = sum(x.num_rows for x in table)
    assert got == len(rows)
    first = table[0]
    assert first.select(list(schema.DOC_COLUMNS)).schema == schema.DOC_SCHEMA
    assert set(first.column("source").to_pylist()) == {"crawl"}
