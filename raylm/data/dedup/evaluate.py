"""Pair-level quality of dedup decisions against a ground-truth pair list.

Used by tests and benchmarks/dedup_quality.py on the SPDX license set in
../shared/data/neardup (728 texts in an npm tgz + every pair with Jaccard >= 0.5).
"""

from __future__ import annotations

import itertools
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import pyarrow as pa


def load_spdx(tgz: str | Path) -> pa.Table:
    """(id, text) of package/licenses/<ID>.json (field licenseText), sorted by id."""
    rows = []
    with tarfile.open(tgz, "r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("package/licenses/") and m.name.endswith(".json"):
                rec = json.load(tar.extractfile(m))
                rows.append((m.name.rsplit("/", 1)[1][:-5], rec["licenseText"]))
    rows.sort()
    return pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows]})


def load_pairs(tsv: str | Path) -> dict[tuple[str, str], float]:
    """{(a, b) with a < b: jaccard} from a `license_a  license_b  jaccard` TSV (# comments)."""
    out = {}
    for line in Path(tsv).read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("license_a"):
            continue
        a, b, j = line.split("\t")
        out[(min(a, b), max(a, b))] = float(j)
    return out


def scores(pred: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict:
    """Precision, recall and counts of predicted vs true unordered pairs (normalised a < b)."""
    pred = {(min(a, b), max(a, b)) for a, b in pred}
    truth = {(min(a, b), max(a, b)) for a, b in truth}
    tp = len(pred & truth)
    return {"precision": tp / len(pred) if pred else 1.0, "recall": tp / len(truth) if truth else 1.0,
            "predicted": len(pred), "true": len(truth), "true_positive": tp}


def cluster_pairs(clusters: pa.Table) -> set[tuple[str, str]]:
    """Every pair of ids that share a cluster in an (id, cluster) table (transitive closure)."""
    groups = defaultdict(list)
    for i, c in zip(clusters["id"].to_pylist(), clusters["cluster"].to_pylist()):
        groups[c].append(i)
    return {(min(a, b), max(a, b)) for g in groups.values() for a, b in itertools.combinations(g, 2)}
