"""Polite breadth-first web crawl on Ray Data, resumable, with every outcome counted.

A crawl is a loop of rounds on the driver. Round r's frontier (URLs at depth r, deduped
against every URL queued before) is grouped by host name; each group is one Ray task
running the async fetcher (crawl_fetch.crawl_host), so one host's politeness (concurrency,
pacing, robots, Retry-After) is enforced in one place while hosts run in parallel.

Work dir (visible to every node: a local path on one machine; an object-store URI (s3://, gs://)
or a shared file system on a cluster; every file in it is written whole, atomically):
    round-NNNNN/seen.parquet      every URL queued up to and including this round (dedup set)
    round-NNNNN/frontier.parquet  this round's (url, depth); written last, so it marks the round
    round-NNNNN/parts/<host>@<uuid>.parquet   results, written atomically by the host tasks
    round-NNNNN/_DONE             round summary; the next round's files exist before it
    round-NNNNN/sitemaps/*.json   Sitemap URLs of the robots.txt files fetched in this round
    robots/*.json                 each origin's robots.txt answer, reused by every round (robots.py)
    failures.jsonl, stats.json    all non-ok URLs with their reason, and counts by outcome
    scope.json                    the settings that decide what is fetched (SCOPE_KEYS): a
                                  resume with different ones is refused before any fetch
A rerun resumes at the last round without _DONE and skips URLs already in its parts, so a
completed page is never fetched twice (a task retried by Ray does the same check), and it reuses
the robots.txt answers in robots/; a fresh crawl (no round on disk) asks every host again.
Sitemaps named by robots.txt (follow_robots_sitemaps) are queued at depth -1 when their host is in
scope; fetched like any URL (robots rules included), their page URLs join the next round at depth 0.

Limit (STYLE 7): the driver holds the seen set and one round's links; both are bounded by
max_pages (about 100 bytes per URL, so 10 M pages ~ 1 GB of driver memory).
Ray starts its workers at nice 15: on a machine shared with other (nice 0) work the host
tasks get little CPU; RAY_worker_niceness=0 in the environment of `ray start` avoids that.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raylm import atomic, storage
from raylm.data import schema
from raylm.data.ingest import robots
from raylm.data.ingest.crawl_url import host_allowed, host_of, normalize
from raylm.data.ingest.robots import RobotsStore

PART_SCHEMA = pa.schema([*schema.DOC_SCHEMA, pa.field("requested_url", pa.string()), pa.field("depth", pa.int32()),
                         pa.field("status", pa.int32()), pa.field("outcome", pa.string()),
                         pa.field("links", pa.list_(pa.string())), pa.field("attempts", pa.int32()),
                         pa.field("error", pa.string())])
_FRONTIER_SCHEMA = pa.schema([pa.field("url", pa.string()), pa.field("depth", pa.int32())])


@dataclass
class CrawlConfig:
    seeds: list[str] = field(default_factory=list)  # start URLs (depth 0)
    sitemap: str | None = None  # sitemap.xml URL; its <loc> URLs are added to the seeds
    allowed_hosts: list[str] = field(default_factory=list)  # [] = the seeds' hosts; ".x.org" = and subdomains
    max_depth: int = 5  # link hops from a seed
    max_pages: int = 10_000  # URLs fetched in total, whatever their outcome
    user_agent: str = "raylm-bot/0.1 (+https://github.com/raylm/raylm)"  # sent; its first token matches robots.txt
    per_host_concurrency: int = 2  # requests in flight to one host
    min_delay_s: float = 1.0  # seconds between request starts to one host
    obey_robots: bool = True  # robots.txt rules and Crawl-delay
    follow_robots_sitemaps: bool = True  # queue the Sitemap: URLs of robots.txt (allowed hosts only)
    max_crawl_delay_s: float = 30.0  # a larger robots Crawl-delay is capped to this (seconds)
    retries: int = 3  # extra attempts after a timeout, 429, 5xx or connection error
    backoff_s: float = 1.0  # wait before the first retry (seconds); doubles each retry
    max_retry_after_s: float = 120.0  # a longer Retry-After gives up instead of waiting (seconds)
    max_redirects: int = 5  # redirect hops followed per URL
    max_body_bytes: int = 5_000_000  # larger bodies are abandoned while streaming (decoded bytes)
    content_types: list[str] = field(default_factory=lambda: [
        "text/html", "application/xhtml+xml", "text/plain"])  # MIME allow-list; [] = all
    connect_timeout_s: float = 10.0  # TCP + TLS connect (seconds)
    read_timeout_s: float = 20.0  # longest silence while reading (seconds)
    fetch_timeout_s: float = 60.0  # whole attempt, headers and body (seconds)
    allow_private_addresses: bool = False  # allow loopback/private/link-local targets (tests)
    work_dir: str = "crawl"  # state, result parts, failures.jsonl, stats.json
    part_rows: int = 100  # results per part file written by a host task
    num_cpus: float = 0.25  # CPUs per host task (fetching is I/O bound)

    def __post_init__(self):
        for name in ("max_pages", "per_host_concurrency", "part_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"crawl.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_depth", "retries", "max_redirects", "min_delay_s", "backoff_s", "max_crawl_delay_s",
                     "max_retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"crawl.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("connect_timeout_s", "read_timeout_s", "fetch_timeout_s", "max_body_bytes", "num_cpus"):
            if getattr(self, name) <= 0:
                raise ValueError(f"crawl.{name} must be > 0, got {getattr(self, name)}")
        if self.fetch_timeout_s < self.connect_timeout_s:
            raise ValueError("crawl.fetch_timeout_s must be >= crawl.connect_timeout_s")
        self.content_types = [c.strip().lower() for c in self.content_types]
        self.allowed_hosts = [h.strip().lower() for h in self.allowed_hosts]


# --- pure parts ----------------------------------------------------------------------------

def result_row(res: dict) -> dict:
    """A fetch result (crawl_fetch) -> a part row: document columns plus crawl columns."""
    ok = res["outcome"] == "ok"
    return {"id": schema.doc_id(res["requested_url"], "crawl"), "text": res["text"] if ok else "",
            "source": "crawl", "uri": res["requested_url"], "url": res["url"], "license": None,
            "content_type": res["content_type"], "fetched_at": res["fetched_at"],
            "drop": None if ok else f"crawl:{res['outcome']}", "requested_url": res["requested_url"],
            "depth": res["depth"], "status": res["status"], "outcome": res["outcome"], "links": res["links"],
            "attempts": res["attempts"], "error": res["error"]}


def group_by_host(frontier: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    groups: dict[str, list[tuple[str, int]]] = {}
    for url, depth in frontier:
        groups.setdefault(host_of(url), []).append((url, depth))
    return groups


def next_frontier(results: pa.Table, seen: set[str], allowed: list[str], max_depth: int,
                  budget: int, sitemaps: list[str] = ()) -> list[tuple[str, int]]:
    """New (url, depth) pairs from a round's results: unseen, allowed, within depth and budget.

    `sitemaps`: Sitemap URLs named by the round's robots.txt files, queued at depth -1 first.
    Mutates `seen`: it gains the new URLs and the final URLs of followed redirects.
    """
    seen.update(u for u in results.column("url").to_pylist() if u)
    out: list[tuple[str, int]] = []
    rows = zip(results.column("depth").to_pylist(), results.column("outcome").to_pylist(),
               results.column("links").to_pylist(), strict=True)
    for depth, outcome, links in [(-1, "robots", sitemaps), *rows]:
        # A cross-host redirect is the same page reached another way: it keeps its depth. A
        # sitemap is marked by depth -1; the pages it lists are seeds (depth 0).
        d = {"redirect": depth, "robots": -1, "sitemap_index": -1, "sitemap": 0}.get(outcome, depth + 1)
        if d > max_depth:
            continue
        for u in links or []:
            if len(out) >= budget:
                return out
            if u not in seen and host_allowed(host_of(u), allowed):
                seen.add(u)
                out.append((u, d))
    return out


# --- files ---------------------------------------------------------------------------------

# Paths in the work dir are strings (raylm.storage): a local path or an object-store URI.

def _write_parquet(path: str, table: pa.Table) -> None:
    atomic.write_with(path, lambda tmp: pq.write_table(table, tmp))


def _read_parquet(path: str, columns: list[str] | None = None, schema: pa.Schema | None = None) -> pa.Table:
    fs, where = storage.resolve(path)
    return pq.read_table(where, filesystem=fs, columns=columns, schema=schema)


def _round_dir(work: str, r: int) -> str:
    return storage.join(work, f"round-{r:05d}")


def _part_files(parts: str, prefix: str | None = None) -> list[str]:
    return [storage.join(parts, n) for n in storage.listdir(parts)
            if n.endswith(".parquet") and not atomic.is_temp(n) and (prefix is None or n.startswith(prefix))]


def _read_parts(parts: str, columns: list[str], prefix: str | None = None) -> pa.Table:
    files = _part_files(parts, prefix)
    if not files:
        return PART_SCHEMA.empty_table().select(columns)
    return pa.concat_tables([_read_parquet(f, columns, PART_SCHEMA) for f in files])


class PartWriter:
    """Buffers one host's results and writes them as parquet parts, each atomically."""

    def __init__(self, parts: str, host: str, rows: int):
        self.parts, self.rows, self.buf = parts, rows, []
        self.prefix = re.sub(r"[^a-z0-9.\-\[\]_]", "_", host) + "@"
        storage.makedirs(parts)

    def done_urls(self) -> set[str]:
        """URLs this host already has results for (a resumed round or a retried task)."""
        return set(_read_parts(self.parts, ["requested_url"], self.prefix).column(0).to_pylist())

    def add(self, res: dict) -> None:
        self.buf.append(result_row(res))
        if len(self.buf) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            table = pa.Table.from_pylist(self.buf, schema=PART_SCHEMA)
            _write_parquet(storage.join(self.parts, f"{self.prefix}{uuid.uuid4().hex[:12]}.parquet"), table)
            self.buf = []


