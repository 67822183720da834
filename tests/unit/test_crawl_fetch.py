"""The per-host fetcher against a fault-injecting server on 127.0.0.1 (no Ray).

The server misbehaves on purpose (500s, 429 + Retry-After, hangs, slow drip, a 50 MB
body, redirect loops, binary served as HTML, bad encodings, robots rules) and logs what
it was asked, so the tests check both the outcome the crawler records and what it did.
Timeouts are set to fractions of a second so the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from raylm.data.ingest import crawl_fetch, robots
from raylm.data.ingest.crawl import CrawlConfig
from raylm.data.ingest.crawl_fetch import OUTCOMES, fetch_sitemap, run_host
from raylm.data.ingest.robots import RobotsStore

pytestmark = pytest.mark.network

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
BIG = 50 * 2**20
FRENCH = ("Le cœur a ses raisons que la raison ne connaît point. À Noël, élève et maître façonnent des "
          "rêves où l'été déjà s'annonce.").replace("œ", "oe")  # latin-1 has no œ


class _State:
    def __init__(self):
        self.robots = "User-agent: *\nDisallow: /private/\n"
        self.robots_status = 200
        self.robots_location: str | None = None  # set: /robots.txt redirects there
        self.log: list[tuple[str, float]] = []   # (path, arrival time)
        self.hits: Counter = Counter()
        self.inflight = 0
        self.max_inflight = 0
        self.big_sent = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status, body=b"", ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: C901 - one route table for the whole fault server
        st: _State = self.server.state
        path = self.path
        with st.lock:
            st.log.append((path, time.monotonic()))
            st.hits[path] += 1
            n = st.hits[path]
            st.inflight += 1
            st.max_inflight = max(st.max_inflight, st.inflight)
        try:
            self._route(st, path, n)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with st.lock:
                st.inflight -= 1

    def _route(self, st: _State, path: str, n: int):
        if path == "/robots.txt" and st.robots_location:
            self._send(302, headers=[("Location", st.robots_location)])
        elif path in ("/robots.txt", "/moved-robots.txt"):
            self._send(st.robots_status, st.robots.encode(), "text/plain")
        elif path == "/":
            links = "".join(f'<a href="{p}">x</a>' for p in ("/page/1.html", "/private/x.html", "#top", "mailto:a@b"))
            self._send(200, f"<html><body>{links}</body></html>".encode())
        elif path.startswith("/page/"):
            k = int(path.split("/")[2].split(".")[0])
            st.stop.wait(0.05 if k >= 100 else 0)  # /page/1xx.html take 50 ms: overlap shows concurrency
            self._send(200, f'<html><a href="/page/{k + 1}.html">next</a> page {k}</html>'.encode())
        elif path == "/500":
            self._send(500, b"boom")
        elif path == "/flaky":
            self._send(503 if n == 1 else 200, b"<html>ok now</html>")
        elif path == "/429":
            self._send(429, b"slow down", headers=[("Retry-After", "1")]) if n == 1 else self._send(200, b"<p>ok</p>")
        elif path == "/429-long":
            self._send(429, b"go away", headers=[("Retry-After", "3600")])
        elif path == "/hang":
            st.stop.wait(10)
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):  # one byte per 0.1 s: never silent for long, never done in time
                if st.stop.wait(0.1):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        elif path in ("/big", "/big-cl"):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            if path == "/big-cl":
                self.send_header("Content-Length", str(BIG))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"a" * 65536
            for _ in range(BIG // len(chunk)):
                self.wfile.write(chunk)
                st.big_sent += len(chunk)
        elif path in ("/loop-a", "/loop-b"):
            self._send(302, headers=[("Location", "/loop-b" if path == "/loop-a" else "/loop-a")])
        elif path.startswith("/chain/"):
            self._send(302, headers=[("Location", f"/chain/{int(path.split('/')[2]) + 1}")])
        elif path == "/redir-same":
            self._send(301, headers=[("Location", "/page/7.html")])
        elif path == "/redir-off":
            self._send(302, headers=[("Location", "http://example.com/")])
        elif path == "/binary":
            self._send(200, PNG, "text/html")
        elif path == "/latin1":
            self._send(200, f"<p>{FRENCH}</p>".encode("latin-1"), "text/html; charset=utf-8")
        elif path == "/bogus":
            self._send(200, b"<p>plain words</p>", "text/html; charset=x-bogus")
        elif path == "/image.png":
            self._send(200, PNG, "image/png")
        elif path == "/sitemap.xml":
            self._send(200, b"<urlset><url><loc>/page/1.html</loc></url><url><loc>"
                       + f"http://127.0.0.1:{self.server.server_port}/page/2.html".encode()
                       + b"</loc></url></urlset>", "application/xml")
        else:
            self._send(404, b"not found")


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.state = _State()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.state.stop.set()
    srv.shutdown()
    srv.server_close()


def _cfg(**kw) -> CrawlConfig:
    base = dict(allow_private_addresses=True, min_delay_s=0.0, per_host_concurrency=4, retries=1, backoff_s=0.01,
                connect_timeout_s=0.5, read_timeout_s=0.4, fetch_timeout_s=1.0, max_body_bytes=1_000_000,
                max_redirects=4, user_agent="raylm-test/1.0")
    base.update(kw)
    return CrawlConfig(**base)


def _fetch(server, paths, cfg=None, **kw) -> dict[str, dict]:
    root = f"http://127.0.0.1:{server.server_port}"
    res = run_host([(root + p, 0) for p in paths], cfg or _cfg(), ["127.0.0.1"], **kw)
    return {r["requested_url"][len(root):]: r for r in res}


FAULTS = {
    "/": "ok", "/500": "http_error", "/flaky": "ok", "/429": "ok", "/429-long": "http_error",
    "/hang": "timeout", "/drip": "timeout", "/big": "too_large", "/big-cl": "too_large",
    "/loop-a": "redirect_loop", "/chain/0": "too_many_redirects", "/redir-same": "ok",
    "/redir-off": "offsite_redirect", "/binary": "binary", "/latin1": "ok", "/bogus": "ok",
    "/image.png": "wrong_type", "/missing": "http_error", "/private/x.html": "robots_disallowed",
}


def test_every_fault_gets_its_outcome(server):
    res = _fetch(server, list(FAULTS))
    assert {p: r["outcome"] for p, r in res.items()} == FAULTS
    assert all(r["outcome"] in OUTCOMES for r in res.values())
    hits = server.state.hits
    assert hits["/500"] == 2 and res["/500"]["status"] == 500 and res["/500"]["attempts"] == 2  # retries=1
    assert hits["/flaky"] == 2 and hits["/429"] == 2
    assert hits["/429-long"] == 1  # a Retry-After beyond max_retry_after_s is not waited out
    assert hits["/private/x.html"] == 0  # robots: never requested
    assert hits["/robots.txt"] == 1
    assert res["/missing"]["status"] == 404
    assert res["/redir-same"]["url"].endswith("/page/7.html") and "page 7" in res["/redir-same"]["text"]
    assert FRENCH in res["/latin1"]["text"]  # declared UTF-8, sent as latin-1: detected
    # Links are normalised (fragment dropped, mailto: skipped); robots applies when they are fetched.
    root = f"http://127.0.0.1:{server.server_port}"
    assert res["/"]["links"] == [root + "/page/1.html", root + "/private/x.html", root + "/"]
    assert res["/image.png"]["content_type"] == "image/png"
    assert all(r["text"] is None for p, r in res.items() if FAULTS[p] not in ("ok",))


def test_body_limit_stops_the_download(server):
    res = _fetch(server, ["/big", "/big-cl"])
    assert res["/big"]["outcome"] == res["/big-cl"]["outcome"] == "too_large"
    # The client hung up after ~1 MB; the socket buffers hold a few MB at most, not 50.
    assert server.state.big_sent < 16 * 2**20


def test_retry_after_is_honoured(server):
    _fetch(server, ["/429"])
    t = [at for p, at in server.state.log if p == "/429"]
    assert len(t) == 2 and t[1] - t[0] >= 0.95


def _record_starts(monkeypatch) -> list[float]:
    """Client-side request start times (event-loop clock), recorded when Pacer lets one go.

    The server's arrival times are no good for spacing checks: its threads share the GIL with
    the client, so arrivals jitter by tens of milliseconds under load.
    """
    starts: list[float] = []
    wait = crawl_fetch.Pacer.wait

    async def recording_wait(self):
        await wait(self)
        starts.append(asyncio.get_running_loop().time())

    monkeypatch.setattr(crawl_fetch.Pacer, "wait", recording_wait)
    return starts


def test_pacing_and_concurrency_per_host(server, monkeypatch):
    paths = [f"/page/{100 + i}.html" for i in range(8)]
    _fetch(server, paths, _cfg(per_host_concurrency=2, min_delay_s=0.0))
    assert server.state.max_inflight == 2  # slow pages overlap, but never more than 2
    starts = _record_starts(monkeypatch)
    _fetch(server, [f"/page/{i}.html" for i in range(5)], _cfg(min_delay_s=0.05))
    assert len(starts) == 6  # robots.txt counts as a request, then 5 pages
    assert all(b - a >= 0.05 - 1e-3 for a, b in itertools.pairwise(starts))


def test_robots_crawl_delay(server, monkeypatch):
    server.state.robots = ("User-agent: raylm-test\nCrawl-delay: 0.2\nDisallow: /page/3.html\n\n"
                           "User-agent: *\nDisallow: /\n")
    starts = _record_starts(monkeypatch)
    res = _fetch(server, [f"/page/{i}.html" for i in range(1, 4)])
    assert [res[f"/page/{i}.html"]["outcome"] for i in range(1, 4)] == ["ok", "ok", "robots_disallowed"]
    assert server.state.hits["/page/3.html"] == 0
    assert len(starts) == 3 and starts[2] - starts[1] >= 0.2 - 1e-3  # robots.txt, then two pages 0.2 s apart


def test_robots_unreachable_disallows_and_404_allows(server):
    server.state.robots_status = 503
    res = _fetch(server, ["/page/1.html"])
    assert res["/page/1.html"]["outcome"] == "robots_unavailable"
    assert server.state.hits["/page/1.html"] == 0
    server.state.robots_status = 404
    assert _fetch(server, ["/page/1.html"])["/page/1.html"]["outcome"] == "ok"


def test_robots_fetched_once_per_crawl_and_reused(server, monkeypatch, tmp_path):
    # Two host tasks of one crawl (two rounds, or a resumed crawl) share the crawl's store.
    server.state.robots = ("User-agent: raylm-test\nCrawl-delay: 0.2\nDisallow: /page/3.html\n"
                           f"Sitemap: http://127.0.0.1:{server.server_port}/sitemap.xml\n")
    store, reported = RobotsStore(tmp_path / "robots"), []
    kw = dict(robots_store=store, on_sitemaps=lambda origin, urls: reported.append(urls))
    _fetch(server, ["/page/1.html"], **kw)
    starts = _record_starts(monkeypatch)
    res = _fetch(server, ["/page/2.html", "/page/3.html", "/page/4.html"], **kw)
    assert server.state.hits["/robots.txt"] == 1
    assert res["/page/3.html"]["outcome"] == "robots_disallowed" and server.state.hits["/page/3.html"] == 0
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.2 - 1e-3  # the cached Crawl-delay still holds
    assert reported == [[f"http://127.0.0.1:{server.server_port}/sitemap.xml"]]  # once, when fetched
    assert robots.summarise(tmp_path / "robots")["kinds"]["ok"] == 1


def test_robots_bad_input_is_counted_not_fatal(server, tmp_path):
    store = RobotsStore(tmp_path / "robots")
    # Over the 500 KiB limit: the part read is used, the rest ignored.
    server.state.robots = ("User-agent: *\nDisallow: /page/1.html\n"
                           + "# padding\n" * 60_000 + "Disallow: /page/2.html\n")
    res = _fetch(server, ["/page/1.html", "/page/2.html"], robots_store=store)
    assert [res[p]["outcome"] for p in ("/page/1.html", "/page/2.html")] == ["robots_disallowed", "ok"]
    # An HTML page served as robots.txt (a soft 404) allows all.
    server.state.robots = "<!doctype html><html><body><h1>Not here</h1></body></html>"
    res = run_host([(f"http://localhost:{server.server_port}/page/1.html", 0)], _cfg(), ["localhost"],
                   robots_store=store)
    assert res[0]["outcome"] == "ok"
    assert robots.summarise(tmp_path / "robots")["kinds"] == {
        "ok": 0, "html": 1, "truncated": 1, "absent": 0, "unreachable": 0}


def test_robots_redirect_is_followed_across_hosts(server):
    # RFC 9309 2.3.1.2: follow at least five redirects, to another authority too.
    port = server.server_port
    server.state.robots_location = f"http://localhost:{port}/moved-robots.txt"
    server.state.robots = "User-agent: *\nDisallow: /page/1.html\n"
    res = _fetch(server, ["/page/1.html", "/page/2.html"])
    assert res["/page/1.html"]["outcome"] == "robots_disallowed" and res["/page/2.html"]["outcome"] == "ok"
    assert server.state.hits["/moved-robots.txt"] == 1
    server.state.robots_location = "/robots.txt"  # a loop: more than five hops is "no robots.txt"
    assert _fetch(server, ["/page/1.html"])["/page/1.html"]["outcome"] == "ok"


def test_sitemap_named_by_robots_is_fetched_as_a_sitemap(server):
    root = f"http://127.0.0.1:{server.server_port}"
    res = run_host([(root + "/sitemap.xml", -1)], _cfg(), ["127.0.0.1"])
    assert res[0]["outcome"] == "sitemap" and res[0]["links"] == [root + "/page/2.html"]
    assert res[0]["text"] is None
    server.state.robots = "User-agent: *\nDisallow: /sitemap.xml\n"  # robots rules hold for sitemaps too
    assert run_host([(root + "/sitemap.xml", -1)], _cfg(), ["127.0.0.1"])[0]["outcome"] == "robots_disallowed"
    assert server.state.hits["/sitemap.xml"] == 1


def test_private_addresses_refused_by_default(server):
    cfg = _cfg(allow_private_addresses=False)
    port = server.server_port
    res = run_host([(f"http://127.0.0.1:{port}/", 0), (f"http://localhost:{port}/", 0),
                    (f"http://[::1]:{port}/", 0)], cfg, ["127.0.0.1", "localhost", "::1"])
    assert [r["outcome"] for r in res] == ["refused_address"] * 3
    # Without robots the page request itself is refused at connect time (resolver check).
    res = run_host([(f"http://localhost:{port}/", 0)], _cfg(allow_private_addresses=False, obey_robots=False),
                   ["localhost"])
    assert res[0]["outcome"] == "refused_address" and res[0]["attempts"] == 1
    assert server.state.log == []  # not even robots.txt was asked for


def test_not_http_is_bad_url(server):
    res = run_host([("ftp://127.0.0.1/x", 0), ("file:///etc/passwd", 0)], _cfg(), ["127.0.0.1"])
    assert [r["outcome"] for r in res] == ["bad_url", "bad_url"]


def test_sitemap_seeds(server):
    urls = fetch_sitemap(f"http://127.0.0.1:{server.server_port}/sitemap.xml", _cfg())
    assert [u.rsplit("/", 1)[1] for u in urls] == ["2.html"]  # a relative <loc> is not a URL


def test_config_checks():
    with pytest.raises(ValueError, match="max_pages"):
        CrawlConfig(max_pages=0)
    with pytest.raises(ValueError, match="fetch_timeout_s"):
        CrawlConfig(fetch_timeout_s=1, connect_timeout_s=5)
    assert CrawlConfig(allowed_hosts=[" Docs.Python.org "]).allowed_hosts == ["docs.python.org"]
