"""Per-stage document and byte counts, and drop reasons, computed without collecting documents.

The pipeline adds a `_bytes_<stage>` column after each stage (UTF-8 bytes of the text of rows
still kept, 0 otherwise). `partial` folds one batch into a small dict; the driver merges one
dict per block. A document dropped at stage S carries `drop = "S:<reason>"`. Only counts and
reason names leave the workers: never text, so PII cannot reach the stats.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.schema import kept_mask


# Drop reasons that stand for a whole input file (one row per file): stats.json lists the files.
FILE_REASONS = ("ingest:unknown_format", "ingest:bad_file", "ingest:truncated", "ingest:corrupt",
                "ingest:gutenberg_unmarked")  # files listed by name; the last three keep their documents
# Columns marking a row as a copy another stage added (the original's id), and that stage.
COPY_COLUMNS = {"augmented_from": "augment", "repeat_of": "mix"}


def add_stage_bytes(table: pa.Table, stage: str) -> pa.Table:
    """Append `_bytes_<stage>`: UTF-8 length of kept rows' text, 0 for dropped rows."""
    lengths = pc.binary_length(pc.cast(pc.fill_null(table["text"], ""), pa.binary()))
    vals = pc.if_else(kept_mask(table), lengths, 0)
    return table.append_column(f"_bytes_{stage}", pc.cast(vals, pa.int64()))


def partial(batch: pa.Table) -> pa.Table:
    """One batch -> one row holding its counts as JSON (merged by `merge`)."""
    out = {"rows": batch.num_rows,
           "drops": Counter(r for r in batch["drop"].to_pylist() if r is not None),
           "bytes": {c[len("_bytes_"):]: int(pc.sum(batch[c]).as_py() or 0)
                     for c in batch.column_names if c.startswith("_bytes_")},
           "counts": {c: int(pc.sum(batch[c]).as_py() or 0) for c in batch.column_names
                      if c.startswith("pii_") and pa.types.is_integer(batch.schema.field(c).type)}}
    originals = pa.array([True] * batch.num_rows)
    for col in COPY_COLUMNS:  # augmented copies and mix repeats are not documents read
        if col in batch.column_names:
            originals = pc.and_(originals, pc.is_null(batch[col]))
    if "decode_errors" in batch.column_names:  # per file, on its first document (files ingest)
        errs = batch.filter(pc.and_(originals, pc.greater(pc.fill_null(batch["decode_errors"], 0), 0)))
        out["decode_errors"] = dict(Counter(dict(zip(errs["uri"].to_pylist(), errs["decode_errors"].to_pylist()))))
    skipped = batch.filter(pc.is_in(pc.fill_null(batch["drop"], ""), pa.array(FILE_REASONS)))
    if skipped.num_rows:  # whole files skipped: listed by name
        out["skipped_files"] = [[r, u] for r, u in zip(skipped["drop"].to_pylist(), skipped["uri"].to_pylist())]
    for col, stage in COPY_COLUMNS.items():
        if col in batch.column_names:
            out.setdefault("added", {})[stage] = int(pc.sum(pc.and_(pc.is_valid(batch[col]), kept_mask(batch)))
                                                     .as_py() or 0)
    if "split" in batch.column_names:
        out["split"] = Counter(s for s, d in zip(batch["split"].to_pylist(), batch["drop"].to_pylist()) if d is None)
    return pa.table({"stats": [json.dumps(out)]})


def merge(rows: list[str], stages: list[str]) -> dict:
    """Merge partial rows into the report: per stage docs/bytes in and out, drop reasons."""
    total = {"rows": 0, "added": Counter(), "drops": Counter(), "bytes": Counter(), "counts": Counter(),
             "split": Counter()}
    decode_errors: Counter = Counter()
    skipped: dict[str, list[str]] = {}
    for r in rows:
        d = json.loads(r)
        decode_errors.update(d.get("decode_errors", {}))
        for reason, uri in d.get("skipped_files", []):
            skipped.setdefault(reason, []).append(uri)
        total["rows"] += d["rows"]
        for k in ("added", "drops", "bytes", "counts", "split"):
            total[k].update(d.get(k, {}))
    report = {"documents_read": total["rows"] - sum(total["added"].values()), "stages": [],
              "drop_reasons": dict(sorted(total["drops"].items())),
              "counts": dict(sorted(total["counts"].items())), "split_documents": dict(total["split"])}
    # Reasons from a source (ingest:, warc:, crawl:) were dropped before the first stage.
    docs = report["documents_read"] - sum(n for r, n in total["drops"].items() if r.split(":", 1)[0] not in stages)
    prev_bytes = total["bytes"].get("ingest", 0)
    for stage in stages:
        dropped = sum(n for r, n in total["drops"].items() if r.split(":", 1)[0] == stage)
        added = total["added"].get(stage, 0)
        out_bytes = total["bytes"].get(stage, prev_bytes)
        report["stages"].append({"stage": stage, "docs_in": docs, "docs_out": docs - dropped + added,
                                 "bytes_in": prev_bytes, "bytes_out": out_bytes, "dropped": dropped,
                                 **({"added": added} if stage in COPY_COLUMNS.values() else {})})
        docs, prev_bytes = docs - dropped + added, out_bytes
    report["documents_kept"] = docs
    report["decode_errors"] = {"bytes": sum(decode_errors.values()), "files": dict(sorted(decode_errors.items()))}
    report["skipped_files"] = {k: sorted(v) for k, v in sorted(skipped.items())}
    return report


def table(report: dict) -> str:
    """The report as a fixed-width text table for the terminal."""
    if not report["stages"]:  # no stage ran: a header alone says nothing
        lines = [f"{report['documents_read']:,} documents read, {report['documents_kept']:,} kept"]
    else:
        lines = [f"{'stage':<12}{'docs in':>11}{'docs out':>11}{'dropped':>10}{'MB in':>10}{'MB out':>10}"]
    for s in report["stages"]:
        lines.append(f"{s['stage']:<12}{s['docs_in']:>11,}{s['docs_out']:>11,}{s['dropped']:>10,}"
                     f"{s['bytes_in'] / 1e6:>10.2f}{s['bytes_out'] / 1e6:>10.2f}")
    for reason, n in report["drop_reasons"].items():
        lines.append(f"  dropped {reason}: {n:,}")
    for k, n in report["counts"].items():
        lines.append(f"  {k}: {n:,}")
    dec = report.get("decode_errors") or {}
    if dec.get("bytes"):
        lines.append(f"  undecodable bytes replaced by U+FFFD: {dec['bytes']:,} in {len(dec['files']):,} file(s) "
                     "(stats.json lists them)")
    for reason, uris in (report.get("skipped_files") or {}).items():
        lines.append(f"  files skipped as {reason}: {', '.join(uris[:3])}"
                     + (f" and {len(uris) - 3:,} more (stats.json lists them)" if len(uris) > 3 else ""))
    return "\n".join(lines)
