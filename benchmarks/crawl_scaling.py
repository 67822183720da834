"""Crawl scaling: pages/s of the same latency-bound crawl with 1, 2 and 4 host tasks at once.

Site: H hosts (127.0.0.1 ... 127.0.0.H, loopback aliases: the crawler keys politeness by
host name, not port, so each address is its own host), served by one aiohttp process that
answers every request (robots.txt included) after a fixed delay, like a far-away server.
Each host has a home page linking P pages (~2.5 KB of text each); max_depth 1, so a crawl
is two breadth-first rounds (home pages, then the rest) and fetches H * (1 + P) pages.

What "workers" means here: the crawler runs one Ray task per host and round, each asking
for `crawl.num_cpus` CPUs, so on a Ray of C CPUs at most C / num_cpus hosts are fetched at
once. C is fixed (logical CPUs: the tasks wait on the network, not the cores) and num_cpus
is set to C / W for W = 1, 2, 4. Politeness (per-host concurrency, min delay, robots) is
the same in every run, so one host's pace is fixed (at most min(1/min_delay_s,
concurrency/latency) pages/s) and only the number of hosts in flight changes. The server
counts the largest number of hosts it saw with a request in flight at the same moment,
which checks that W really was W. `round_s` gives each round's wall time: round 0 (one
page per host) is mostly fixed cost (a Ray Data run, task launches) that W does not divide.

Ray's workers are started by an untimed crawl at the largest W before timing (a long crawl
pays that once). Runs of the W values alternate, --reps times; medians are kept.
pages/s = URLs / wall s. With --cluster (the default), the same crawl also runs at
W = --cpus on a 2-node ray.cluster_utils.Cluster (--cpus/2 logical CPUs per node, one
machine), reporting pages/s and the host tasks per node. About 2.5 minutes with defaults.

    .venv/bin/python -m benchmarks.crawl_scaling [--hosts 8] [--pages 24] [--latency 0.08] [--reps 2] [--no-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks._common import write_result
from raylm.data.ingest.crawl import CrawlConfig, crawl

WORDS = ("crawl scaling measures pages per second while each host keeps its own polite pace "
         "so only the number of hosts fetched at once changes between runs").split()


def _page(host: int, k: int | None, pages: int) -> bytes:
    if k is None:  # the home page: links to every page of the host
        title, links = f"host {host} home", [f"/p/{i}" for i in range(pages)]
    else:  # a page: links home and to the next page (both already queued: depth-1 crawl)
        title, links = f"host {host} page {k}", ["/", f"/p/{(k + 1) % pages}"]
    n_words, seed = (40, host) if k is None else (400, host + 7 * k)
    text = " ".join(WORDS[(seed + i) % len(WORDS)] for i in range(n_words))
    body = "".join(f'<li><a href="{u}">{u}</a></li>' for u in links)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>"
            f"<h1>{title}</h1><p>{text}</p><ul>{body}</ul></body></html>").encode()


def serve_sites(n_hosts: int, pages: int, latency: float, ready) -> None:
    """Child process: one aiohttp site per loopback address; sends [port, ...] when ready.

    GET /_stats (not linked from any page) returns and resets the peak number of hosts with
    a request in flight at once.
    """
    from aiohttp import web

    inflight = [0] * (n_hosts + 1)
    peak = [0]

    def app_for(h: int) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            if request.path == "/_stats":
                out, peak[0] = peak[0], 0
                return web.json_response({"peak_hosts_in_flight": out})
            inflight[h] += 1
            peak[0] = max(peak[0], sum(1 for n in inflight if n))
            try:
                await asyncio.sleep(latency)  # the round trip of a real web server
            finally:
                inflight[h] -= 1
            if request.path == "/robots.txt":
                return web.Response(text="User-agent: *\nAllow: /\n")
            if request.path == "/":
                return web.Response(body=_page(h, None, pages), content_type="text/html")
            if request.path.startswith("/p/") and request.path[3:].isdigit() and int(request.path[3:]) < pages:
                return web.Response(body=_page(h, int(request.path[3:]), pages), content_type="text/html")
            return web.Response(status=404)

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        return app

    async def main() -> None:
        ports = []
        for h in range(1, n_hosts + 1):
            runner = web.AppRunner(app_for(h), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, f"127.0.0.{h}", 0)
            await site.start()
            ports.append(runner.addresses[0][1])
        ready.send(ports)
        await asyncio.Event().wait()  # until terminated

    asyncio.run(main())


def peak_hosts(root: str) -> int:
    with urllib.request.urlopen(root.rstrip("/") + "/_stats", timeout=10) as r:
        return json.load(r)["peak_hosts_in_flight"]


def timed_crawl(seeds: list[str], args, workers: int) -> dict:
    work = tempfile.mkdtemp(prefix="crawlscale-")
    cfg = CrawlConfig(seeds=seeds, allow_private_addresses=True, min_delay_s=args.delay,
                      per_host_concurrency=args.conc, max_depth=1, max_pages=100_000, retries=1,
                      backoff_s=0.1, num_cpus=args.cpus / workers, work_dir=work)
    try:
        peak_hosts(seeds[0])  # reset the server's count
        t0, t = time.time(), time.perf_counter()
        stats = crawl(cfg)
        wall = time.perf_counter() - t
        # Each round's end (its _DONE file): round 0 is the home pages, round 1 the rest.
        ends = [p.stat().st_mtime - t0 for p in sorted(Path(work).glob("round-*/_DONE"))]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"pages": stats["urls"], "ok": stats["outcomes"].get("ok", 0), "wall_s": wall,
            "pages_per_s": stats["urls"] / wall, "peak_hosts_in_flight": peak_hosts(seeds[0]),
            "round_s": [round(b - a, 2) for a, b in zip([0.0, *ends], ends)],
            "host_tasks_per_node": stats["host_tasks_per_node"]}


def check(run: dict, args) -> dict:
    """A timing only counts if every page came back ok (no timeouts, no retries hiding)."""
    want = args.hosts * (args.pages + 1)
    if run["ok"] != want or run["pages"] != want:
        sys.exit(f"{run['ok']} of {run['pages']} pages ok, {want} expected: not a clean crawl")
    return run


def warm_up(seeds: list[str], args, workers: int) -> int:
    """One untimed crawl at `workers`: starts that many Ray worker processes (pyarrow, aiohttp
    and raylm imports, seconds each on a busy machine) before timing. Short warm-up tasks
    would all run on the first workers up, so it is the full crawl. Returns its peak hosts."""
    return timed_crawl(seeds, args, workers)["peak_hosts_in_flight"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=8, help="sites, one per loopback address")
    ap.add_argument("--pages", type=int, default=24, help="pages per site besides the home page")
    ap.add_argument("--latency", type=float, default=0.08, help="server delay per response (s)")
    ap.add_argument("--delay", type=float, default=0.1, help="crawl.min_delay_s (fixed)")
    ap.add_argument("--conc", type=int, default=2, help="crawl.per_host_concurrency (fixed)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="host tasks at once")
    ap.add_argument("--cpus", type=int, default=4, help="Ray logical CPUs (>= max workers)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--cluster", action=argparse.BooleanOptionalAction, default=True,
                    help="also W=--cpus on a 2-node simulated cluster (--cpus/2 logical CPUs per node)")
    args = ap.parse_args()
    if args.cpus < max(args.workers):
        sys.exit("--cpus must be >= the largest --workers")
    # Ray starts workers at nice 15; on a machine shared with other nice-0 work that alone
    # slows the crawler's event loops (see crawl_throughput.py), so run them at nice 0.
    os.environ["RAY_worker_niceness"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=serve_sites, args=(args.hosts, args.pages, args.latency, child),
                                             daemon=True)
    server.start()
    ports = parent.recv()
    seeds = [f"http://127.0.0.{h + 1}:{p}/" for h, p in enumerate(ports)]
    t_all = time.perf_counter()
    runs: dict[int, list[dict]] = {w: [] for w in args.workers}
    cluster_run = None
    try:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        print("warm-up: peak hosts in flight", warm_up(seeds, args, max(args.workers)), flush=True)
        for _ in range(args.reps):
            for w in args.workers:
                runs[w].append(r := check(timed_crawl(seeds, args, w), args))
                print(f"W={w}: {r['pages']} pages in {r['wall_s']:.1f} s = {r['pages_per_s']:.1f} pages/s, "
                      f"peak hosts in flight {r['peak_hosts_in_flight']}", flush=True)
        ray.shutdown()
        if args.cluster:
            from ray.cluster_utils import Cluster

            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus // 2})
            cluster.add_node(num_cpus=args.cpus - args.cpus // 2)
            try:
                ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
                ray.data.DataContext.get_current().enable_progress_bars = False
                print("warm-up: peak hosts in flight", warm_up(seeds, args, args.cpus), flush=True)
                cluster_run = check(timed_crawl(seeds, args, args.cpus), args)  # num_cpus 1: a task per CPU
                print(f"2-node cluster W={args.cpus}: {cluster_run['pages_per_s']:.1f} pages/s, "
                      f"tasks per node {sorted(cluster_run['host_tasks_per_node'].values())}", flush=True)
            finally:
                ray.shutdown()
                cluster.shutdown()
    finally:
        server.terminate()
        server.join()

    w0 = min(args.workers)
    base = statistics.median(r["pages_per_s"] for r in runs[w0])
    config = {"hosts": args.hosts, "pages_per_host": args.pages + 1, "server_latency_s": args.latency,
              "min_delay_s": args.delay, "per_host_concurrency": args.conc, "obey_robots": True,
              "max_depth": 1, "ray_num_cpus_logical": args.cpus, "reps": args.reps,
              "ray_workers_warmed_up": True, "ray_worker_niceness": 0,
              "per_host_ceiling_pages_per_s": round(min(1 / args.delay if args.delay else float("inf"),
                                                         args.conc / args.latency), 2)}
    records = []
    for w in args.workers:
        v = statistics.median(r["pages_per_s"] for r in runs[w])
        records.append({
            "metric": f"crawl_scaling_{w}w", "unit": "pages/s", "value": round(v, 2),
            "baseline": {"name": f"same crawl, {w0} host task(s) at once", "value": round(base, 2)},
            "ratio": round(v / base, 3),
            "config": {**config, "workers": w, "crawl_num_cpus": args.cpus / w,
                       "runs": [{k: (round(x, 2) if isinstance(x, float) else x) for k, x in r.items()
                                 if k != "host_tasks_per_node"} for r in runs[w]]}})
    if cluster_run:
        records.append({
            "metric": f"crawl_scaling_2nodes_{args.cpus}w", "unit": "pages/s",
            "value": round(cluster_run["pages_per_s"], 2),
            "baseline": {"name": f"same crawl, {w0} host task(s) at once, one node", "value": round(base, 2)},
            "ratio": round(cluster_run["pages_per_s"] / base, 3),
            "config": {**config, "workers": args.cpus, "crawl_num_cpus": 1.0,
                       "cluster": f"ray.cluster_utils.Cluster, 2 nodes, {args.cpus} logical CPUs, one machine",
                       "reps": 1, "pages": cluster_run["pages"], "wall_s": round(cluster_run["wall_s"], 2),
                       "peak_hosts_in_flight": cluster_run["peak_hosts_in_flight"], "round_s": cluster_run["round_s"],
                       "host_tasks_per_node": sorted(cluster_run["host_tasks_per_node"].values())}})
    for rec in records:
        rec["config"]["bench_wall_s"] = round(time.perf_counter() - t_all, 1)
        rec["config"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 1)
    write_result("crawl_scaling", records, extra_versions=("aiohttp",))


if __name__ == "__main__":
    main()
