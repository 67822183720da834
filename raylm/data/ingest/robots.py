"""robots.txt for the crawler: RFC 9309 rules (Protego), the fetch-status rules, a per-crawl cache.

Rules: Protego, Scrapy's maintained RFC 9309 parser: `*` wildcards and `$` anchors, the longest
(most specific) matching rule wins, Allow wins a tie, groups naming the same agent are combined,
the group of our product token beats `*`, /robots.txt itself is always allowed. Crawl-delay
(not in the RFC, widely used) comes from the group that matched; Request-rate stands in for it.

Status (RFC 9309 2.3.1): a 2xx body is parsed; a 4xx means there is no file (allow all); 5xx,
429 and network failures mean "unreachable", which disallows everything (the URLs asked for are
recorded as robots_unavailable, not retried; the host's new URLs in later rounds ask again).
Kinds, counted per origin in the crawl's stats.json under "robots":
    ok            2xx, parsed (an empty body has no rules: allow all)
    html          2xx whose body is an HTML page (a soft 404): parsed all the same, since the RFC
                  says to use whatever lines parse; in practice none do, so it allows all
    truncated     2xx longer than MAX_BYTES: the first MAX_BYTES (whole lines) parsed, the rest
                  ignored (RFC 9309 2.5: the parsing limit must be at least 500 KiB)
    absent        4xx, or more than five redirects (2.3.1.2): allow all
    unreachable   5xx, 429, timeout, refused connection: disallow all
Cache (`RobotsStore`): one JSON file per origin under <crawl work_dir>/robots/, written when the
origin is first asked in a crawl and read by later rounds and by a resumed crawl, so a host's
robots.txt is fetched once per crawl. An entry older than MAX_AGE_S is fetched again (2.4: a
cached copy SHOULD NOT be used for more than 24 hours) unless the new fetch finds the file
unreachable, when the old copy stays in use (2.4 allows that). An unreachable answer is written
too (it is counted) but never reused: the next round asks again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from protego import Protego

from raylm import atomic, storage

MAX_BYTES = 500 * 1024  # bytes of robots.txt read and parsed: the RFC's minimum parsing limit
MAX_AGE_S = 24 * 3600.0  # a cached robots.txt older than this is fetched again (RFC 9309 2.4)
KINDS = ("ok", "html", "truncated", "absent", "unreachable")
_HTML = re.compile(r"\s*(?:<!doctype\s+html|<html|<head|<body|<!--)", re.IGNORECASE)


@dataclass
class RobotsPolicy:
    parser: Protego | None  # None: no rules (allow all) or unreachable (see `unreachable`)
    agent: str              # product token matched against User-agent lines
    unreachable: bool = False  # robots.txt could not be read: everything disallowed
    kind: str = "absent"       # one of KINDS
    sitemaps: list[str] = field(default_factory=list)  # Sitemap: lines, as written (absolute URLs)

    def allowed(self, url: str) -> bool:
        if self.unreachable:
            return False
        return self.parser is None or self.parser.can_fetch(url, self.agent)

    def crawl_delay(self) -> float | None:
        """Seconds between requests asked for by the site (Crawl-delay, else Request-rate), or None."""
        if self.parser is None:
            return None
        d = self.parser.crawl_delay(self.agent)
        if d is None:
            rate = self.parser.request_rate(self.agent)  # "Request-rate: 1/5" = 1 request per 5 s
            return rate.seconds / rate.requests if rate else None
        return d


def product_token(user_agent: str) -> str:
    """'raylm-bot/0.1 (+https://x)' -> 'raylm-bot': what robots.txt User-agent lines name."""
    return user_agent.split("/", 1)[0].split(" ", 1)[0].strip() or "*"


def looks_html(text: str) -> bool:
    return _HTML.match(text[:1024]) is not None


def clip(text: str, limit: int = MAX_BYTES) -> tuple[str, bool]:
    """`text` cut to `limit` UTF-8 bytes at the last whole line, and whether it was cut."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text, False
    head = raw[:limit]
    nl = head.rfind(b"\n")
    return head[: nl + 1 if nl >= 0 else limit].decode("utf-8", "ignore"), True


