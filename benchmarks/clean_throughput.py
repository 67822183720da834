"""Cleaning throughput (extraction through PII) in docs/s on one core, against datatrove.

Input: the HTML responses of the shared WARC files (read once with raylm's WARC reader, not
timed), the same list of pages for both sides, one process, one thread.
  ours:      extract (resiliparse) -> normalise -> quality (Gopher quality + repetition, C4,
             FineWeb) -> content (domain + word lists) -> pii (six types)
  datatrove: Trafilatura extractor -> GopherRepetitionFilter -> GopherQualityFilter ->
             C4QualityFilter -> FineWebQualityFilter -> PIIFormatter (email + IP), datatrove's
             defaults, each filter skipped once a page is dropped (as in its pipeline).
Language ID is left out of both (datatrove's LanguageFilter needs a downloaded fastText model);
datatrove's bad-word and URL filters are left out (they download their lists).
Extra records isolate the extractor: ours with trafilatura, and each side's filters alone on
already-extracted text.

Timing is CPU time of this process (time.process_time), so per-core figures hold on a busy shared machine.

Usage: .venv/bin/python -m benchmarks.clean_throughput [--shared ../shared/data] [--reps 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks._common import write_result
from raylm.data import content, extract, normalise, pii, quality, schema
from raylm.data.ingest.warc import WarcConfig, read_warc

WARCS = ("IAH-20080430204825-00000-blackbook.warc.gz", "cc-main-2020-34-excerpt.warc.gz",
         "dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz")


def load_rows(shared: Path) -> list[dict]:
    cfg = WarcConfig(kinds=["response"], content_types=["text/html", "application/xhtml+xml"])
    rows = []
    for name in WARCS:
        rows += [r for r in read_warc(str(shared / "warc" / name), cfg) if r["drop"] is None and r["text"]]
    return rows


def ours(rows: list[dict], ext: extract.ExtractConfig, do_extract: bool = True) -> int:
    t = schema.make_docs(rows)
    if do_extract:
        t = extract.apply(t, ext)
    t = normalise.apply(t, normalise.NormaliseConfig())
    t = quality.apply(t, quality.QualityConfig())
    t = content.apply(t, content.ContentConfig())
    t = pii.apply(t, pii.PiiConfig())
    return sum(d is None for d in t["drop"].to_pylist())


def make_datatrove():
    from datatrove.data import Document
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter

    extractor = Trafilatura()
    filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]
    fmt = PIIFormatter()

    def run_dt(rows: list[dict], do_extract: bool = True) -> int:
        kept = 0
        for r in rows:
            text = extractor.extract(r["text"]) if do_extract else r["text"]
            if not text:
                continue
            doc = Document(text=text, id=r["id"])
            ok = True
            for f in filters:
                res = f.filter(doc)
                if res is not True and (res is False or res[0] is False):
                    ok = False
                    break
            if ok:
                doc.text = fmt.format(doc.text)
                kept += 1
        return kept

    return run_dt


def timed(fn, reps: int) -> tuple[float, int]:
    best, out = float("inf"), 0
    for _ in range(reps):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    rows = load_rows(Path(args.shared))
    n = len(rows)
    run_dt = make_datatrove()
    t_ours, k_ours = timed(lambda: ours(rows, extract.ExtractConfig()), args.reps)
    t_dt, k_dt = timed(lambda: run_dt(rows), 1)  # trafilatura: slow, one pass
    t_ours_tr, _ = timed(lambda: ours(rows, extract.ExtractConfig(extractor="trafilatura")), 1)
    # Filters only, on text both sides extracted the same way (resiliparse), to separate the costs.
    pre = [{**r, "text": extract.extract_html(r["text"], extract.ExtractConfig())} for r in rows]
    pre = [r for r in pre if r["text"]]
    t_of, _ = timed(lambda: ours(pre, extract.ExtractConfig(), do_extract=False), args.reps)
    t_df, _ = timed(lambda: run_dt(pre, do_extract=False), args.reps)
    rec = {"pages": n, "kept_ours": k_ours, "kept_datatrove": k_dt, "warcs": list(WARCS)}
    records = [
        {"metric": "clean_throughput", "value": n / t_ours, "unit": "docs/s per core (extract..pii)",
         "baseline": {"name": "datatrove 0.10 Trafilatura + Gopher/C4/FineWeb filters + PIIFormatter",
                      "value": n / t_dt}, **rec},
        {"metric": "clean_throughput_same_extractor", "value": n / t_ours_tr,
         "unit": "docs/s per core, ours with extractor=trafilatura",
         "baseline": {"name": "datatrove 0.10 (as above)", "value": n / t_dt}, **rec},
        {"metric": "filter_throughput", "value": len(pre) / t_of,
         "unit": "docs/s per core, normalise..pii on extracted text",
         "baseline": {"name": "datatrove 0.10 filters + PIIFormatter on the same text", "value": len(pre) / t_df},
         **rec},
    ]
    for r in records:
        print(f"{r['metric']}: {r['value']:.1f} vs {r['baseline']['value']:.1f} docs/s "
              f"(x{r['value'] / r['baseline']['value']:.2f})")
    write_result("clean_throughput", records,
                 extra_versions=("datatrove", "resiliparse", "trafilatura", "ftfy", "spacy"))


if __name__ == "__main__":
    main()
