"""Crawl throughput: raylm's Ray crawler vs a plain single-process asyncio crawler.

Site: the Python 3.11 docs (Debian python3.11-doc, ~530 pages) served by
`python3 -m http.server` on 127.0.0.1 (one host), and optionally the same tree on several
loopback addresses (127.0.0.2, ...: separate hosts, so the Ray crawler runs host groups as
parallel tasks). Both crawlers use the same politeness (per-host concurrency, min delay,
robots) and the same per-page code (crawl_fetch.HostFetcher), so the comparison is of the
orchestration: breadth-first rounds of Ray Data tasks with parts on disk, vs one event loop
with an in-memory queue. Runs alternate; medians are kept. pages/s = URLs finished / wall s.
Ray's worker processes are started by one tiny warm-up crawl before timing.

    .venv/bin/python -m benchmarks.crawl_throughput [--delay 0.02] [--conc 2] [--hosts 1 4] [--reps 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from benchmarks._common import write_result
from raylm.data.ingest.crawl import CrawlConfig, crawl
from raylm.data.ingest.crawl_fetch import HostFetcher, Pacer, client_session
from raylm.data.ingest.crawl_url import host_allowed, host_of

DOCS = Path("/usr/share/doc/python3.11/html")


async def plain_crawl(seeds: list[str], cfg: CrawlConfig) -> int:
    """Baseline: one process, one event loop, per-host FIFO queues, same fetcher and limits."""
    allowed = sorted({host_of(u) for u in seeds})
    seen = set(seeds)
    queues = {h: deque() for h in allowed}
    for u in seeds:
        queues[host_of(u)].append((u, 0))
    pending, done = len(seeds), 0
    async with client_session(cfg) as session:
        fetchers = {h: HostFetcher(cfg, session, Pacer(cfg.min_delay_s), allowed) for h in allowed}

        async def worker(h: str) -> None:
            nonlocal pending, done
            while pending:
                if not queues[h]:
                    await asyncio.sleep(0.002)  # another worker's page may still add links
                    continue
                url, depth = queues[h].popleft()
                res = await fetchers[h].fetch(url, depth)
                for link in res["links"]:
                    if link not in seen and len(seen) < cfg.max_pages and host_allowed(host_of(link), allowed):
                        seen.add(link)
                        queues[host_of(link)].append((link, depth + 1))
                        pending += 1
                pending -= 1
                done += 1

        await asyncio.gather(*(worker(h) for h in allowed for _ in range(cfg.per_host_concurrency)))
    return done


def serve(ips: list[str]) -> tuple[list[subprocess.Popen], list[str]]:
    procs, roots = [], []
    for ip in ips:
        with socket.socket() as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", "--bind", ip, str(port), "--directory",
                                       str(DOCS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        roots.append(f"http://{ip}:{port}")
    for r in roots:
        ip, port = r[7:].split(":")
        for _ in range(200):
            try:
                socket.create_connection((ip, int(port)), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
    return procs, roots


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.02, help="min_delay_s per host")
    ap.add_argument("--conc", type=int, default=2, help="per_host_concurrency")
    ap.add_argument("--hosts", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--worker-niceness", type=int, default=0, help="Ray worker nice level (Ray's default: 15)")
    args = ap.parse_args()
    if not (DOCS / "index.html").exists():
        sys.exit(f"{DOCS} missing: apt-get install -y --no-install-recommends python3.11-doc")
    # Ray starts workers at nice 15; the baseline runs in this nice-0 process. On a machine
    # shared with other nice-0 work that alone starves the Ray crawler, so match priorities.
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)
    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    records = []
    # Warm-up: start Ray's worker processes (imports of pyarrow, aiohttp, raylm: seconds on a
    # busy machine) before timing, as a long crawl pays that once. Stated in the record.
    procs, roots = serve(["127.0.0.1"])
    warm = tempfile.mkdtemp(prefix="crawlbench-warm-")
    try:
        crawl(CrawlConfig(seeds=[roots[0] + "/index.html"], allow_private_addresses=True, min_delay_s=0.0,
                          max_depth=0, work_dir=warm))
    finally:
        shutil.rmtree(warm, ignore_errors=True)
        for p in procs:
            p.terminate()
            p.wait()
    for n_hosts in args.hosts:
        procs, roots = serve([f"127.0.0.{i + 1}" for i in range(n_hosts)])
        try:
            seeds = [r + "/index.html" for r in roots]
            rates: dict[str, list[float]] = {"plain": [], "ray": []}
            pages = {}
            for _ in range(args.reps):
                work = tempfile.mkdtemp(prefix="crawlbench-")
                cfg = CrawlConfig(seeds=seeds, allow_private_addresses=True, min_delay_s=args.delay,
                                  per_host_concurrency=args.conc, max_depth=50, max_pages=100_000, retries=1,
                                  backoff_s=0.1, work_dir=work)
                t = time.perf_counter()
                n = asyncio.run(plain_crawl(seeds, cfg))
                rates["plain"].append(n / (time.perf_counter() - t))
                pages["plain"] = n
                t = time.perf_counter()
                stats = crawl(cfg)
                rates["ray"].append(stats["urls"] / (time.perf_counter() - t))
                pages["ray"] = stats["urls"]
                shutil.rmtree(work, ignore_errors=True)
                print(n_hosts, "hosts:", {k: round(v[-1], 1) for k, v in rates.items()}, pages, flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait()
        ray_v, plain_v = statistics.median(rates["ray"]), statistics.median(rates["plain"])
        records.append({
            "metric": "crawl_throughput" if n_hosts == 1 else f"crawl_throughput_{n_hosts}hosts",
            "unit": "pages/s", "value": round(ray_v, 2),
            "baseline": {"name": "single-process asyncio crawler, same HostFetcher and politeness",
                         "value": round(plain_v, 2)},
            "ratio": round(ray_v / plain_v, 3),
            "config": {"site": "python3.11-doc via http.server", "hosts": n_hosts, "min_delay_s": args.delay,
                       "per_host_concurrency": args.conc, "ray_num_cpus": args.cpus, "reps": args.reps,
                       "ray_workers_warmed_up": True, "ray_worker_niceness": args.worker_niceness,
                       "pages": pages, "runs_pages_per_s": rates,
                       "load_average_1m_at_end": round(os.getloadavg()[0], 1)}})
    write_result("crawl_throughput", records, extra_versions=("aiohttp",))


if __name__ == "__main__":
    main()