def policy_from_response(status: int | None, text: str | None, user_agent: str,
                         truncated: bool = False) -> RobotsPolicy:
    """Policy from a robots.txt fetch; status None means the fetch failed (timeout, refused).

    `truncated`: the body was cut at the read limit (the caller read at most MAX_BYTES).
    """
    agent = product_token(user_agent)
    if status is None or status == 429 or status >= 500:
        return RobotsPolicy(None, agent, unreachable=True, kind="unreachable")
    if not 200 <= status < 300:
        return RobotsPolicy(None, agent, kind="absent")
    text, cut = clip(text or "")
    kind = "truncated" if truncated or cut else "html" if looks_html(text) else "ok"
    if not text.strip():
        return RobotsPolicy(None, agent, kind=kind)
    rp = Protego.parse(text)
    return RobotsPolicy(rp, agent, kind=kind, sitemaps=list(rp.sitemaps))


# --- the per-crawl cache -----------------------------------------------------------------------

def _file_name(origin: str) -> str:
    """'https://docs.python.org:8443' -> 'https_docs.python.org_8443-<8 hex>.json' (readable, unique)."""
    readable = re.sub(r"[^A-Za-z0-9.\-]+", "_", origin.replace("://", "_"))[:100]
    return f"{readable}-{hashlib.sha1(origin.encode()).hexdigest()[:8]}.json"


class RobotsStore:
    """robots.txt answers per origin, one JSON file each, shared by the rounds of one crawl.

    A record: {origin, kind, status, text, truncated, fetched_at (unix s), fetches}. Only the host
    task that owns a host writes its origins' files (one task per host per round), each atomically.
    """

    def __init__(self, directory: str | Path | None):
        self.dir = storage.location(directory) if directory is not None else None  # local or object store

    def get(self, origin: str, now: float | None = None) -> tuple[dict | None, bool]:
        """(record, fresh): the stored record if any, and whether it may be used without refetching."""
        if self.dir is None:
            return None, False
        try:
            rec = json.loads(storage.read_text(storage.join(self.dir, _file_name(origin))))
        except (OSError, ValueError):
            return None, False
        now = time.time() if now is None else now
        return rec, rec.get("kind") != "unreachable" and now - rec.get("fetched_at", 0) < MAX_AGE_S

    def put(self, origin: str, status: int | None, text: str | None, truncated: bool, kind: str,
            before: dict | None = None, now: float | None = None) -> None:
        if self.dir is None:
            return
        rec = {"origin": origin, "kind": kind, "status": status, "text": text, "truncated": truncated,
               "fetched_at": time.time() if now is None else now,
               "fetches": (before or {}).get("fetches", 0) + 1}
        storage.makedirs(self.dir)
        atomic.write_text(storage.join(self.dir, _file_name(origin)), json.dumps(rec) + "\n")

    def record(self, origin: str, status: int | None, text: str | None, truncated: bool, user_agent: str,
               before: dict | None = None, on_sitemaps: Callable[[str, list[str]], None] | None = None
               ) -> RobotsPolicy:
        """The policy after fetching origin's robots.txt, stored; `before`: the stale record, if any."""
        policy = policy_from_response(status, text, user_agent, truncated)
        if policy.unreachable and before is not None and before.get("kind") != "unreachable":
            # RFC 9309 2.4: an unreachable file may be replaced by the stale copy. It keeps its age,
            # so the next round asks again; the request is counted.
            self.put(origin, before["status"], before["text"], before.get("truncated", False), before["kind"],
                     before=before, now=before["fetched_at"])
            return policy_from_record(before, user_agent)
        if policy.sitemaps and on_sitemaps is not None:
            on_sitemaps(origin, policy.sitemaps)  # before the store: a task retried in between reports them again
        self.put(origin, status, None if policy.unreachable else clip(text or "")[0], truncated, policy.kind,
                 before=before)
        return policy


def policy_from_record(rec: dict, user_agent: str) -> RobotsPolicy:
    return policy_from_response(rec["status"], rec["text"], user_agent, truncated=rec.get("truncated", False))


def summarise(directory: str | Path) -> dict:
    """Counts for stats.json: origins asked, robots.txt requests made, origins per kind."""
    kinds = dict.fromkeys(KINDS, 0)
    origins = fetches = 0
    d = storage.location(directory)
    for name in storage.listdir(d):
        if not name.endswith(".json"):
            continue
        try:
            rec = json.loads(storage.read_text(storage.join(d, name)))
        except (OSError, ValueError):
            continue
        origins += 1
        fetches += rec.get("fetches", 1)
        kinds[rec.get("kind", "ok")] = kinds.get(rec.get("kind", "ok"), 0) + 1
    return {"origins": origins, "fetches": fetches, "kinds": kinds}