# --- the Ray shell -------------------------------------------------------------------------

def _sitemaps_writer(folder: str):
    """on_sitemaps callback of a host task: round-NNNNN/sitemaps/<origin>.json, written atomically."""
    def write(origin: str, urls: list[str]) -> None:
        name = re.sub(r"[^A-Za-z0-9.\-]+", "_", origin) + f"-{uuid.uuid5(uuid.NAMESPACE_URL, origin).hex[:8]}.json"
        storage.makedirs(folder)
        atomic.write_text(storage.join(folder, name), json.dumps({"origin": origin, "sitemaps": urls}) + "\n")
    return write


def _round_sitemaps(rd: str) -> list[str]:
    """Sitemap URLs reported by the round's host tasks, normalised, in a stable order."""
    folder = storage.join(rd, "sitemaps")
    urls = [normalize(u) for n in storage.listdir(folder) if n.endswith(".json") and not atomic.is_temp(n)
            for u in json.loads(storage.read_text(storage.join(folder, n)))["sitemaps"]]
    return list(dict.fromkeys(u for u in urls if u))


def _fetch_groups(batch: pa.Table, cfg: CrawlConfig, allowed: list[str], parts: str) -> pa.Table:
    """Map function: one row = one host's URLs; fetch them politely, write parts, return counts."""
    from raylm.data.ingest.crawl_fetch import crawl_host

    rd = parts.rstrip("/").rsplit("/", 1)[0]
    store = RobotsStore(storage.join(rd.rsplit("/", 1)[0], "robots"))
    on_sitemaps = _sitemaps_writer(storage.join(rd, "sitemaps")) if cfg.follow_robots_sitemaps else None
    hosts, fetched = [], []
    for row in batch.to_pylist():
        writer = PartWriter(parts, row["host"], cfg.part_rows)
        done = writer.done_urls()
        items = [(u, d) for u, d in zip(row["urls"], row["depths"], strict=True) if u not in done]
        if items:
            try:
                # After round 0 the host's last request may be a moment ago: wait one delay first.
                asyncio.run(crawl_host(items, cfg, allowed, writer.add, first_wait=row["round"] > 0,
                                       robots_store=store, on_sitemaps=on_sitemaps))
            finally:
                writer.flush()  # keep finished pages even if the task dies afterwards
        hosts.append(row["host"])
        fetched.append(len(items))
    import ray  # only to say where this ran (the cluster test checks that hosts spread over nodes)

    node = ray.get_runtime_context().get_node_id()
    return pa.table({"host": hosts, "fetched": fetched, "node": [node] * len(hosts)})


