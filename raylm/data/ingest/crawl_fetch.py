"""The polite async fetcher for one host (aiohttp): robots, pacing, retries, limits, outcomes.

One `crawl_host` call owns every request to one host name during a round, so the per-host
rules hold without coordination: at most `per_host_concurrency` requests in flight, request
starts at least max(min_delay_s, robots Crawl-delay) apart, and a Retry-After pauses the
whole host. No Ray here: the crawler's Ray shell (crawl.py) runs one call per host group,
and the unit tests run it against a local fault-injecting server.

Every URL ends with exactly one outcome (see OUTCOMES); nothing raises out of `fetch`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from raylm.data.ingest.charset import decode, looks_binary, parse_content_type
from raylm.data.ingest.crawl_url import (
    address_refused,
    extract_links,
    host_allowed,
    host_of,
    is_ip_literal,
    normalize,
    parse_sitemap,
    sitemap_text,
)
from raylm.data.ingest.robots import MAX_BYTES as _ROBOTS_MAX_BYTES
from raylm.data.ingest.robots import RobotsPolicy, RobotsStore, policy_from_record, policy_from_response

if TYPE_CHECKING:
    from raylm.data.ingest.crawl import CrawlConfig

OUTCOMES = (
    "ok",                  # 2xx, allowed type, size within limit, decoded
    "robots_disallowed",   # robots.txt forbids the URL (no request made)
    "robots_unavailable",  # robots.txt answered 5xx/429 or failed: RFC 9309 says disallow all
    "http_error",          # final status 4xx, or 5xx/429 after the retries
    "timeout",             # connect, read or total time limit hit on the last attempt
    "connection_error",    # refused, reset, bad response framing, after the retries
    "too_large",           # body over max_body_bytes (Content-Length or counted while streaming)
    "wrong_type",          # Content-Type not in the allow-list (body not read)
    "binary",              # body is binary although the type is textual (NUL bytes, control chars)
    "decode_error",        # no charset decoded the body without replacement characters
    "redirect_loop",       # a redirect chain came back to a URL it had visited
    "too_many_redirects",  # more than max_redirects hops
    "redirect",            # redirect to another allowed host: queued for that host's group
    "offsite_redirect",    # redirect to a host outside the allow-list: not followed
    "refused_address",     # loopback/private/link-local address and allow_private_addresses false
    "bad_url",             # not http(s), unparsable, or a Location header that is not a URL
    "sitemap",             # a sitemap named by robots.txt (depth -1): its page URLs queued at depth 0
    "sitemap_index",       # a sitemap index: the sitemaps it names queued at depth -1
)
_REDIRECTS = (301, 302, 303, 307, 308)


class RefusedAddress(OSError):
    """Raised by the resolver for a name that resolves to a refused address."""


class SafeResolver(AbstractResolver):
    """Resolves through the system resolver and refuses private/loopback/link-local results.

    Checking at connect time (not before) leaves no window for a name to change its answer.
    aiohttp does not call a resolver for IP literals; `HostFetcher` checks those itself.
    """

    def __init__(self, allow_private: bool):
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        res = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for r in res:
                if address_refused(r["host"]):
                    raise RefusedAddress(f"{host} resolves to refused address {r['host']}")
        return res

    async def close(self) -> None:
        await self._inner.close()


class Pacer:
    """Spaces request starts to one host `delay` seconds apart; `pause_until` holds all of them.

    The lock is held while sleeping and the next slot is counted from the actual start, so
    a late wake-up (a busy event loop) cannot squeeze two requests closer than `delay`.
    """

    def __init__(self, delay: float):
        self.delay = delay
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            while (left := self._next - loop.time()) > 0:  # re-check: pause_until may move it
                await asyncio.sleep(left)
            self._next = loop.time() + self.delay

    def pause_until(self, t: float) -> None:
        self._next = max(self._next, t)


@dataclass
class _Resp:
    status: int | None = None
    outcome: str | None = None      # set when this attempt already decided the URL's fate
    retryable: bool = False
    retry_after: float | None = None
    location: str | None = None
    mime: str | None = None
    charset: str | None = None
    body: bytes | None = None
    error: str | None = None
    truncated: bool = False         # body cut at max_bytes (only when the caller asked to truncate)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HostFetcher:
    """Fetches URLs of one host under one config; `fetch` returns a result dict, never raises."""

    def __init__(self, cfg: CrawlConfig, session: aiohttp.ClientSession, pacer: Pacer, allowed_hosts: list[str],
                 robots_store: RobotsStore | None = None,
                 on_sitemaps: Callable[[str, list[str]], None] | None = None):
        self.cfg = cfg
        self.session = session
        self.pacer = pacer
        self.allowed_hosts = allowed_hosts
        self.robots_store = robots_store or RobotsStore(None)  # the crawl's cache; none: this call only
        self.on_sitemaps = on_sitemaps  # (origin, Sitemap URLs) when a robots.txt is fetched
        self._robots: dict[str, RobotsPolicy | str] = {}  # origin -> policy, or "refused"
        self._robots_lock = asyncio.Lock()

    async def _attempt(self, url: str, max_bytes: int, check_type: bool, truncate: bool = False) -> _Resp:
        cfg = self.cfg
        await self.pacer.wait()
        try:
            async with asyncio.timeout(cfg.fetch_timeout_s):
                async with self.session.get(url, allow_redirects=False) as resp:
                    status = resp.status
                    if status in _REDIRECTS:
                        return _Resp(status, location=resp.headers.get("Location"))
                    if status == 429 or status >= 500:
                        return _Resp(status, retryable=True, retry_after=_retry_after(resp.headers.get("Retry-After")))
                    if not 200 <= status < 300:
                        return _Resp(status, outcome="http_error")
                    mime, charset = parse_content_type(resp.headers.get("Content-Type"))
                    if check_type and cfg.content_types and mime not in cfg.content_types:
                        return _Resp(status, outcome="wrong_type", mime=mime)
                    if not truncate and resp.content_length is not None and resp.content_length > max_bytes:
                        return _Resp(status, outcome="too_large", mime=mime)
                    body = bytearray()
                    # Counted after content decoding, so a gzip bomb stops at the same limit.
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        body += chunk
                        if len(body) > max_bytes:
                            if truncate:
                                return _Resp(status, mime=mime, charset=charset, body=bytes(body[:max_bytes]),
                                             truncated=True)
                            return _Resp(status, outcome="too_large", mime=mime)
                    return _Resp(status, mime=mime, charset=charset, body=bytes(body))
        except TimeoutError as e:  # asyncio.timeout, and aiohttp's connect/sock_read timeouts
            return _Resp(outcome="timeout", retryable=True, error=type(e).__name__)
        except aiohttp.ClientConnectorError as e:
            if isinstance(e.os_error, RefusedAddress):
                return _Resp(outcome="refused_address", error=str(e.os_error))
            return _Resp(outcome="connection_error", retryable=True, error=str(e)[:200])
        except (aiohttp.InvalidURL, ValueError) as e:
            return _Resp(outcome="bad_url", error=str(e)[:200])
        except (aiohttp.ClientError, OSError) as e:
            return _Resp(outcome="connection_error", retryable=True, error=f"{type(e).__name__}: {e}"[:200])

    async def _get(self, url: str, max_bytes: int, check_type: bool = True, truncate: bool = False
                   ) -> tuple[_Resp, int]:
        """One URL with retries: exponential backoff; Retry-After honoured and applied to the host."""
        cfg = self.cfg
        for attempt in range(cfg.retries + 1):
            r = await self._attempt(url, max_bytes, check_type, truncate)
            if not r.retryable or attempt == cfg.retries:
                return r, attempt + 1
            wait = cfg.backoff_s * 2 ** attempt
            if r.retry_after is not None:
                if r.retry_after > cfg.max_retry_after_s:
                    return r, attempt + 1  # the site asks for longer than we wait: give up politely
                wait = max(wait, r.retry_after)
                self.pacer.pause_until(asyncio.get_running_loop().time() + r.retry_after)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def robots_for(self, url: str) -> RobotsPolicy | str:
        """The robots policy of url's origin (fetched once per origin and crawl), or "refused"."""
        parts = url.split("/", 3)
        origin = "/".join(parts[:3])
        async with self._robots_lock:
            if origin not in self._robots:
                if not self.cfg.obey_robots:
                    self._robots[origin] = policy_from_response(404, None, self.cfg.user_agent)
                else:
                    self._robots[origin] = await self._robots_cached(origin)
                policy = self._robots[origin]
                d = policy.crawl_delay() if isinstance(policy, RobotsPolicy) else None
                if d is not None:
                    self.pacer.delay = max(self.pacer.delay, min(d, self.cfg.max_crawl_delay_s))
            return self._robots[origin]

    async def _robots_cached(self, origin: str) -> RobotsPolicy | str:
        """From the crawl's store when fresh; else fetched, reported (sitemaps) and stored."""
        rec, fresh = self.robots_store.get(origin)
        if fresh:
            return policy_from_record(rec, self.cfg.user_agent)
        got = await self._fetch_robots(origin + "/robots.txt")
        if got == "refused":
            return got
        return self.robots_store.record(origin, *got, self.cfg.user_agent, before=rec, on_sitemaps=self.on_sitemaps)

    async def _fetch_robots(self, robots_url: str) -> tuple[int | None, str | None, bool] | str:
        """(status, text, truncated) of a robots.txt, or "refused"; status None: unreachable."""
        url = robots_url
        for _ in range(6):  # RFC 9309 2.3.1.2: follow at least five redirects, across hosts too
            host = host_of(url)
            if not self.cfg.allow_private_addresses and is_ip_literal(host) and address_refused(host.strip("[]")):
                return "refused"
            r, _n = await self._get(url, _ROBOTS_MAX_BYTES, check_type=False, truncate=True)
            if r.outcome == "refused_address":
                return "refused"
            if r.status in _REDIRECTS:
                url = normalize(r.location or "", url)
                if url is None:
                    return 404, None, False  # a redirect to nowhere: no robots.txt
                continue
            if r.outcome in ("timeout", "connection_error", "bad_url"):
                return None, None, False
            return r.status, decode(r.body).text if r.body is not None else None, r.truncated
        return 404, None, False  # more than five redirects: RFC 9309 says it MAY be taken as absent

    async def fetch(self, url: str, depth: int = 0) -> dict:
        """Fetch `url` following same-host redirects; one result dict (see result_row)."""
        res = {"requested_url": url, "url": url, "depth": depth, "status": None, "outcome": None,
               "content_type": None, "text": None, "links": [], "attempts": 0, "error": None,
               "fetched_at": None}
        try:
            await self._fetch(res)
        except Exception as e:  # a bug must cost one URL, not the host's whole round
            res["outcome"], res["error"] = "connection_error", f"{type(e).__name__}: {e}"[:200]
        return res

    async def _fetch(self, res: dict) -> None:
        cfg = self.cfg
        current, chain = res["requested_url"], [res["requested_url"]]
        while True:
            res["url"] = current
            host = host_of(current)
            if normalize(current) is None:
                res["outcome"] = "bad_url"
                return
            if not cfg.allow_private_addresses and is_ip_literal(host) and address_refused(host.strip("[]")):
                res["outcome"] = "refused_address"
                return
            policy = await self.robots_for(current)
            if policy == "refused":
                res["outcome"] = "refused_address"
                return
            if not policy.allowed(current):
                res["outcome"] = "robots_unavailable" if policy.unreachable else "robots_disallowed"
                return
            sitemap = res["depth"] < 0
            r, n = await self._get(current, cfg.max_body_bytes, check_type=not sitemap)
            res["attempts"] += n
            res["status"], res["error"], res["fetched_at"] = r.status, r.error, _now_iso()
            res["content_type"] = r.mime
            if r.status in _REDIRECTS:
                target = normalize(r.location or "", current)
                if target is None:
                    res["outcome"] = "bad_url"
                elif target in chain:
                    res["outcome"] = "redirect_loop"
                elif len(chain) > cfg.max_redirects:
                    res["outcome"] = "too_many_redirects"
                elif host_of(target) != host:
                    # Another host has its own politeness: hand the URL to the next round.
                    ok = host_allowed(host_of(target), self.allowed_hosts)
                    res["outcome"], res["links"] = ("redirect", [target]) if ok else ("offsite_redirect", [])
                else:
                    chain.append(target)
                    current = target
                    continue
                return
            if r.retryable:  # retries used up (or Retry-After too long)
                res["outcome"] = "http_error" if r.status is not None else r.outcome
                return
            if r.outcome is not None:
                res["outcome"] = r.outcome
                return
            self._sitemap(res, r) if sitemap else self._decode(res, r)
            return

    def _sitemap(self, res: dict, r: _Resp) -> None:
        """A sitemap named by robots.txt: its URLs (allowed hosts only) become the row's links."""
        locs, is_index = parse_sitemap(sitemap_text(r.body or b"", self.cfg.max_body_bytes))
        res["outcome"] = "sitemap_index" if is_index else "sitemap"
        res["links"] = list(dict.fromkeys(u for u in locs if host_allowed(host_of(u), self.allowed_hosts)))

    def _decode(self, res: dict, r: _Resp) -> None:
        body = r.body or b""
        if looks_binary(body):
            res["outcome"] = "binary"
            return
        html = r.mime in ("text/html", "application/xhtml+xml")
        d = decode(body, r.charset, html=html)
        res["text"] = d.text
        if d.replaced:
            res["outcome"] = "decode_error"
            return
        res["outcome"] = "ok"
        if html and res["depth"] < self.cfg.max_depth:
            res["links"] = [u for u in extract_links(d.text, res["url"])
                            if host_allowed(host_of(u), self.allowed_hosts)]


