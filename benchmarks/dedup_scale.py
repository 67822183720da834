"""End-to-end dedup on synthetic corpora with planted near duplicates: time, memory, recall.

Documents are generated inside Ray Data (no driver copy): doc i has 80 words drawn
from a Zipf-like 20,000-word vocabulary with a per-doc seed; every 10th doc (i % 10 == 9)
is doc i-1 with one word replaced (shingle Jaccard ~0.88 >= 0.8). End to end = exact
dedup + signatures + LSH + verification + components + clusters + marking the
documents (counted). Baseline for "linear": docs/s at the smallest size, same run.

Peak memory: the largest VmHWM (peak RSS) over the driver, this Ray's raylet and its
worker processes, read from /proc after each size (workers that exited are missed).
Recall: planted pairs whose two docs end in one cluster (read back from the clusters
parquet on the driver: evaluation only).

    .venv/bin/python -m benchmarks.dedup_scale --sizes 100000 300000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks._common import write_result
from raylm.data import schema

VOCAB = 20_000
WORDS = 80


def gen_batch(batch: dict) -> pa.Table:
    """Rows {id: int} -> documents; deterministic in the id only."""
    ids = np.asarray(batch["id"], dtype=np.int64)
    rng_words = np.array([f"w{i}" for i in range(VOCAB)])
    texts = []
    for i in ids:
        src = i - 1 if i % 10 == 9 else i
        rng = np.random.default_rng(int(src) * 7919 + 1)
        # half Zipf-frequent words, half uniform: natural-looking repeats, rare chance overlaps
        idx = np.where(rng.random(WORDS) < 0.5, rng.zipf(1.3, WORDS) - 1, rng.integers(0, VOCAB, WORDS)) % VOCAB
        w = rng_words[idx]
        if src != i:
            r2 = np.random.default_rng(int(i))
            w = w.copy()
            w[r2.integers(0, WORDS)] = f"planted{i}"
        texts.append(" ".join(w.tolist()))
    return schema.make_docs([{"id": f"d{int(i):09d}", "text": t} for i, t in zip(ids, texts)])


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_gib(session_dir: str) -> float:
    """Largest peak RSS among the driver and the processes under this session's raylet."""
    children: dict[int, list[int]] = {}
    roots = [os.getpid()]
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(p.name))
            if session_dir in (p / "cmdline").read_bytes().decode(errors="replace"):
                roots.append(int(p.name))
        except OSError:
            continue
    seen, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, []))
    return max(_hwm_kib(p) for p in seen) / 2**20


def run_size(n: int, workdir: str, partitions: int) -> dict:
    import ray

    from raylm.data.dedup.stage import DedupConfig, run

    ds = ray.data.range(n, override_num_blocks=max(4, n // 20_000)).map_batches(
        gen_batch, batch_format="numpy", batch_size=5_000, num_cpus=0.5).materialize()  # not timed
    cfg = DedupConfig(num_partitions=partitions, workdir=workdir)
    t0 = time.perf_counter()
    marked = run(ds, cfg)
    counts = marked.map_batches(lambda t: pa.table({"n": [t.num_rows], "dropped": [t.num_rows - int(
        schema.kept_mask(t).to_numpy(zero_copy_only=False).sum())]}), batch_format="pyarrow").sum(["n", "dropped"])
    seconds = time.perf_counter() - t0
    clusters = pa.concat_tables(ray.get(ray.data.read_parquet(os.path.join(workdir, "clusters")).to_arrow_refs()))
    cl = dict(zip(clusters["id"].to_pylist(), clusters["cluster"].to_pylist()))
    planted = [(f"d{i - 1:09d}", f"d{i:09d}") for i in range(9, n, 10)]
    found = sum(1 for a, b in planted if a in cl and cl.get(a) == cl.get(b))
    summary = json.loads(Path(workdir, "summary.json").read_text())
    return {"docs": n, "seconds": round(seconds, 1), "docs_per_s": n / seconds,
            "rows": counts["sum(n)"], "dropped": counts["sum(dropped)"], "planted_pairs": len(planted),
            "planted_recall": found / len(planted), "steps": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--num-cpus", type=int, default=2)
    args = ap.parse_args()
    import ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    curve = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="raylm-dedup-scale-") as wd:
            r = run_size(n, wd, args.partitions)
        r["peak_rss_gib"] = round(peak_rss_gib(session_dir), 2)
        print(json.dumps({k: v for k, v in r.items() if k != "steps"}), flush=True)
        curve.append(r)
    ray.shutdown()
    first, last = curve[0], curve[-1]
    write_result("dedup_scale", {
        "metric": "dedup_scale", "value": last["docs_per_s"], "unit": f"docs/s end to end at {last['docs']} docs",
        "baseline": {"name": f"docs/s at {first['docs']} docs (same run; ratio 1 = linear)",
                     "value": first["docs_per_s"]},
        "curve": curve, "config": {"num_cpus": args.num_cpus, "partitions": args.partitions,
                                   "words_per_doc": WORDS, "vocab": VOCAB, "planted_every": 10},
    })


if __name__ == "__main__":
    main()