def _fetch_round(groups: dict[str, list[tuple[str, int]]], cfg: CrawlConfig, allowed: list[str], parts: str,
                 r: int) -> list[str]:
    import ray

    items = [{"host": h, "urls": [u for u, _ in g], "depths": [d for _, d in g], "round": r}
             for h, g in groups.items()]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(_fetch_groups, fn_kwargs={"cfg": cfg, "allowed": allowed, "parts": str(parts)},
                        batch_size=1, batch_format="pyarrow", num_cpus=cfg.num_cpus, max_retries=2)
    # Results are in the part files; what comes back is one small row per host.
    return [n for t in ds.iter_batches(batch_format="pyarrow", batch_size=None) for n in t.column("node").to_pylist()]


def _seeds(cfg: CrawlConfig) -> list[str]:
    seeds = [u for u in (normalize(s) for s in cfg.seeds) if u]
    if cfg.sitemap:
        from raylm.data.ingest.crawl_fetch import fetch_sitemap

        seeds += fetch_sitemap(cfg.sitemap, cfg)
    if not seeds:
        raise ValueError("crawl: no valid http(s) seed URL (set crawl.seeds or crawl.sitemap)")
    outside = [u for u in seeds if cfg.allowed_hosts and not host_allowed(host_of(u), cfg.allowed_hosts)]
    if outside:
        raise ValueError(f"crawl: seeds outside crawl.allowed_hosts {cfg.allowed_hosts}: {outside[:5]}")
    return list(dict.fromkeys(seeds))