def client_session(cfg: CrawlConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit_per_host=cfg.per_host_concurrency, ttl_dns_cache=300,
                                     resolver=SafeResolver(cfg.allow_private_addresses))
    timeout = aiohttp.ClientTimeout(total=None, connect=cfg.connect_timeout_s, sock_read=cfg.read_timeout_s)
    headers = {"User-Agent": cfg.user_agent, "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1"}
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)


async def crawl_host(items: list[tuple[str, int]], cfg: CrawlConfig, allowed_hosts: list[str],
                     sink: Callable[[dict], None], first_wait: bool = False, robots_store: RobotsStore | None = None,
                     on_sitemaps: Callable[[str, list[str]], None] | None = None) -> None:
    """Fetch (url, depth) items of one host with cfg's politeness; each result goes to `sink`.

    first_wait: wait one min_delay_s before the first request (the host may have been
    contacted by the previous round a moment ago). robots_store: the crawl's robots.txt cache
    (None: fetched once for this call). on_sitemaps: called with the Sitemap URLs of each
    robots.txt fetched. An item of depth -1 is a sitemap (see HostFetcher._sitemap).
    """
    async with client_session(cfg) as session:
        pacer = Pacer(cfg.min_delay_s)
        if first_wait:
            pacer.pause_until(asyncio.get_running_loop().time() + cfg.min_delay_s)
        fetcher = HostFetcher(cfg, session, pacer, allowed_hosts, robots_store, on_sitemaps)
        queue = list(reversed(items))

        async def worker() -> None:
            while queue:
                url, depth = queue.pop()
                sink(await fetcher.fetch(url, depth))

        await asyncio.gather(*(worker() for _ in range(min(cfg.per_host_concurrency, len(items)) or 1)))


