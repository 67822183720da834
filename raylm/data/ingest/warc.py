"""WARC / WET ingest: response (and WET conversion) records -> document rows.

Reader: FastWARC (C++; about 3.4x warcio's record iteration on the IAH test file, see
benchmarks/warc_ingest.py). Each record block is read whole and its length checked
against Content-Length, because FastWARC (like warcio) ends silently at a truncated
gzip member; then its HTTP headers are parsed by FastWARC with transfer- and
content-encoding undone. A file is read by one task; files are spread over the cluster.

Every record of a selected type becomes one row, so counts add up (the IAH file gives
its 299 responses). Rows that later stages should not see carry `drop` instead of being
left out: "warc:content_type" (MIME not in the allow-list; body not decoded),
"warc:too_large", "warc:http_<status>" (non-2xx responses), "warc:truncated",
"warc:bad_http", "warc:binary". A corrupt stretch of a file (bad gzip member, broken WARC
header) becomes one row with drop "warc:corrupt" and text "", then reading resumes at the
next gzip member (or the next "WARC/1." line in an uncompressed file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from raylm import storage
from raylm.data import schema
from raylm.data.ingest import objstore
from raylm.data.ingest.charset import decode, looks_binary, parse_content_type

_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"WARC/1."
_WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz")  # .warc.wet.gz ends in .wet.gz; ARC is not read


@dataclass
class WarcConfig:
    paths: list[str] = field(default_factory=list)  # files, dirs, globs or URIs (s3://, gs://, file://)
    kinds: list[Literal["response", "conversion", "resource"]] = field(
        default_factory=lambda: ["response", "conversion"])  # WARC-Type read; conversion = WET text
    content_types: list[str] = field(default_factory=lambda: [
        "text/html", "application/xhtml+xml", "text/plain"])  # MIME allow-list; [] = all
    max_record_bytes: int = 20_000_000  # record blocks larger than this are not read (bytes)
    keep_http_errors: bool = False  # False: non-2xx responses get drop "warc:http_<status>"
    rows_per_block: int = 1000  # rows per output Arrow table (memory per block)
    num_cpus: float = 1.0  # CPUs per file-reading task

    def __post_init__(self):
        if not self.kinds:
            raise ValueError("warc.kinds must name at least one record type (response, conversion)")
        if self.max_record_bytes <= 0 or self.rows_per_block <= 0:
            raise ValueError("warc.max_record_bytes and warc.rows_per_block must be > 0")
        if self.num_cpus <= 0:
            raise ValueError("warc.num_cpus must be > 0")
        self.content_types = [c.strip().lower() for c in self.content_types]


# --- paths -------------------------------------------------------------------------------

def expand(paths: list[str]) -> list[tuple[str, str]]:
    """Files, directories (recursive, WARC suffixes only) and globs -> sorted (file URI,
    location-free name) pairs; the name keys the records' ids (objstore.expand)."""
    return objstore.expand(paths, lambda f: f.endswith(_WARC_SUFFIXES), "data.ingest.warc.paths")


def expand_paths(paths: list[str]) -> list[str]:
    """The file URIs of `expand`, without their names."""
    return [u for u, _ in expand(paths)]


# --- one file ----------------------------------------------------------------------------

def _record_types(kinds: list[str]):
    from fastwarc.warc import WarcRecordType

    mask = getattr(WarcRecordType, kinds[0])
    for k in kinds[1:]:
        mask = mask | getattr(WarcRecordType, k)
    return mask


def _next_sync(f, start: int, gz: bool) -> int | None:
    """Offset of the next gzip member (or WARC header) at or after `start`, None at EOF."""
    magic = _GZIP_MAGIC if gz else b"\n" + _WARC_MAGIC
    f.seek(start)
    pos, tail = start, b""
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return None
        buf = tail + chunk
        i = buf.find(magic)
        if i >= 0:
            return pos - len(tail) + i + (0 if gz else 1)
        tail = buf[-(len(magic) - 1):]
        pos += len(chunk)