def _summarise(work: str, last: int) -> dict:
    """Rewrite stats.json and failures.jsonl from the parts of rounds 0..last."""
    counts: Counter = Counter()
    lines = []
    for r in range(last + 1):
        t = _read_parts(storage.join(_round_dir(work, r), "parts"), ["requested_url", "outcome", "status", "error"])
        for url, outcome, status, error in zip(*(c.to_pylist() for c in t.columns), strict=True):
            counts[outcome] += 1
            if outcome not in ("ok", "sitemap", "sitemap_index"):
                lines.append(json.dumps({"url": url, "reason": outcome, "status": status, "error": error,
                                         "round": r}))
    stats = {"rounds": last + 1, "urls": sum(counts.values()), "outcomes": dict(sorted(counts.items())),
             "robots": robots.summarise(storage.join(work, "robots"))}
    atomic.write_text(storage.join(work, "failures.jsonl"), "".join(line + "\n" for line in lines))
    atomic.write_text(storage.join(work, "stats.json"), json.dumps(stats, indent=2) + "\n")
    return stats


# Settings that decide which URLs a crawl fetches and keeps: a resumed crawl must use the same
# ones (the rounds on disk were built with them). Speed, retry and timeout settings may change.
SCOPE_KEYS = ("seeds", "sitemap", "allowed_hosts", "max_depth", "max_pages", "user_agent", "obey_robots",
              "follow_robots_sitemaps", "content_types", "max_body_bytes", "allow_private_addresses")


def check_scope(work: str, cfg: CrawlConfig) -> None:
    """Record the crawl's scope settings in work/scope.json, or check a resumed crawl against them."""
    scope = {k: getattr(cfg, k) for k in SCOPE_KEYS}
    path = storage.join(work, "scope.json")
    if storage.is_file(path):
        before = json.loads(storage.read_text(path))
        changed = [k for k in SCOPE_KEYS if k in before and before[k] != scope[k]]
        if changed:
            raise ValueError(
                f"crawl.work_dir {work} holds a crawl made with other settings: "
                + "; ".join(f"crawl.{k} was {before[k]!r}, now {scope[k]!r}" for k in changed)
                + ". Resume with the same settings, or give a new crawl.work_dir.")
        return
    atomic.write_text(path, json.dumps(scope, indent=2) + "\n")


