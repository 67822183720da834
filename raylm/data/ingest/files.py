"""Ingest local or object-store files: txt, jsonl, parquet, and globs of them.

Paths are expanded on the driver (a list of names, not data); each file is read and parsed
by one Ray task, so reading scales with the cluster. A file is parsed whole in its task:
keep single files below a few GB (split bigger ones; Ray Data's own readers are the way for
huge parquet datasets).

Text is read as UTF-8 (UTF-16/32 when the file starts with their byte-order mark). Binary or
mostly non-text input is dropped as `ingest:binary`, never tokenised (a binary file read as txt
once grew a character vocabulary from 65 to 474 symbols):

- a txt or jsonl file whose first BINARY_HEAD characters hold a NUL, or more than BINARY_SHARE
  of whose characters are non-text (`non_text_share`), is one dropped row;
- any document (txt unit, jsonl or parquet text) of at least BINARY_MIN_DOC characters more
  than BINARY_SHARE non-text is dropped; shorter ones are too short to tell.

Measured: every text file in ../shared/data, the SPDX license texts and raylm/assets has 0
non-text characters and no NUL (tests/unit/test_files_binary.py keeps checking it); gzip, PNG,
JPEG, PDF, ELF, sqlite, .npy, .pyc, parquet and token shards have a NUL in their first 8 KiB and
a non-text share of 0.35 to 0.92. Latin-1 text read as UTF-8 is ~2-5% U+FFFD and passes; Cyrillic or
Greek text in an 8-bit code page (KOI8-R, cp1251) is largely U+FFFD as UTF-8 and is dropped:
convert it to UTF-8.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raylm import storage
from raylm.data.ingest import objstore
from raylm.data.schema import conform, doc_id, make_docs

log = logging.getLogger(__name__)

DECODE_ERRORS = "decode_errors"  # column: undecodable bytes of the document's file (on its first row)

BINARY_HEAD = 8192      # characters of a txt/jsonl file searched for a NUL
BINARY_SHARE = 0.2      # most non-text characters a file or a document may hold (share of its length)
BINARY_MIN_DOC = 64     # documents shorter than this (characters) are not judged on their own
# Non-text: U+FFFD (an undecodable byte) and C0 controls but tab, newline, form feed and CR; DEL.
_NON_TEXT = re.compile("[\ufffd\x00-\x08\x0b\x0e-\x1f\x7f]")
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # UTF-32 LE starts
              (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))  # like UTF-16 LE


@dataclass
class FilesConfig:
    paths: list[str] = field(default_factory=list)  # local paths, globs, s3:// gs:// file:// URIs
    format: Literal["auto", "txt", "jsonl", "parquet"] = "auto"  # auto = from the file extension
    text_field: str = "text"              # column / JSON key holding the text (jsonl, parquet)
    url_field: str | None = None          # optional column with a per-document URL
    license_field: str | None = None      # optional column with a per-document license
    license: str | None = None            # license recorded for every document of these files
    txt_unit: Literal["file", "paragraph", "line"] = "paragraph"  # what one txt document is
    min_chars: int = 1                    # shorter documents are skipped (counted)
    skip_unknown: bool = False            # files whose format the extension does not tell (format: auto):
                                          # false = an error naming them; true = skipped, listed in stats

    def __post_init__(self):
        if self.min_chars < 0:
            raise ValueError("min_chars must be >= 0")


def expand(paths: list[str]) -> list[tuple[str, str]]:
    """Files, directories (recursive: files with a known data suffix) and globs -> sorted (file
    URI/path, location-free name) pairs; error if an entry matches nothing (objstore.expand)."""
    return objstore.expand(paths, lambda f: _format_of(f, "auto", strict=False) is not None,
                           "data.ingest.files.paths")


def expand_paths(paths: list[str]) -> list[str]:
    """The file URIs/paths of `expand`, without their names."""
    return [u for u, _ in expand(paths)]


def _format_of(path: str, fmt: str, strict: bool = True) -> str | None:
    if fmt != "auto":
        return fmt
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    for ext, f in ((".txt", "txt"), (".text", "txt"), (".md", "txt"), (".jsonl", "jsonl"),
                   (".json", "jsonl"), (".ndjson", "jsonl"), (".parquet", "parquet")):
        if name.endswith(ext):
            return f
    if strict:
        raise ValueError(f"{path}: cannot tell the format from the extension; set data.ingest.files.format")
    return None


def non_text_share(text: str) -> float:
    """The share of `text`'s characters that are not text (U+FFFD, C0 controls but tab, newline,
    form feed and CR, DEL); 0.0 for empty text."""
    return (len(text) - len(_NON_TEXT.sub("", text))) / len(text) if text else 0.0  # no list of matches


def _decode(data: bytes) -> str:
    """UTF-8 with replacement; UTF-16/32 when the bytes start with their byte-order mark."""
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    return data.decode("utf-8", errors="replace")


def _mtime(fs: pafs.FileSystem, path: str) -> str | None:
    m = fs.get_file_info(path).mtime
    return m.astimezone(dt.UTC).isoformat(timespec="seconds") if m else None


def parse_file(uri: str, data: bytes, cfg: FilesConfig, mtime: str | None = None,
               name: str | None = None) -> tuple[pa.Table, dict]:
    """Bytes of one file -> (documents table, counts). Pure: no I/O, no Ray.

    Each document's id is stable: hash of the file's location-free `name` (from `expand`;
    default: `uri`) and the record's position in it. `uri` is kept as provenance, without query
    options or credentials (storage.public_uri).
    Undecodable bytes are replaced (U+FFFD) and counted, so one bad byte never loses a file;
    binary or mostly non-text input is dropped as `ingest:binary` (the module docstring's rule).
    """
    uri = storage.public_uri(uri)  # no query options: they are not the suffix either
    fmt = _format_of(uri, cfg.format)
    counts = {"files": 1, "records": 0, "decode_errors": 0}
    base = {"source": "file", "uri": uri, "license": cfg.license, "fetched_at": mtime}
    rows: list[dict] = []

    def add(key, text, url=None, lic=None, ctype="text/plain", drop=None):
        # Skipped records stay as empty rows with a drop reason, so the stats count them.
        counts["records"] += 1
        if drop is None and (text is None or len(text.strip()) < max(cfg.min_chars, 1)):
            drop = "ingest:too_short"
        if drop is None and len(text) >= BINARY_MIN_DOC and non_text_share(text) > BINARY_SHARE:
            drop = "ingest:binary"
        if drop:
            counts["skipped_" + drop.split(":")[1]] = counts.get("skipped_" + drop.split(":")[1], 0) + 1
            text = ""
        rows.append(dict(base, id=doc_id(name or uri, key), text=text, url=url,
                         license=lic or cfg.license, content_type=ctype, drop=drop))

    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
        if cfg.text_field not in table.column_names:
            raise ValueError(f"{uri}: no column {cfg.text_field!r} (columns: {', '.join(table.column_names)})")
        cols = table.to_pydict()
        for i, text in enumerate(cols[cfg.text_field]):
            add(i, text if isinstance(text, str) else None,
                cols[cfg.url_field][i] if cfg.url_field in cols else None,
                cols[cfg.license_field][i] if cfg.license_field in cols else None)
        return make_docs(rows), counts

    text = _decode(data)
    counts["decode_errors"] = text.count("\ufffd") - data.count("\ufffd".encode())
    if "\x00" in text[:BINARY_HEAD] or non_text_share(text) > BINARY_SHARE:
        log.warning("skipping binary or mostly non-text file %s (data.ingest.files reads UTF-8 text)", uri)
        add("file", None, drop="ingest:binary")
        return make_docs(rows), counts
    if fmt == "jsonl":
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                val = rec[cfg.text_field]
            except (json.JSONDecodeError, KeyError, TypeError):
                add(i, None, drop="ingest:bad_record")
                continue
            add(i, val if isinstance(val, str) else None, rec.get(cfg.url_field) if cfg.url_field else None,
                rec.get(cfg.license_field) if cfg.license_field else None)
    elif cfg.txt_unit == "file":
        add(0, text)
    elif cfg.txt_unit == "line":
        for i, line in enumerate(text.splitlines()):
            add(i, line)
    else:  # paragraphs: blocks separated by blank lines; key = paragraph ordinal
        for i, para in enumerate(re.split(r"\n[ \t]*\n", text)):
            add(i, para.strip("\n"))
    return make_docs(rows), counts


def read_one(uri: str, cfg: FilesConfig, name: str | None = None) -> tuple[pa.Table, dict]:
    """Read and parse one file; a corrupt file is a counted skip, not a crash."""
    fs, path = storage.resolve(uri)
    try:
        with fs.open_input_stream(path, compression="detect") as f:
            data = f.read()
        return parse_file(uri, data, cfg, _mtime(fs, path), name)
    except (OSError, ValueError, pa.ArrowException) as e:
        if isinstance(e, ValueError) and "no column" in str(e):
            raise
        shown = storage.public_uri(uri)
        log.warning("skipping unreadable file %s: %s", shown, e)
        row = {"id": doc_id(name or shown, "file"), "text": "", "source": "file", "uri": shown,
               "drop": "ingest:bad_file"}
        return make_docs([row]), {"files": 1, "skipped_bad_file": 1}


def unknown_format(cfg: FilesConfig) -> list[str]:
    """Files that cfg.paths reach whose format the extension does not tell (format: auto only):
    files in a listed directory that `expand` passes over (`copyright`, `x.cor`) and glob hits.
    Lists names; opens nothing."""
    if cfg.format != "auto":
        return []
    every = objstore.expand(cfg.paths, lambda f: True, "data.ingest.files.paths")
    return [u for u, _ in every if _format_of(u, "auto", strict=False) is None]


def check_unknown(cfg: FilesConfig) -> list[str]:
    """`unknown_format(cfg)`; an error naming them unless cfg.skip_unknown."""
    unknown = unknown_format(cfg)
    if unknown and not cfg.skip_unknown:
        shown = ", ".join(storage.public_uri(u) for u in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"data.ingest.files.paths: {len(unknown)} file(s) whose format the extension does not "
                         f"tell: {shown}. Set data.ingest.files.format (txt, jsonl, parquet) to read them all "
                         "as one format, or data.ingest.files.skip_unknown: true to skip them (listed in "
                         "stats.json)")
    return unknown


def with_decode_errors(docs: pa.Table, n: int) -> pa.Table:
    """`docs` (one file's documents) + DECODE_ERRORS: the file's count on its first row, 0 after."""
    vals = [n] + [0] * (docs.num_rows - 1) if docs.num_rows else []
    return docs.append_column(DECODE_ERRORS, pa.array(vals, pa.int64()))


def run(cfg: FilesConfig):
    """All files -> a Ray Dataset of documents; a read task takes one file at a time, and files
    are grouped into tasks by `blocks.read_tasks` (a corpus of many small files is not a task
    and a block per file). Files of unknown format are an error, or with skip_unknown one row
    each dropped as `ingest:unknown_format`. Each file's undecodable bytes (now U+FFFD) are
    counted in DECODE_ERRORS on its first document (stats.json sums them per file)."""
    import ray

    from raylm.data import blocks

    unknown = set(check_unknown(cfg))
    files = [(u, n) for u, n in expand(cfg.paths) if u not in unknown]  # glob hits may be unknown

    def read_batch(batch: pa.Table) -> pa.Table:
        tables = []
        for u, n in zip(batch["uri"].to_pylist(), batch["name"].to_pylist()):
            if n is None:  # an unknown-format file, skipped (skip_unknown)
                shown = storage.public_uri(u)
                docs, counts = make_docs([{"id": doc_id(shown, "file"), "text": "", "source": "file",
                                           "uri": shown, "drop": "ingest:unknown_format"}]), {}
            else:
                docs, counts = read_one(u, cfg, n)
            tables.append(with_decode_errors(docs, counts.get("decode_errors", 0)))
        return conform(pa.concat_tables(tables)) if tables else with_decode_errors(make_docs([]), 0)

    items = [{"uri": u, "name": n} for u, n in files] + [{"uri": u, "name": None} for u in sorted(unknown)]
    n = blocks.read_tasks(len(items), blocks.cluster_cpus())
    return ray.data.from_items(items, override_num_blocks=n).map_batches(
        read_batch, batch_format="pyarrow", batch_size=1, num_cpus=0.5)
