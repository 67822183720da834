"""MinHash signature throughput (shingling included) vs datasketch, same ~3 KB documents.

Baseline: per document, `shingles()` (lowercased whitespace 5-grams) + one
`datasketch.MinHash(num_perm=128).update_batch(encoded shingles)`, the usual way to
use datasketch. Compared in the same run, on one core each:

- raylm fast   signatures(pa.array(docs), MinHashConfig())      (the default: numba kernels)
- raylm fast, numpy path: the same values without numba (the reference implementation)
- raylm sha1   the datasketch-compatible mode (equal hash values)
- rensa        RMinHash(128, seed).update(shingle list)          if installed
- datatrove    MinhashDedupSignature get_shingles + get_signature, sha1 64-bit,
               16 buckets x 8 = 128 hashes                        if installed

Documents: windows of ~3,000 characters (whitespace aligned) at seeded random offsets
of ../shared/data/tinyshakespeare/input.txt. Figure `minhash_signature_throughput`:
raylm fast docs/s, its ratio over datasketch.

    .venv/bin/python -m benchmarks.minhash_speed [--docs 4000] [--baseline-docs 400]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import time
from pathlib import Path

import pyarrow as pa

from benchmarks._common import write_result
from raylm.data.dedup import kernels
from raylm.data.dedup.minhash import MinHashConfig, shingles, signatures

SHARED = Path(os.environ.get("RAYLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def make_docs(n: int, size: int = 3000, seed: int = 0) -> list[str]:
    text = (SHARED / "tinyshakespeare" / "input.txt").read_text()
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        s = rng.randrange(len(text) - size - 100)
        s = text.index(" ", s) + 1
        e = text.rfind(" ", s, s + size)
        docs.append(text[s:e])
    return docs


@contextlib.contextmanager
def numpy_path():
    """Run signatures() on the numpy reference path instead of the numba kernels."""
    saved = kernels.available
    kernels.available = lambda: False
    try:
        yield
    finally:
        kernels.available = saved


def rate(fn, n_docs: int, repeat: int = 3) -> float:
    """Best-of-`repeat` documents per second of fn() over n_docs documents."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_docs / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--baseline-docs", type=int, default=400)
    ap.add_argument("--batch", type=int, default=1000, help="docs per signatures() call (an Arrow batch)")
    args = ap.parse_args()
    docs = make_docs(args.docs)
    sub = docs[:args.baseline_docs]
    mean_bytes = sum(len(d.encode()) for d in docs) / len(docs)
    num_perm, seed = 128, 1

    from datasketch import MinHash

    def ds_baseline():
        for d in sub:
            m = MinHash(num_perm=num_perm, seed=seed)
            m.update_batch([s.encode("utf-8") for s in shingles(d, 5)])

    base = rate(ds_baseline, len(sub))
    results = {}
    batches = [pa.array(docs[i:i + args.batch]) for i in range(0, len(docs), args.batch)]

    fast = MinHashConfig(num_perm=num_perm, seed=seed)
    signatures(batches[0], fast)  # numba compiles (or loads its cache) once per process
    results["raylm_fast"] = rate(lambda: [signatures(b, fast) for b in batches], len(docs))
    # The same values through the pure-numpy reference path (used when numba is absent).
    with numpy_path():
        results["raylm_fast_numpy_path"] = rate(lambda: [signatures(b, fast) for b in batches], len(docs))
    compat = MinHashConfig(num_perm=num_perm, seed=seed, hash="sha1")
    sub_batches = [pa.array(sub)]
    results["raylm_sha1_datasketch_compatible"] = rate(lambda: [signatures(b, compat) for b in sub_batches], len(sub))

    try:
        from rensa import RMinHash

        def rensa_run():
            for d in docs:
                m = RMinHash(num_perm=num_perm, seed=seed)
                m.update(shingles(d, 5))
                m.digest()

        results["rensa_RMinHash"] = rate(rensa_run, len(docs))
    except ImportError:
        results["rensa_RMinHash"] = None
    try:
        from datatrove.pipeline.dedup.minhash import MinhashConfig as DTConfig
        from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
        from datatrove.utils.hashing import HashConfig

        # datatrove's default xxhash path fails with xxhash 4.x (str not encoded); sha1 works.
        dt = MinhashDedupSignature("/tmp/raylm-bench-datatrove", config=DTConfig(
            num_buckets=16, hashes_per_bucket=8, hash_config=HashConfig(hash_fc="sha1", precision=64)))

        def datatrove_run():
            for d in sub:
                dt.get_signature(dt.get_shingles(d))

        results["datatrove_sha1"] = rate(datatrove_run, len(sub))
    except Exception as e:  # noqa: BLE001  (optional comparison: report why it is missing)
        results["datatrove_sha1"] = None
        print(f"datatrove skipped: {e!r}")

    for k, v in results.items():
        print(f"{k:36s} {v if v is None else round(v, 1)} docs/s  ({'' if v is None else round(v / base, 2)}x)")
    print(f"{'datasketch update_batch (baseline)':36s} {base:.1f} docs/s")
    write_result("minhash_speed", {
        "metric": "minhash_signature_throughput",
        "value": results["raylm_fast"],
        "unit": "docs/s (one core, shingling included)",
        "baseline": {"name": "datasketch.MinHash.update_batch + python shingles", "value": base},
        "ratio": results["raylm_fast"] / base,
        "config": {"num_perm": num_perm, "seed": seed, "ngram": 5, "docs": len(docs), "baseline_docs": len(sub),
                   "mean_doc_bytes": round(mean_bytes), "batch": args.batch,
                   "source": "tinyshakespeare 3 KB windows"},
        "others_docs_per_s": results,
        "others_ratio": {k: (None if v is None else v / base) for k, v in results.items()},
    }, extra_versions=("numba", "rensa", "datatrove", "xxhash", "scipy"))


if __name__ == "__main__":
    main()