def crawl(cfg: CrawlConfig) -> dict:
    """Run (or resume) the crawl in cfg.work_dir; returns the stats dict also in stats.json."""
    work = work_dir(cfg)
    storage.makedirs(work)
    rounds = sorted(int(n.split("-")[1]) for n in storage.listdir(work)
                    if re.fullmatch(r"round-\d+", n) and storage.is_file(storage.join(work, n, "frontier.parquet")))
    if not rounds:
        seeds = _seeds(cfg)  # bad seeds fail here, before anything is written
        for stale in ("scope.json", "robots"):  # from a start that never wrote a round; a fresh
            storage.delete(storage.join(work, stale))  # crawl asks every host for robots.txt again
        check_scope(work, cfg)
        frontier = [(u, 0) for u in seeds[: cfg.max_pages]]
        r = 0
        rd = _round_dir(work, 0)
        storage.makedirs(rd)
        _write_parquet(storage.join(rd, "seen.parquet"), pa.table({"url": [u for u, _ in frontier]}))
        _write_parquet(storage.join(rd, "frontier.parquet"), pa.Table.from_pylist(
            [{"url": u, "depth": d} for u, d in frontier], schema=_FRONTIER_SCHEMA))
    else:
        check_scope(work, cfg)
        r = rounds[-1]
        if storage.is_file(storage.join(_round_dir(work, r), "_DONE")):
            return {**_summarise(work, r), "host_tasks_per_node": {}}  # finished earlier: nothing to fetch
    seeds_hosts = None
    nodes: Counter = Counter()
    allowed = cfg.allowed_hosts
    queued = sum(_read_parquet(storage.join(_round_dir(work, i), "frontier.parquet"), ["url"]).num_rows
                 for i in range(r + 1))
    while True:
        rd = _round_dir(work, r)
        ft = _read_parquet(storage.join(rd, "frontier.parquet"))
        frontier = list(zip(ft.column("url").to_pylist(), ft.column("depth").to_pylist(), strict=True))
        if not allowed:
            if seeds_hosts is None:
                seeds_hosts = sorted({host_of(u) for u in _read_parquet(
                    storage.join(_round_dir(work, 0), "frontier.parquet"), ["url"]).column("url").to_pylist()})
            allowed = seeds_hosts
        parts = storage.join(rd, "parts")
        # Temps a killed attempt left; no writer of this crawl is live yet.
        for d in (work, rd, parts, storage.join(rd, "sitemaps"), storage.join(work, "robots")):
            atomic.sweep(d)
        done = set(_read_parts(parts, ["requested_url"]).column(0).to_pylist())
        todo = group_by_host([(u, d) for u, d in frontier if u not in done])
        if todo:
            nodes.update(_fetch_round(todo, cfg, allowed, parts, r))
        results = _read_parts(parts, ["url", "depth", "outcome", "links"])
        seen = set(_read_parquet(storage.join(rd, "seen.parquet")).column("url").to_pylist())
        sitemaps = [u for u in _round_sitemaps(rd) if host_allowed(host_of(u), allowed)]
        nxt = next_frontier(results, seen, allowed, cfg.max_depth, cfg.max_pages - queued, sitemaps)
        if nxt:
            nd = _round_dir(work, r + 1)
            storage.makedirs(nd)
            _write_parquet(storage.join(nd, "seen.parquet"), pa.table({"url": sorted(seen)}))
            _write_parquet(storage.join(nd, "frontier.parquet"), pa.Table.from_pylist(
                [{"url": u, "depth": d} for u, d in nxt], schema=_FRONTIER_SCHEMA))
            queued += len(nxt)
        stats = _summarise(work, r)
        atomic.write_text(storage.join(rd, "_DONE"), json.dumps(stats) + "\n")
        if not nxt:
            return {**stats, "host_tasks_per_node": dict(nodes)}  # this run only; not in stats.json
        r += 1


def run(cfg: CrawlConfig):
    """Crawl (resuming if cfg.work_dir has state), then the results as a ray.data.Dataset.

    Rows are in the document schema plus `depth` and `status`; pages that did not come back
    ok are rows with drop "crawl:<outcome>" and empty text, so the pipeline counts them.
    """
    import ray

    crawl(cfg)
    work = work_dir(cfg)
    files = [f for n in storage.listdir(work) if re.fullmatch(r"round-\d+", n)
             for f in _part_files(storage.join(work, n, "parts"))]
    cols = list(schema.DOC_COLUMNS) + ["depth", "status"]
    if not files:
        return ray.data.from_arrow(PART_SCHEMA.empty_table().select(cols))
    fs, _ = storage.resolve(files[0])
    return ray.data.read_parquet([storage.resolve(f)[1] for f in files], filesystem=fs, columns=cols)


def work_dir(cfg: CrawlConfig) -> str:
    """The crawl's work dir: a local path made absolute, or an object-store URI as given."""
    return cfg.work_dir if storage.is_remote(cfg.work_dir) else str(Path(cfg.work_dir).resolve())