def read_warc(uri: str, cfg: WarcConfig, stats: Counter | None = None, name: str | None = None) -> Iterator[dict]:
    """Yield one document row (a dict of schema columns) per selected record of `uri`.

    Ids hash the file's location-free `name` (from `expand`; default: `uri`) with the record's
    WARC-Record-ID (or offset); `uri` is kept as provenance, without query options or
    credentials (storage.public_uri).

    `stats` (optional) counts outcomes: ok, content_type, too_large, http_error, truncated,
    bad_http, binary, corrupt, decode_replaced. Opening errors (missing file) raise.
    """
    from fastwarc.warc import ArchiveIterator

    stats = stats if stats is not None else Counter()
    fs, path = storage.resolve(uri)
    uri = storage.public_uri(uri)  # opened above; from here on it is provenance
    name = name or uri
    types = _record_types(cfg.kinds)
    with fs.open_input_file(path) as f:
        gz = f.read(3) == _GZIP_MAGIC
        start: int | None = 0
        failing = False  # True while resyncs find nothing readable: one corrupt stretch, one row
        while start is not None:
            f.seek(start)
            last = None
            try:
                it = ArchiveIterator(f, record_types=types, parse_http=False, fsspec_args=False)
                for rec in it:
                    last = rec.stream_pos
                    row = _row(rec, uri, name, cfg, stats)
                    failing = False
                    yield row
                return
            except (OSError, ValueError):
                # A broken gzip member or WARC header: one counted row, then resync past it.
                at = last if last is not None else start
                if not failing:
                    stats["corrupt"] += 1
                    yield {"id": schema.doc_id(name, f"corrupt@{at}"), "text": "", "source": "warc", "uri": uri,
                           "url": None, "content_type": None, "fetched_at": None, "drop": "warc:corrupt"}
                failing = True
                start = _next_sync(f, at + 1, gz)


def _row(rec, uri: str, name: str, cfg: WarcConfig, stats: Counter) -> dict:
    h = rec.headers
    key = h.get("WARC-Record-ID") or rec.stream_pos
    row = {"id": schema.doc_id(name, key), "text": "", "source": "warc", "uri": uri,
           "url": h.get("WARC-Target-URI"), "fetched_at": h.get("WARC-Date"), "drop": None}
    warc_mime, warc_charset = parse_content_type(h.get("Content-Type"))
    row["content_type"] = warc_mime
    if rec.content_length > cfg.max_record_bytes:
        return _drop(row, stats, "too_large")
    block = rec.reader.read()
    if len(block) != rec.content_length:
        return _drop(row, stats, "truncated")  # file ends inside this record
    mime, charset = warc_mime, warc_charset
    if rec.is_http:  # response records with an HTTP message (not dns:, not WET conversion)
        try:
            rec.set_bytes_content(block)
            rec.parse_http(auto_decode="all", quirks_mode=True)
            body = rec.reader.read()
        except (OSError, ValueError):
            return _drop(row, stats, "bad_http")
        mime, charset = parse_content_type(rec.http_headers.get("Content-Type"))
        row["content_type"] = mime
        status = rec.http_headers.status_code
        if not cfg.keep_http_errors and not 200 <= (status or 0) < 300:
            return _drop(row, stats, "http_error", f"http_{status}")
    else:
        body = block
    if cfg.content_types and mime not in cfg.content_types:
        return _drop(row, stats, "content_type")
    if looks_binary(body):
        return _drop(row, stats, "binary")
    dec = decode(body, charset, html=mime in ("text/html", "application/xhtml+xml"))
    if dec.replaced:
        stats["decode_replaced"] += 1
    row["text"] = dec.text
    stats["ok"] += 1
    return row


def _drop(row: dict, stats: Counter, kind: str, reason: str | None = None) -> dict:
    stats[kind] += 1
    row["drop"] = f"warc:{reason or kind}"
    return row


def read_table(uris: list[str], cfg: WarcConfig, names: list[str] | None = None) -> Iterator[pa.Table]:
    """Rows of several files (named as `expand` names them) as document tables of at most
    cfg.rows_per_block rows."""
    rows: list[dict] = []
    for uri, name in zip(uris, names or uris):
        for row in read_warc(uri, cfg, name=name):
            rows.append(row)
            if len(rows) >= cfg.rows_per_block:
                yield schema.make_docs(rows)
                rows = []
    if rows:
        yield schema.make_docs(rows)


def _read_batch(batch: pa.Table, cfg: WarcConfig) -> Iterator[pa.Table]:
    yield from read_table(batch.column("path").to_pylist(), cfg, batch.column("name").to_pylist())


def run(cfg: WarcConfig):
    """All records of cfg.paths as a ray.data.Dataset in the document schema; one file at a time,
    files grouped into read tasks by `blocks.read_tasks`."""
    import ray

    from raylm.data import blocks

    files = expand(cfg.paths)
    ds = ray.data.from_items([{"path": p, "name": n} for p, n in files],
                             override_num_blocks=blocks.read_tasks(len(files), blocks.cluster_cpus()))
    return ds.map_batches(_read_batch, fn_kwargs={"cfg": cfg}, batch_size=1, batch_format="pyarrow",
                          num_cpus=cfg.num_cpus)