def run_host(items: list[tuple[str, int]], cfg: CrawlConfig, allowed_hosts: list[str], **kw) -> list[dict]:
    """Blocking wrapper: all results of one host (tests and small crawls); kw as for crawl_host."""
    out: list[dict] = []
    asyncio.run(crawl_host(items, cfg, allowed_hosts, out.append, **kw))
    return out


def fetch_sitemap(url: str, cfg: CrawlConfig, max_sitemaps: int = 50) -> list[str]:
    """Page URLs listed by a sitemap (following a sitemap index; .gz sitemaps unpacked)."""

    async def go() -> list[str]:
        async with client_session(cfg) as session:
            fetcher = HostFetcher(cfg, session, Pacer(cfg.min_delay_s), [])
            pages, todo, n = [], [url], 0
            while todo and n < max_sitemaps:
                u, n = todo.pop(0), n + 1
                if not cfg.allow_private_addresses and is_ip_literal(host_of(u)) and address_refused(
                        host_of(u).strip("[]")):
                    continue
                r, _ = await fetcher._get(u, cfg.max_body_bytes, check_type=False)
                if not r.body:
                    continue
                locs, is_index = parse_sitemap(sitemap_text(r.body, cfg.max_body_bytes))
                (todo if is_index else pages).extend(locs)
            return pages

    return asyncio.run(go())
