"""PII redaction: span recall/precision on two labelled sets and speed, against the code it replaced.

Sets, scored at span level (character IoU >= 0.5 with a gold span of the same type; exact
boundaries in the extras):
  - presidio: ../shared/data/pii/presidio_synth_dataset_v2.json, 1,500 sentences, US-centred,
    one value per sentence (sparse);
  - dense: tests/data/pii_dense.jsonl, 600 short documents in 14 Faker locales, about four values
    per document beside ISBNs, dates, versions, prices, coordinates and population figures
    (written by benchmarks/tools/pii_dense.py, seed 24).
Speed: MB/s on one core (CPU time of this process, best of --reps) on documents of about 4 KB:
  - `pii_throughput_dense`: the dense set's documents joined;
  - `pii_speed`: AG News test + the presidio sentences (sparse, as in issue 4's figure).
Baselines, run in this process on the same documents: raylm/data/pii.py as of commit 0f3ef72 (the
code before issue 24, loaded with `git show`), and datatrove's PIIFormatter (e-mail and IPv4
only) when datatrove is installed. The 1-minute load average is read before each timing and
recorded; above 0.5 per core the record carries a caveat (CPU time is less sensitive to load than
wall time, not immune: caches and SMT siblings are shared).
Targets (issue 24): recall >= 0.97 micro and >= 0.95 per type, precision >= 0.98, on both sets;
`pii_throughput_dense` >= 5 MB/s per core. About 30 s.

Usage: .venv/bin/python -m benchmarks.pii [--shared ../shared/data] [--reps 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

from benchmarks._common import write_result
from raylm.data import pii

REPO = Path(__file__).resolve().parents[1]
DENSE = REPO / "tests" / "data" / "pii_dense.jsonl"
BASELINE_COMMIT = "0f3ef72"
MAP = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "IP_ADDRESS": "ip",
       "CREDIT_CARD": "credit_card", "US_SSN": "ssn", "IBAN_CODE": "iban"}
TARGETS = {"recall": 0.97, "type_recall": 0.95, "precision": 0.98, "throughput_dense": 5.0}


def load_gold(shared: Path):
    rows = json.loads((shared / "pii" / "presidio_synth_dataset_v2.json").read_text())
    texts = [r["full_text"] for r in rows]
    gold = [[(s["start_position"], s["end_position"], MAP[s["entity_type"]])
             for s in r["spans"] if s["entity_type"] in MAP] for r in rows]
    return texts, gold


def load_dense(path: Path = DENSE):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows], [[tuple(s) for s in r["spans"]] for r in rows]


def load_baseline(commit: str = BASELINE_COMMIT) -> types.ModuleType:
    """raylm/data/pii.py as it was at `commit`, as a module of its own."""
    src = subprocess.run(["git", "show", f"{commit}:raylm/data/pii.py"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    mod = types.ModuleType(f"pii_at_{commit}")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"raylm/data/pii.py@{commit}", "exec"), mod.__dict__)
    return mod


def micro(scores):
    tp = sum(c["tp"] for c in scores.values())
    fp = sum(c["fp"] for c in scores.values())
    fn = sum(c["fn"] for c in scores.values())
    per = {t: {"recall": c["tp"] / max(1, c["tp"] + c["fn"]), "precision": c["tp"] / max(1, c["tp"] + c["fp"]),
               "support": c["tp"] + c["fn"]} for t, c in scores.items()}
    return tp / (tp + fn), tp / max(1, tp + fp), per


def make_docs(shared: Path, texts: list[str], size: int = 4096) -> list[str]:
    lines = [ln.split("\t")[0] for ln in (shared / "agnews" / "test.tsv").read_text().splitlines()]
    lines += texts
    # Interleave so PII sentences are spread across documents (about 1 in 6 lines).
    step = max(1, len(lines) // len(texts))
    return join_docs([ln for i in range(step) for ln in lines[i::step]], size)


def join_docs(parts: list[str], size: int = 4096) -> list[str]:
    docs, cur, n = [], [], 0
    for p in parts:
        cur.append(p)
        n += len(p) + 1
        if n >= size:
            docs.append("\n".join(cur))
            cur, n = [], 0
    if cur:
        docs.append("\n".join(cur))
    return docs


def load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def mbps(fn, docs, reps):
    """Best-of-reps MB/s of fn over docs (CPU time), and the load per core before timing."""
    nbytes = sum(len(d.encode()) for d in docs)
    load = load_per_core()
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for d in docs:
            fn(d)
        best = min(best, time.process_time() - t0)
    return nbytes / 1e6 / best, load


def accuracy(mod, texts, gold):
    cfg = mod.PiiConfig()
    r, p, per = micro(mod.score_spans(texts, gold, cfg))
    r_exact, p_exact, _ = micro(mod.score_spans(texts, gold, cfg, min_iou=1.0))
    return {"recall": r, "precision": p, "per_type": per, "exact_boundary_recall": r_exact,
            "exact_boundary_precision": p_exact}


def caveat(loads: list[float]) -> dict:
    worst = max(loads)
    out = {"load_per_core_before": [round(x, 2) for x in loads]}
    if worst > 0.5:
        out["caveat"] = (f"timed while the machine was busy (1-min load {worst:.2f} per core); CPU time, best of "
                         "reps, but shared caches make it a lower bound")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    shared = Path(args.shared)
    base = load_baseline()
    base_name = f"raylm pii.py at {BASELINE_COMMIT} (before issue 24)"
    sets = {"presidio": load_gold(shared), "dense": load_dense()}
    acc = {name: (accuracy(pii, *s), accuracy(base, *s)) for name, s in sets.items()}

    sparse_docs = make_docs(shared, sets["presidio"][0])
    dense_docs = join_docs(sets["dense"][0])
    cfg, bcfg = pii.PiiConfig(), base.PiiConfig()
    speed = {}
    for name, docs in (("dense", dense_docs), ("sparse", sparse_docs), ("dense_short", sets["dense"][0])):
        ours, l1 = mbps(lambda d: pii.redact(d, cfg), docs, args.reps)
        theirs, l2 = mbps(lambda d: base.redact(d, bcfg), docs, args.reps)
        speed[name] = (ours, theirs, [l1, l2], sum(len(d.encode()) for d in docs), len(docs))

    records = []
    for name, (ours, theirs) in acc.items():
        suffix = "" if name == "presidio" else "_dense"
        dataset = ("presidio_synth_dataset_v2.json (1500 sentences)" if name == "presidio" else
                   f"tests/data/pii_dense.jsonl ({len(sets['dense'][0])} documents, 14 locales; "
                   "benchmarks/tools/pii_dense.py --seed 24, Faker 40.63.0)")
        extra = {"dataset": dataset, "iou_threshold": 0.5, "per_type": ours["per_type"],
                 "baseline_per_type": theirs["per_type"],
                 "min_type_recall": min(v["recall"] for v in ours["per_type"].values()),
                 "exact_boundary_recall": ours["exact_boundary_recall"],
                 "exact_boundary_precision": ours["exact_boundary_precision"],
                 "targets": {k: TARGETS[k] for k in ("recall", "type_recall", "precision")}}
        for metric in ("recall", "precision"):
            records.append({"metric": f"pii_{metric}{suffix}", "value": ours[metric],
                            "unit": f"micro span {metric}, six types",
                            "baseline": {"name": base_name, "value": theirs[metric]}, **extra})
    for name, metric, corpus in (
            ("dense", "pii_throughput_dense", "the dense set joined into ~4 KB documents"),
            ("sparse", "pii_speed", "AG News test + presidio sentences in ~4 KB documents")):
        ours, theirs, loads, nbytes, ndocs = speed[name]
        rec = {"metric": metric, "value": ours, "unit": "MB/s per core (CPU time, best of reps)",
               "baseline": {"name": base_name, "value": theirs},
               "corpus": f"{ndocs} docs, {nbytes / 1e6:.2f} MB ({corpus})", "reps": args.reps, **caveat(loads)}
        if name == "dense":
            short = speed["dense_short"]
            rec["target"] = TARGETS["throughput_dense"]
            rec["short_documents"] = {"docs": short[4], "mb_s": short[0], "baseline_mb_s": short[1],
                                      "note": "the set's own ~300-character documents: per-call costs weigh more"}
        records.append(rec)
    try:
        from datatrove.pipeline.formatters import PIIFormatter

        fmt = PIIFormatter()
        dt, load = mbps(fmt.format, sparse_docs, args.reps)
        records.append({"metric": "pii_speed_vs_datatrove", "value": speed["sparse"][0], "unit": "MB/s per core",
                        "baseline": {"name": "datatrove PIIFormatter (email+IPv4 only)", "value": dt},
                        "note": "ours redacts six types, the baseline two", **caveat([load])})
    except ImportError:
        print("datatrove not installed: skipping that baseline")
    for rec in records:
        b = rec["baseline"]
        print(f"{rec['metric']}: {rec['value']:.4g} (baseline {b['name']}: {b['value']:.4g})")
    for name, (ours, _) in acc.items():
        print(name, {t: (round(v["recall"], 3), round(v["precision"], 3), v["support"])
                     for t, v in ours["per_type"].items()})
    write_result("pii", records, extra_versions=("datatrove",))


if __name__ == "__main__":
    main()
