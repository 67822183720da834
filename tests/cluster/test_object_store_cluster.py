"""A cluster whose nodes share nothing but object storage: three simulated nodes, a moto S3 server
on 127.0.0.1 as the only shared storage, each node's scratch its own temp folder (TMPDIR set per
raylet). `raylm run` end to end with `out: s3://...`: ingest from S3, clean, dedup, shards to S3,
pretraining with 2 workers on 2 nodes (each copying the shards to its node and checking their
sha256), eval as a Ray task, all written to S3. Then: the shards equal a local run's byte for
byte, a rerun skips finished work, and a training run whose worker is killed mid-way resumes
from its S3 checkpoint and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from raylm import cli, outputs

pytest.importorskip("moto")

from moto_s3 import moto_s3  # noqa: E402 -- tests/moto_s3.py, after the skip
pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "tiny.yaml")
BUCKET = "raylm-cluster"


@pytest.fixture
def s3(monkeypatch):
    with moto_s3(BUCKET, monkeypatch) as client:
        yield client


def _manifest_shas(manifest: dict) -> dict[str, str]:
    return {s["name"]: s["sha256"] for d in manifest["splits"].values() for s in d["shards"]}


def test_raylm_run_generate_export_with_out_on_s3(s3, tmp_path, monkeypatch, capsys):
    """The CI-sized version on one local Ray: `raylm run` into s3://, then generate and export
    reading the checkpoint back from it (the 3-node test below is in the slow tier)."""
    import ray

    from raylm import storage

    s3.put_object(Bucket=BUCKET, Key="in/t.txt", Body=(REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt")
                  .read_bytes())
    out = f"s3://{BUCKET}/one"
    base = [TINY, "--set", f"out={out}", "--set", f"data.ingest.files.paths=[s3://{BUCKET}/in/*.txt]",
            "--set", "eval.max_tokens=2000", "--set", f"cluster.local_dir={tmp_path / 'scratch'}"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # after the S3 variables are set
    try:
        assert cli.main(["run", *base]) == 0, capsys.readouterr().err
        outputs.release_locks()
        assert cli.main(["generate", *base, "--prompt", "ROMEO:", "--max-new-tokens", "5"]) == 0
        assert cli.main(["export", *base, "--out", f"{out}/hf"]) == 0
    finally:
        ray.shutdown()
        outputs.release_locks()
    for name in ("data/shards/manifest.json", "data/fingerprint.json", "train/result.json", "train/metrics.jsonl",
                 "eval/report.json", "eval/report.md", "hf/config.json", "hf/model.safetensors"):
        assert storage.is_file(f"{out}/{name}"), name
    assert json.loads(storage.read_text(f"{out}/eval/report.json"))["checkpoint"].startswith(f"{out}/train/run/")
    assert list((tmp_path / "scratch").glob("shards-*/train-*.bin"))  # the workers read node-local copies


def test_incremental_dedup_against_a_previous_workdir_on_s3(s3, tmp_path, capsys):
    """dedup.previous names an earlier run's dedup workdir on S3: documents of the new run that
    repeat the earlier run's are dropped as near duplicates, the others kept (issue 22). (moto
    keeps one store per process: every test here uses its own prefixes.)"""
    import ray

    words = (REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text().split()
    chunks = [" ".join(words[i * 400:(i + 1) * 400]) for i in range(12)]
    for i in range(6):
        s3.put_object(Bucket=BUCKET, Key=f"inc1/{i}.txt", Body=chunks[i].encode())
    for i in range(4, 12):  # 4 and 5 again, under other names (other ids)
        s3.put_object(Bucket=BUCKET, Key=f"inc2/again-{i}.txt", Body=chunks[i].encode())

    def config(name, previous=""):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"out: s3://{BUCKET}/{name}\nseed: 3\ndata:\n"
                        f"  ingest: {{files: {{paths: ['s3://{BUCKET}/{name}/*.txt'], txt_unit: file}}}}\n"
                        f"  steps: [dedup]\n  dedup: {{exact: false{previous}}}\n"
                        f"  tokenizer: {{kind: char}}\n  split: {{val_fraction: 0.5}}\n")
        return str(path)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # after the S3 variables are set
    try:
        assert cli.main(["data", config("inc1")]) == 0, capsys.readouterr().err
        outputs.release_locks()
        assert cli.main(["data", config("inc2", f", previous: ['s3://{BUCKET}/inc1/data/dedup']")]) == 0, \
            capsys.readouterr().err
    finally:
        ray.shutdown()
        outputs.release_locks()
    from raylm import storage

    stats = json.loads(storage.read_text(f"s3://{BUCKET}/inc2/data/stats.json"))
    assert stats["documents_read"] == 8
    assert stats["drop_reasons"] == {"dedup:near": 2}


def test_crawl_with_its_work_dir_on_s3(s3, tmp_path, capsys):
    """A crawl whose work dir is on S3 (out on S3, work_dir relative): rounds, parts, robots
    answers and stats are objects; the pages reach the shards; a rerun fetches nothing again."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import ray

    from raylm import storage
    from raylm.data.ingest.crawl import CrawlConfig, crawl

    hits = []
    words = (REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text().split()

    class Site(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            if self.path == "/robots.txt":
                body, ctype = b"User-agent: *\nDisallow: /private\n", "text/plain"
            else:
                k = int(self.path.strip("/").split("/")[-1] or 0)
                text = " ".join(words[k * 150:(k + 1) * 150])
                links = "".join(f'<a href="/{k * 2 + i}">next</a>' for i in (1, 2)) + '<a href="/private/1">x</a>'
                body, ctype = f"<html><body><article><p>{text}</p></article>{links}</body></html>".encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = f"s3://{BUCKET}/crawled"
    cfg = tmp_path / "c.yaml"
    seed = f"http://127.0.0.1:{server.server_port}/"
    cfg.write_text(f"out: {out}\nseed: 1\ndata:\n  ingest:\n    crawl: {{seeds: ['{seed}'], "
                   "max_depth: 2, allow_private_addresses: true, min_delay_s: 0}\n"
                   "  steps: [extract]\n  tokenizer: {kind: char}\n  split: {val_fraction: 0.3}\n")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # after the S3 variables are set
    try:
        assert cli.main(["data", str(cfg)]) == 0, capsys.readouterr().err
        work = f"{out}/data/crawl"
        fetched = len(hits)
        assert storage.is_file(f"{work}/round-00000/_DONE") and storage.listdir(f"{work}/round-00001/parts")
        assert storage.listdir(f"{work}/robots")
        stats = json.loads(storage.read_text(f"{work}/stats.json"))
        assert stats["outcomes"]["ok"] == 7 and stats["outcomes"]["robots_disallowed"] >= 1, stats
        assert crawl(CrawlConfig(seeds=[f"http://127.0.0.1:{server.server_port}/"], max_depth=2,
                                 allow_private_addresses=True, min_delay_s=0, work_dir=work))["outcomes"]["ok"] == 7
        assert len(hits) == fetched  # finished rounds are read back from S3, nothing fetched again
    finally:
        ray.shutdown()
        outputs.release_locks()
        server.shutdown()
        server.server_close()
    manifest = json.loads(storage.read_text(f"{out}/data/shards/manifest.json"))
    assert sum(d["documents"] for d in manifest["splits"].values()) == 7


@pytest.mark.slow
def test_raylm_run_with_only_object_storage_shared(s3, tmp_path, monkeypatch, capsys):
    from test_multinode import _train_worker_nodes, simulated_cluster  # tests/cluster is on sys.path

    from raylm import storage
    from raylm.model.gpt import GPTConfig
    from raylm.train.config import ScheduleConfig, TrainConfig
    from raylm.train.trainer import fit

    text = (REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_bytes()
    s3.put_object(Bucket=BUCKET, Key="in/tinyshakespeare-slice.txt", Body=text)
    (tmp_path / "local-in").mkdir()
    (tmp_path / "local-in" / "tinyshakespeare-slice.txt").write_bytes(text)
    cwd = tmp_path / "cwd"  # the driver's working directory: nothing may land in it
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    scratch = {n: tmp_path / f"node{n}" for n in range(3)}
    out = f"s3://{BUCKET}/run"
    # 2 workers on 2 nodes: the two nodes with the `trainer` resource (Ray Data's shuffle
    # aggregators stall on nodes with a single CPU, so every node has 2)
    common = ["--set", "train.num_workers=2", "--set", "train.cpus_per_worker=1",
              "--set", "train.resources={trainer: 1}",
              "--set", "data.steps=[dedup]", "--set", "eval.max_tokens=2000"]
    args = ["run", TINY, "--set", f"out={out}", "--set", f"data.ingest.files.paths=[s3://{BUCKET}/in/*.txt]",
            *common]
    nodes = [{"num_cpus": 2, "env_vars": {"TMPDIR": str(scratch[n])}, **({"resources": {"trainer": 1}} if n else {})}
             for n in range(3)]
    with simulated_cluster(*nodes) as (_, node_ids):
        for d in scratch.values():
            d.mkdir()
        assert cli.main(args) == 0, capsys.readouterr().err
        train_nodes = _train_worker_nodes()
        outputs.release_locks()

        # the same data run into a local folder: the shards are the same bytes
        local = tmp_path / "local"
        assert cli.main(["data", TINY, "--set", f"out={local}", "--set",
                         f"data.ingest.files.paths=[{tmp_path / 'local-in' / '*.txt'}]", *common]) == 0
        outputs.release_locks()

        # a rerun skips what is finished: data is complete (no shard or manifest rewritten), training too
        written = {k: storage.stat(f"{out}/data/shards/{k}") for k in storage.listdir(f"{out}/data/shards")
                   if not k.startswith(".")}
        assert cli.main(args) == 0
        outputs.release_locks()
        assert {k: storage.stat(f"{out}/data/shards/{k}") for k in written} == written

        # a worker killed at step 6 (max_failures 1): Ray Train restarts it from the S3 checkpoint
        marker = tmp_path / "killed"
        model = GPTConfig(size="tiny", block_size=32)
        cfg = TrainConfig(max_steps=12, batch_size=8, eval_interval=4, eval_batches=2, log_interval=4,
                          num_workers=2, cpus_per_worker=1, resources={"trainer": 1},
                          schedule=ScheduleConfig(warmup_steps=2))
        shards = f"{out}/data/shards"
        killed = fit(model, replace(cfg, max_failures=1), shards, f"s3://{BUCKET}/killed/train", 7,
                     env={"RAYLM_FAIL_AT": f"6:1:{marker}"})
        reference = fit(model, cfg, shards, f"s3://{BUCKET}/ref/train", 7)

    manifest = json.loads(storage.read_text(f"{out}/data/shards/manifest.json"))
    local_manifest = json.loads((local / "data" / "shards" / "manifest.json").read_text())
    assert _manifest_shas(manifest) == _manifest_shas(local_manifest) and len(_manifest_shas(manifest)) > 2
    for name in ("stats.json", "fingerprint.json", "config.yaml", "dedup/summary.json"):
        assert storage.is_file(f"{out}/data/{name}"), name
    result = json.loads(storage.read_text(f"{out}/train/result.json"))
    assert result["checkpoint"].startswith(f"s3://{BUCKET}/run/train/run/checkpoint_step-")
    assert result["metrics"]["step"] == 30
    assert storage.is_file(f"{out}/train/metrics.jsonl") and storage.listdir(f"{out}/train/tb")
    report = json.loads(storage.read_text(f"{out}/eval/report.json"))
    assert report["lm"]["tokens_scored"] > 0 and report["checkpoint"] == result["checkpoint"]
    assert train_nodes == set(node_ids[1:])  # 2 workers on the 2 training nodes
    copies = [list((scratch[n] / "raylm-scratch").glob("shards-*/*.bin")) for n in range(3)]
    assert copies[1] and copies[2]  # each training node made its own copy of the shards
    assert list(cwd.iterdir()) == []  # nothing under the driver's working directory
    rows = [json.loads(x) for x in storage.read_text(f"{out}/train/metrics.jsonl").splitlines()]
    assert rows[-1].get("already_complete") and rows[-1]["step"] == 30  # the rerun trained nothing
    assert killed["checkpoint"].startswith(f"s3://{BUCKET}/killed/train/run/checkpoint_step-")
    assert marker.exists() and killed["metrics"]["step"] == reference["metrics"]["step"] == 12
    assert killed["metrics"]["val_loss"] == pytest.approx(reference["metrics"]["val_loss"], rel=1e-5)
