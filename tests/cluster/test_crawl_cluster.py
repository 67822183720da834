"""Host groups of one crawl round run as tasks spread over the nodes of a simulated cluster.

Four hosts (127.0.0.1-4, loopback aliases) each serve a small site whose pages take 0.2 s,
so host tasks overlap; each task asks for a whole CPU and each node has one, so the
crawl only runs them side by side if Ray places them on both nodes.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.network]


class _Site(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/robots.txt":
            body, status = b"", 404
        else:
            threading.Event().wait(0.2)  # a slow page, so host tasks overlap in time
            k = int(self.path.strip("/") or 0)
            body, status = "".join(f'<a href="/{k * 3 + i}">p</a>' for i in (1, 2, 3)).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_host_groups_spread_over_two_nodes(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from raylm.data.ingest.crawl import CrawlConfig, crawl

    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process; run tests/cluster on its own")
    servers = [ThreadingHTTPServer((f"127.0.0.{i}", 0), _Site) for i in range(1, 5)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        seeds = [f"http://127.0.0.{i + 1}:{s.server_port}/" for i, s in enumerate(servers)]
        cfg = CrawlConfig(seeds=seeds, allow_private_addresses=True, min_delay_s=0.0, per_host_concurrency=1,
                          max_depth=1, num_cpus=1.0, work_dir=str(tmp_path / "crawl"))
        stats = crawl(cfg)
        assert stats["outcomes"] == {"ok": 16}  # 4 hosts x (home page + 3 links)
        assert len(stats["host_tasks_per_node"]) == 2
        assert sum(stats["host_tasks_per_node"].values()) == 4 + 4  # one task per host per round
    finally:
        ray.shutdown()
        cluster.shutdown()
        for s in servers:
            s.shutdown()
            s.server_close()
