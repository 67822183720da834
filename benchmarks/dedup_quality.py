"""Near-dup quality on the SPDX license set: pair-level precision / recall at J >= 0.8.

Ground truth: ../shared/data/neardup/spdx_pairs_jaccard_ge_0.5.tsv (exact Jaccard of
lowercased whitespace 5-word shingles). Decisions = the pairs the stage declares near
duplicates (the `edges` step: LSH candidates kept by exact verification). Baseline in
the same run: plain LSH tuned for 0.8 without verification (candidates = decisions), as
datasketch's MinHashLSH(threshold=0.8, num_perm=128) would decide. Extra fields give
the cluster-level figures (every pair inside one connected component), which are lower
in precision because components are transitive (A~B, B~C, A !~ C).

Runs the single-process reference `dedup_local` (the Ray stage gives identical output,
see tests/integration/test_dedup_ray.py and tests/cluster/test_dedup_cluster.py).

    .venv/bin/python -m benchmarks.dedup_quality
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks._common import write_result
from raylm.data import schema
from raylm.data.dedup.evaluate import cluster_pairs, load_pairs, load_spdx, scores
from raylm.data.dedup.lsh import LSHConfig
from raylm.data.dedup.stage import DedupConfig, dedup_local

SHARED = Path(os.environ.get("RAYLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def evaluate(docs, truth, cfg: DedupConfig) -> dict:
    t0 = time.perf_counter()
    _, clusters, pairs = dedup_local(docs, cfg)
    seconds = time.perf_counter() - t0
    pair = scores(set(zip(pairs["src"].to_pylist(), pairs["dst"].to_pylist())), truth)
    clus = scores(cluster_pairs(clusters), truth)
    return {"pair": pair, "cluster": clus, "seconds": round(seconds, 2),
            "bands_rows": list(cfg.lsh.params(cfg.minhash.num_perm))}


def main() -> None:
    nd = SHARED / "neardup"
    docs = schema.conform(load_spdx(nd / "spdx-license-list-6.12.0.tgz"))
    truth = {p for p, j in load_pairs(nd / "spdx_pairs_jaccard_ge_0.5.tsv").items() if j >= 0.8}
    ours_cfg = DedupConfig(exact=False)                      # defaults: lsh.threshold 0.7 + verify at 0.8
    base_cfg = DedupConfig(exact=False, verify=False, lsh=LSHConfig(threshold=0.8))
    ours, base = evaluate(docs, truth, ours_cfg), evaluate(docs, truth, base_cfg)
    print("raylm (lsh 0.7 + verify 0.8):", ours)
    print("plain LSH at 0.8:            ", base)
    common = {"dataset": "spdx-license-list 6.12.0 (728 texts), pairs with J >= 0.8",
              "config": {"num_perm": 128, "ngram": 5, "hash": "fast", "lsh_threshold": 0.7, "verify": True,
                         "threshold": 0.8, "bands_rows": ours["bands_rows"]},
              "true_pairs": len(truth)}
    write_result("dedup_quality", [
        {"metric": "dedup_precision", "value": ours["pair"]["precision"],
         "baseline": {"name": "plain LSH at 0.8, no verification", "value": base["pair"]["precision"]},
         "cluster_level": ours["cluster"]["precision"], "detail": ours, "baseline_detail": base, **common},
        {"metric": "dedup_recall", "value": ours["pair"]["recall"],
         "baseline": {"name": "plain LSH at 0.8, no verification", "value": base["pair"]["recall"]},
         "cluster_level": ours["cluster"]["recall"], "detail": ours, "baseline_detail": base, **common},
    ])


if __name__ == "__main__":
    main()
