"""The document table every data stage reads and writes (one row per document).

Provenance columns are filled at ingest and never dropped by a stage, so they reach the
shard manifest. A stage never deletes rows itself: it sets `drop` to "<stage>:<reason>"
on rows it rejects, and the pipeline filters them out once, after counting them
(raylm/data/stats.py). Rows whose `drop` is already set are passed through untouched.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

# Column -> Arrow type. Order is the canonical column order.
DOC_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.string(),            # stable: sha1(file name or URL + record key)[:20], see doc_id
    "text": pa.string(),          # UTF-8 document text
    "source": pa.string(),        # file | warc | crawl, or a name under data.ingest.sources
    "uri": pa.string(),           # file path / object-store URI / WARC file the record came from
    "url": pa.string(),           # web URL where known, else null
    "license": pa.string(),       # license where known (SPDX id or free text), else null
    "content_type": pa.string(),  # MIME type as served or inferred, e.g. text/plain
    "fetched_at": pa.string(),    # ISO-8601 UTC fetch / record / file-mtime time
    "drop": pa.string(),          # null = kept; else "<stage>:<reason>"
}
DOC_SCHEMA = pa.schema([pa.field(k, t) for k, t in DOC_COLUMNS.items()])


def doc_id(uri: str, key: str | int) -> str:
    """Stable id of record `key` (line number, record offset, ...) in `uri`.

    For input files `uri` is the file's location-free name (see `file_names`), not its path, so
    a corpus moved, copied or read from another checkout gets the same ids, hence the same
    split, shard assignment and shard bytes; crawled pages use their URL.
    """
    return hashlib.sha1(f"{uri}\x00{key}".encode()).hexdigest()[:20]


def file_names(found: list[tuple[str, str]]) -> dict[str, str]:
    """(base directory, file path) pairs -> {file path: location-free name}, each path once, in
    the order first given.

    A file's name is its path relative to the base of the `paths` entry that found it (a file
    entry's own directory, a directory entry, the fixed part of a glob): `train.tsv`,
    `2024/part-3.jsonl`. Where two files of one run would share a name, each of them takes
    parent directories until the names differ (`a/data.jsonl`, `b/data.jsonl`). A URI's scheme
    is not part of the name, so a local copy and an object-store copy get the same ids.
    The first base given for a path wins (a file matched by two entries is read once).
    """
    parts: dict[str, list[str]] = {}
    depth: dict[str, int] = {}
    for base, path in found:
        if path in parts:
            continue
        bare, root = path.split("://", 1)[-1], base.split("://", 1)[-1].rstrip("/") + "/"
        parts[path] = [s for s in bare.split("/") if s]
        depth[path] = max(1, len([s for s in bare[len(root):].split("/") if s]) if bare.startswith(root) else 1)
    while True:
        names: dict[str, list[str]] = {}
        for path, ps in parts.items():
            names.setdefault("/".join(ps[-depth[path]:]), []).append(path)
        clashes = [group for group in names.values() if len(group) > 1]
        grow = [p for group in clashes for p in group if depth[p] < len(parts[p])]
        if not grow:  # what still clashes (s3://b/x and /b/x in one run) keeps its full URI
            clashing = {p for group in clashes for p in group}
            return {p: p if p in clashing else "/".join(ps[-depth[p]:]) for p, ps in parts.items()}
        for p in grow:
            depth[p] += 1


def make_docs(rows: list[dict]) -> pa.Table:
    """Rows with any subset of DOC_COLUMNS -> a table with all of them, in order."""
    cols = {k: [r.get(k) for r in rows] for k in DOC_COLUMNS}
    return pa.table({k: pa.array(v, type=DOC_COLUMNS[k]) for k, v in cols.items()}, schema=DOC_SCHEMA)


def conform(table: pa.Table) -> pa.Table:
    """Add missing document columns as nulls and put the canonical ones first."""
    n = table.num_rows
    for k, t in DOC_COLUMNS.items():
        if k not in table.column_names:
            table = table.append_column(pa.field(k, t), pa.nulls(n, type=t))
    extra = [c for c in table.column_names if c not in DOC_COLUMNS]
    return table.select(list(DOC_COLUMNS) + extra)


def kept_mask(table: pa.Table) -> pa.ChunkedArray:
    """Boolean mask of rows no earlier stage has dropped."""
    import pyarrow.compute as pc

    return pc.is_null(table["drop"])


def set_drop(table: pa.Table, reasons: list[str | None]) -> pa.Table:
    """Set `drop` for rows that are still kept and have a reason; keep earlier reasons."""
    old = table["drop"].to_pylist()
    new = [o if o is not None else r for o, r in zip(old, reasons)]
    idx = table.column_names.index("drop")
    return table.set_column(idx, pa.field("drop", pa.string()), pa.array(new, type=pa.string()))
