"""Whole-run latency of a small dedup job: `raylm data` against datatrove's local MinHash pipeline.

Two corpora, same run, same files for both tools:

- `dedup_small_corpus_s`: the 728 SPDX licence texts (../shared/data/neardup), one .txt file
  each, the config of issue 28 (files ingest, `steps: [dedup]`, BPE 2048). Target < 60 s.
- `dedup_10k_docs_s`: 10,000 AG News articles (../shared/data/agnews dev.tsv, then test.tsv) in
  one jsonl file, same config otherwise.

raylm: the `raylm data` command in a fresh process, timed from start to exit (Ray start-up,
ingest, exact + MinHash dedup with verification, tokenizer training, shards and manifest: the
whole job). The peak number of Ray worker processes is sampled from /proc every 0.25 s.
datatrove 0.10.1: its documented local MinHash recipe (MinhashDedupSignature ->
MinhashDedupBuckets -> MinhashDedupCluster -> MinhashDedupFilter + a writer of the kept ids, each stage a
LocalPipelineExecutor with --workers processes), reading the same files. datatrove does no
exact dedup, no verification and no tokenization: its figure is a floor for the dedup work,
not the same job, which the results file says. Documents each removes are recorded too.

    python -m benchmarks.data_latency            # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._common import ray_workers, write_result

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
out: {out}
data:
  ingest: {{files: {{paths: ["{paths}"], format: {fmt}, txt_unit: file}}}}
  steps: [dedup]
  tokenizer: {{kind: bpe, vocab_size: 2048}}
"""




def spdx_files(shared: Path, d: Path) -> str:
    from raylm.data.dedup.evaluate import load_spdx

    t = load_spdx(shared / "neardup" / "spdx-license-list-6.12.0.tgz")
    d.mkdir(parents=True)
    for i, text in zip(t["id"].to_pylist(), t["text"].to_pylist()):
        (d / f"{i}.txt").write_text(text, encoding="utf-8")
    return f"{d}/*.txt"


def agnews_jsonl(shared: Path, path: Path, n: int) -> str:
    rows = []
    for name in ("dev.tsv", "test.tsv"):
        for line in (shared / "agnews" / name).read_text(encoding="utf-8").splitlines():
            text = line.rsplit("\t", 1)[0].strip()
            if text and len(rows) < n:
                rows.append({"id": f"ag{len(rows):05d}", "text": text})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run_raylm(paths: str, fmt: str, out: Path) -> dict:
    cfg = out.with_suffix(".yaml")
    cfg.write_text(CONFIG.format(out=out, paths=paths, fmt=fmt))
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.25):
            peak.append(ray_workers())

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "raylm.cli", "data", str(cfg)], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    if p.returncode:
        raise SystemExit(f"raylm data failed ({p.returncode}):\n{p.stderr[-3000:]}")
    stats = json.loads((out / "data" / "stats.json").read_text())
    summary = json.loads((out / "data" / "dedup" / "summary.json").read_text())
    return {"seconds": round(seconds, 2), "peak_ray_workers": max(peak),
            "pipeline_seconds": stats["seconds"],  # ingest to manifest; the rest is process and Ray start-up
            "dedup_steps_seconds": round(sum(s.get("seconds") or 0 for s in summary.values()), 2),
            "documents_in": stats["documents_read"],
            "documents_removed": sum(v for k, v in stats["drop_reasons"].items() if k.startswith("dedup"))}


def run_datatrove(paths: str, fmt: str, work: Path, workers: int) -> dict:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )

    from raylm.data.ingest.files import expand

    files = [u for u, _ in expand([paths])]

    def reader(data, rank: int = 0, world_size: int = 1):
        for k, f in enumerate(files):
            if k % world_size != rank:
                continue
            if fmt == "txt":
                yield Document(text=Path(f).read_text(encoding="utf-8"), id=Path(f).stem)
            else:
                for line in Path(f).read_text(encoding="utf-8").splitlines():
                    r = json.loads(line)
                    yield Document(text=r["text"], id=r["id"])

    def kept_ids(data, rank: int = 0, world_size: int = 1):  # the writer: one id per line per task
        out = work / "out"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"{rank:05d}.txt", "w") as f:
            for doc in data:
                f.write(f"{doc.id}\n")
        yield from ()

    cfg = MinhashConfig()
    tasks = workers
    logs = str(work / "logs")
    t0 = time.perf_counter()
    s1 = LocalPipelineExecutor(pipeline=[reader, MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)],
                               tasks=tasks, workers=workers, logging_dir=f"{logs}/1")
    s2 = LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=str(work / "sigs"),
                                                             output_folder=str(work / "buckets"), config=cfg)],
                               tasks=cfg.num_buckets, workers=workers, logging_dir=f"{logs}/2", depends=s1)
    s3 = LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"),
                                                             output_folder=str(work / "remove"), config=cfg)],
                               tasks=1, logging_dir=f"{logs}/3", depends=s2)
    s4 = LocalPipelineExecutor(pipeline=[reader, MinhashDedupFilter(input_folder=str(work / "remove")),
                                         kept_ids],
                               tasks=tasks, workers=workers, logging_dir=f"{logs}/4", depends=s3)
    s4.run()
    seconds = time.perf_counter() - t0
    kept = sum(len(f.read_text().split()) for f in (work / "out").glob("*.txt"))
    n_in = sum(1 for _ in reader(None))
    return {"seconds": round(seconds, 2), "documents_in": n_in, "documents_removed": n_in - kept,
            "recipe": f"MinhashConfig() defaults: {cfg}; {tasks} tasks, {workers} workers"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2, help="datatrove worker processes")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raylm-latency-"))
    corpora = {"dedup_small_corpus_s": (spdx_files(a.shared, work / "spdx"), "txt",
                                        "728 SPDX licence texts, one .txt file each (2.4 MB)"),
               "dedup_10k_docs_s": (agnews_jsonl(a.shared, work / "agnews.jsonl", a.docs), "jsonl",
                                    f"{a.docs:,} AG News articles in one jsonl file")}
    records = []
    for metric, (paths, fmt, what) in corpora.items():
        ours = run_raylm(paths, fmt, work / f"raylm-{metric}")
        theirs = run_datatrove(paths, fmt, work / f"dt-{metric}", a.workers)
        print(f"{metric}: raylm {ours['seconds']} s (peak {ours['peak_ray_workers']} Ray workers), "
              f"datatrove {theirs['seconds']} s", flush=True)
        records.append({
            "metric": metric, "value": ours["seconds"], "unit": "seconds, whole command",
            "baseline": {"name": "datatrove 0.10.1 local MinHash pipeline (4 stages), same files, same machine",
                         "value": theirs["seconds"]},
            "ratio": round(ours["seconds"] / theirs["seconds"], 3),
            "target": "< 60 s" if metric == "dedup_small_corpus_s" else "reported",
            "corpus": what, "raylm": ours, "datatrove": theirs,
            "note": "raylm's figure is the whole job (Ray start, ingest, exact + MinHash dedup with exact "
                    "Jaccard verification, BPE training, shards); datatrove's is MinHash dedup only "
                    "(no exact dedup, no verification, no tokenizer)",
            "command": "python -m benchmarks.data_latency"})
    write_result("data_latency", records, extra_versions=("datatrove",))


if __name__ == "__main__":
    main()
