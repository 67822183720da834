"""PII redaction: span recall/precision on presidio's synthetic set, and speed vs baselines.

Accuracy: raylm.data.pii on ../shared/data/pii/presidio_synth_dataset_v2.json, span level
(character IoU >= 0.5 with a gold span of the same type; exact-boundary figures in extras).
Speed: MB/s on one core (one process, one thread) over documents built from real text
(AG News test + the presidio sentences, ~4 KB each), against two baselines run in the same
process on the same documents:
  - "naive per-pattern re.sub": the presidio-recognizer style, one re.sub per entity type over
    every document with the same validators but no cheap pre-checks;
  - "datatrove PIIFormatter": email + IPv4 only (fewer types than ours).

Timing is CPU time of this process (time.process_time), so per-core figures hold on a busy shared machine.

Usage: .venv/bin/python -m benchmarks.pii [--shared ../shared/data] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from benchmarks._common import write_result
from raylm.data import pii

MAP = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "IP_ADDRESS": "ip",
       "CREDIT_CARD": "credit_card", "US_SSN": "ssn", "IBAN_CODE": "iban"}


def load_gold(shared: Path):
    rows = json.loads((shared / "pii" / "presidio_synth_dataset_v2.json").read_text())
    texts = [r["full_text"] for r in rows]
    gold = [[(s["start_position"], s["end_position"], MAP[s["entity_type"]])
             for s in r["spans"] if s["entity_type"] in MAP] for r in rows]
    return texts, gold


def micro(scores):
    tp = sum(c["tp"] for c in scores.values())
    fp = sum(c["fp"] for c in scores.values())
    fn = sum(c["fn"] for c in scores.values())
    per = {t: {"recall": c["tp"] / max(1, c["tp"] + c["fn"]), "precision": c["tp"] / max(1, c["tp"] + c["fp"]),
               "support": c["tp"] + c["fn"]} for t, c in scores.items()}
    return tp / (tp + fn), tp / (tp + fp), per


def make_docs(shared: Path, texts: list[str], size: int = 4096) -> list[str]:
    lines = [ln.split("\t")[0] for ln in (shared / "agnews" / "test.tsv").read_text().splitlines()]
    lines += texts
    # Interleave so PII sentences are spread across documents (about 1 in 6 lines).
    step = max(1, len(lines) // len(texts))
    mixed = [ln for i in range(step) for ln in lines[i::step]]
    docs, cur, n = [], [], 0
    for ln in mixed:
        cur.append(ln)
        n += len(ln) + 1
        if n >= size:
            docs.append("\n".join(cur))
            cur, n = [], 0
    if cur:
        docs.append("\n".join(cur))
    return docs


def naive_redact(text: str, cfg: pii.PiiConfig) -> str:
    """Baseline: one full re.sub pass per type with validation in the callback, no pre-checks."""
    def sub(rx, ph, ok=lambda s: True):
        return lambda t: rx.sub(lambda m: ph if ok(m.group()) else m.group(), t)

    steps = [sub(pii._EMAIL, "<EMAIL>"),
             sub(pii._IBAN, "<IBAN>", pii.iban_ok),
             sub(pii._IPV4, "<IP>"),
             sub(pii._CARD, "<CREDIT_CARD>", lambda s: pii.luhn_ok(re.sub(r"\D", "", s))),
             sub(pii._SSN, "<SSN>"),
             sub(pii._PHONE, "<PHONE>", lambda s: 7 <= sum(c.isdigit() for c in s) <= 15)]
    for f in steps:
        text = f(text)
    return text


def mbps(fn, docs, reps):
    nbytes = sum(len(d.encode()) for d in docs)
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for d in docs:
            fn(d)
        best = min(best, time.process_time() - t0)
    return nbytes / 1e6 / best, nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    shared = Path(args.shared)
    cfg = pii.PiiConfig()
    texts, gold = load_gold(shared)
    r, p, per = micro(pii.score_spans(texts, gold, cfg))
    r_exact, p_exact, _ = micro(pii.score_spans(texts, gold, cfg, min_iou=1.0))

    docs = make_docs(shared, texts)
    ours, nbytes = mbps(lambda d: pii.redact(d, cfg), docs, args.reps)
    naive, _ = mbps(lambda d: naive_redact(d, cfg), docs, args.reps)
    records = []
    try:
        from datatrove.pipeline.formatters import PIIFormatter

        fmt = PIIFormatter()
        dt, _ = mbps(fmt.format, docs, args.reps)
        records.append({"metric": "pii_speed_vs_datatrove", "value": ours, "unit": "MB/s per core",
                        "baseline": {"name": "datatrove PIIFormatter (email+IPv4 only)", "value": dt},
                        "note": "ours redacts six types, the baseline two"})
    except ImportError:
        print("datatrove not installed: skipping that baseline")
    extra = {"per_type": per, "iou_threshold": 0.5, "exact_boundary_recall": r_exact,
             "exact_boundary_precision": p_exact, "dataset": "presidio_synth_dataset_v2.json (1500 sentences)"}
    records = [
        {"metric": "pii_recall", "value": r, "unit": "micro span recall, six types",
         "baseline": {"name": "issue 4 target", "value": 0.97}, **extra},
        {"metric": "pii_precision", "value": p, "unit": "micro span precision, six types",
         "baseline": {"name": "issue 4 target", "value": 0.95}, **extra},
        {"metric": "pii_speed", "value": ours, "unit": "MB/s per core",
         "baseline": {"name": "naive per-pattern re.sub, same regexes, no pre-checks", "value": naive},
         "corpus": f"{len(docs)} docs, {nbytes / 1e6:.2f} MB (AG News test + presidio sentences)"},
        *records,
    ]
    for rec in records:
        b = rec["baseline"]
        print(f"{rec['metric']}: {rec['value']:.4g} (baseline {b['name']}: {b['value']:.4g})")
    write_result("pii", records, extra_versions=("datatrove",))


if __name__ == "__main__":
    main()
