"""Ingest local or object-store files: txt, jsonl, parquet, MediaWiki XML dumps, Project
Gutenberg books, Reddit-style jsonl dumps, and globs of them.

Paths are expanded on the driver (a list of names, not data); each file is read and parsed
by one Ray task, so reading scales with the cluster. txt, jsonl, parquet and gutenberg files are
parsed whole in their task: keep single files below a few GB (split bigger ones; Ray Data's own
readers are the way for huge parquet datasets). mediawiki and reddit dumps stream: a task holds
one page or line and `rows_per_block` documents (ingest.mediawiki, ingest.reddit).

Compressed files (.gz, .bz2, .xz, .zst) are decompressed as they are read (ingest.streams). A
file cut short or corrupt keeps the documents read before the damage and adds one row dropped as
`ingest:truncated` or `ingest:corrupt` (jsonl: the cut last line is part of that damage).

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raylm import storage
from raylm.data.ingest import gutenberg, mediawiki, objstore, reddit, streams
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


FORMATS = ("txt", "jsonl", "parquet", "mediawiki", "gutenberg", "reddit")
STREAMED = ("mediawiki", "reddit")  # read a piece at a time; the others are read whole


@dataclass
class FilesConfig:
    paths: list[str] = field(default_factory=list)  # local paths, globs, s3:// gs:// file:// URIs
    format: Literal["auto", "txt", "jsonl", "parquet", "mediawiki", "gutenberg", "reddit"] = "auto"
                                          # auto = from the file name (`format_of`); a .txt with a
                                          # Project Gutenberg start marker is read as gutenberg
    text_field: str = "text"              # column / JSON key holding the text (jsonl, parquet)
    url_field: str | None = None          # optional column with a per-document URL
    license_field: str | None = None      # optional column with a per-document license
    license: str | None = None            # license recorded for every document of these files
                                          # (mediawiki default CC-BY-SA-4.0, gutenberg "Project Gutenberg License")
    txt_unit: Literal["file", "paragraph", "line"] | None = None  # what one txt / gutenberg document is;
                                          # null = paragraph for txt, the whole book for gutenberg
    min_chars: int = 1                    # shorter documents are skipped (counted)
    skip_unknown: bool = False            # files whose format the extension does not tell (format: auto):
                                          # false = an error naming them; true = skipped, listed in stats
    wiki_namespaces: list[int] = field(default_factory=lambda: [0])  # mediawiki: namespaces read (0 = articles)
    min_score: int | None = None          # reddit: records scored lower are dropped (ingest:low_score)
    rows_per_block: int = 1000            # mediawiki, reddit: documents per output block (memory per block)

    def __post_init__(self):
        if self.min_chars < 0:
            raise ValueError("min_chars must be >= 0")
        if not self.wiki_namespaces:
            raise ValueError("wiki_namespaces must name at least one namespace (0 = articles)")
        if self.rows_per_block <= 0:
            raise ValueError("rows_per_block must be > 0")


def expand(paths: list[str]) -> list[tuple[str, str]]:
    """Files, directories (recursive: files with a known data suffix) and globs -> sorted (file
    URI/path, location-free name) pairs; error if an entry matches nothing (objstore.expand)."""
    return objstore.expand(paths, lambda f: format_of(f, "auto", strict=False) is not None,
                           "data.ingest.files.paths")


def expand_paths(paths: list[str]) -> list[str]:
    """The file URIs/paths of `expand`, without their names."""
    return [u for u, _ in expand(paths)]


_SUFFIXES = ((".txt", "txt"), (".text", "txt"), (".md", "txt"), (".jsonl", "jsonl"), (".json", "jsonl"),
             (".ndjson", "jsonl"), (".parquet", "parquet"), (".xml", "mediawiki"))
# Pushshift / Arctic Shift monthly dumps (RC_2019-04.zst comments, RS_ submissions) and per-subreddit
# dumps (<sub>_comments.zst): jsonl with no .jsonl in the name
_REDDIT_DUMP = re.compile(r"r[cs]_\d{4}-\d{2}(-\d{2})?\.(zst|bz2|xz)|.+_(comments|submissions)\.zst")
_WIKI_SPLIT = re.compile(r".*\.xml-p\d+p\d+")  # Wikimedia's split dumps: enwiki-...-pages-articles1.xml-p1p41242.bz2


def format_of(path: str, fmt: str, strict: bool = True) -> str | None:
    """The format a file is read as: `fmt` unless "auto", else from its name. Auto knows
    .txt/.text/.md (txt), .jsonl/.json/.ndjson (jsonl), .parquet, .xml (mediawiki: a MediaWiki
    export; any other XML is a skipped file, ingest:bad_file), each of these also compressed
    (.gz, .bz2, .xz, .zst); a bare .zst (jsonl); Pushshift-style names (reddit) and Wikimedia's
    split dump names (mediawiki). A txt file whose start holds a Project Gutenberg marker is then read
    as gutenberg (`parse_file`, gutenberg.is_book)."""
    if fmt != "auto":
        return fmt
    name = storage.public_uri(path).lower().rsplit("/", 1)[-1]
    if _REDDIT_DUMP.fullmatch(name):
        return "reddit"
    kind = streams.compression(name)
    bare = name.removesuffix(kind) if kind else name
    for ext, f in _SUFFIXES:
        if bare.endswith(ext):
            return f
    if _WIKI_SPLIT.fullmatch(bare):
        return "mediawiki"
    if kind == ".zst":  # zstd-compressed dumps are jsonl
        return "jsonl"
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


def _doc(rec: dict, base: dict, id_name: str, cfg: FilesConfig, counts: dict) -> dict:
    """A reader's record {key, text, and any of url, license, content_type, fetched_at, drop} ->
    a document row. Skipped records stay as empty rows with a drop reason, so the stats count
    them; too short and binary documents are dropped here."""
    counts["records"] = counts.get("records", 0) + 1
    text, drop = rec.get("text"), rec.get("drop")
    if drop is None and (text is None or len(text.strip()) < max(cfg.min_chars, 1)):
        drop = "ingest:too_short"
    if drop is None and len(text) >= BINARY_MIN_DOC and non_text_share(text) > BINARY_SHARE:
        drop = "ingest:binary"
    if drop:
        key = "skipped_" + drop.split(":", 1)[1]
        counts[key] = counts.get(key, 0) + 1
        text = ""
    return dict(base, id=doc_id(id_name, rec["key"]), text=text, url=rec.get("url"),
                license=rec.get("license") or cfg.license, content_type=rec.get("content_type", "text/plain"),
                fetched_at=rec.get("fetched_at") or base["fetched_at"], drop=drop)


def _units(text: str, unit: str) -> Iterator[tuple[int, str]]:
    """(key, text) of the documents of a txt file: the file, its lines or its paragraphs."""
    if unit == "file":
        yield 0, text
    elif unit == "line":
        yield from enumerate(text.splitlines())
    else:  # paragraphs: blocks separated by blank lines; key = paragraph ordinal
        for i, para in enumerate(re.split(r"\r?\n[ \t]*\r?\n", text)):  # CRLF files too
            yield i, para.strip("\r\n")


def _streamed(fmt: str, pieces: Iterator[bytes], cfg: FilesConfig, counts: dict) -> Iterator[dict]:
    """The records of a mediawiki or reddit file, read from its (decompressed) byte pieces."""
    texts = streams.text(pieces, counts)
    if fmt == "mediawiki":
        return mediawiki.read(texts, cfg.wiki_namespaces, cfg.license)
    return reddit.read(streams.lines(texts), cfg.min_score)


def parse_file(uri: str, data: bytes, cfg: FilesConfig, mtime: str | None = None,
               name: str | None = None) -> tuple[pa.Table, dict]:
    """Bytes of one (decompressed) file -> (documents table, counts). Pure: no I/O, no Ray.

    Each document's id is stable: hash of the file's location-free `name` (from `expand`;
    default: `uri`) and the record's position in it (mediawiki: the page id). `uri` is kept as
    provenance, without query options or credentials (storage.public_uri).
    Undecodable bytes are replaced (U+FFFD) and counted, so one bad byte never loses a file;
    binary or mostly non-text input is dropped as `ingest:binary` (the module docstring's rule).
    """
    uri = storage.public_uri(uri)  # no query options: they are not the suffix either
    fmt = format_of(uri, cfg.format)
    counts = {"files": 1, "records": 0, "decode_errors": 0}
    base = {"source": "file", "uri": uri, "license": cfg.license, "fetched_at": mtime}
    id_name = name or uri
    rows: list[dict] = []

    def add(key, text, url=None, lic=None, drop=None):
        rows.append(_doc({"key": key, "text": text, "url": url, "license": lic, "drop": drop}, base, id_name,
                         cfg, counts))

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
    if fmt in STREAMED:
        rows = [_doc(r, base, id_name, cfg, counts) for r in _streamed(fmt, iter([data]), cfg, counts)]
        return make_docs(rows), counts

    text = _decode(data)
    counts["decode_errors"] = text.count("\ufffd") - data.count("\ufffd".encode())
    if "\x00" in text[:BINARY_HEAD] or non_text_share(text) > BINARY_SHARE:
        log.warning("skipping binary or mostly non-text file %s (data.ingest.files reads UTF-8 text)", uri)
        add("file", None, drop="ingest:binary")
        return make_docs(rows), counts
    if fmt == "txt" and cfg.format == "auto" and gutenberg.is_book(text):
        fmt = "gutenberg"  # a start marker is not found in other texts
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
    elif fmt == "gutenberg":
        book, info = gutenberg.strip(text, id_name)
        lic = cfg.license or gutenberg.LICENSE
        if not info["marked"]:  # kept whole, without the PG licence: it may be a text from elsewhere
            log.warning("%s: no Project Gutenberg start marker; read whole", uri)
            counts["gutenberg_unmarked"] = 1
            lic = cfg.license
        for key, unit in _units(book, cfg.txt_unit or "file"):
            add(key, unit, gutenberg.url(info["number"]), lic)
        if not info["marked"]:  # one empty row stands for the file in stats.json, as a damaged file's does
            add("unmarked", None, drop="ingest:gutenberg_unmarked")
    else:
        for key, unit in _units(text, cfg.txt_unit or "paragraph"):
            add(key, unit)
    return make_docs(rows), counts


def _damage_row(shown: str, id_name: str, e: streams.Damaged, kept: int) -> dict:
    """The row that stands for a file's damage (one per file), with a warning naming the file."""
    log.warning("%s: %s; the %d record(s) before it are kept", shown, e, kept)
    return {"id": doc_id(id_name, "damage"), "text": "", "source": "file", "uri": shown,
            "drop": f"ingest:{e.reason}"}


def read_parts(uri: str, cfg: FilesConfig, name: str | None = None) -> Iterator[tuple[pa.Table, dict]]:
    """Read and parse one file -> (documents, counts) parts: one for the whole-read formats, one
    per `rows_per_block` documents for the streamed ones (counts come with the last part).

    Damage never crashes and is never silent: a file of which nothing can be read is one row
    dropped as `ingest:bad_file`; a file cut short or corrupt after some records keeps them and
    adds one row dropped as `ingest:truncated` / `ingest:corrupt` (and a warning naming the file)."""
    shown = storage.public_uri(uri)
    id_name = name or shown
    fmt = format_of(shown, cfg.format)
    counts = {"files": 1, "records": 0, "decode_errors": 0}
    try:
        fs, path = storage.resolve(uri)
        mtime = _mtime(fs, path)
        if fmt not in STREAMED:
            data, damage = streams.read_all(uri)
            if damage and not data:  # nothing readable: the file is skipped (ingest:bad_file)
                raise damage
            if damage and fmt == "jsonl":
                data = data[:data.rfind(b"\n") + 1]  # a cut last line is part of the damage
            docs, counts = parse_file(uri, data, cfg, mtime, name)
            if damage:
                docs = pa.concat_tables([docs, make_docs([_damage_row(shown, id_name, damage, docs.num_rows)])])
                counts["skipped_" + damage.reason] = 1
            yield docs, counts
            return
        base = {"source": "file", "uri": shown, "license": cfg.license, "fetched_at": mtime}
        rows: list[dict] = []
        held: list[dict] = []  # a full block is held back so the last block is never empty
        damage = None
        try:
            for rec in _streamed(fmt, streams.chunks(uri), cfg, counts):
                rows.append(_doc(rec, base, id_name, cfg, counts))
                if len(rows) >= cfg.rows_per_block:
                    if held:
                        yield make_docs(held), {}
                    held, rows = rows, []
        except (OSError, ValueError) as e:  # Damaged is an OSError; after some records, they are kept
            if not counts["records"]:  # nothing readable: the file is skipped (ingest:bad_file)
                raise
            damage = e if isinstance(e, streams.Damaged) else streams.Damaged("corrupt", str(e))
        if damage:
            rows.append(_damage_row(shown, id_name, damage, counts["records"]))
            counts["skipped_" + damage.reason] = 1
        if held and rows:
            yield make_docs(held), {}
            held = []
        yield make_docs(rows or held), counts
    except (OSError, ValueError, pa.ArrowException) as e:
        if isinstance(e, ValueError) and "no column" in str(e):
            raise
        log.warning("skipping unreadable file %s: %s", shown, e)
        row = {"id": doc_id(id_name, "file"), "text": "", "source": "file", "uri": shown, "drop": "ingest:bad_file"}
        yield make_docs([row]), {"files": 1, "skipped_bad_file": 1}


def read_one(uri: str, cfg: FilesConfig, name: str | None = None) -> tuple[pa.Table, dict]:
    """Read and parse one file (`read_parts`, joined): all its documents and counts."""
    tables, counts = [], {}
    for docs, c in read_parts(uri, cfg, name):
        tables.append(docs)
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    return pa.concat_tables(tables), counts


def unknown_format(cfg: FilesConfig) -> list[str]:
    """Files that cfg.paths reach whose format the extension does not tell (format: auto only):
    files in a listed directory that `expand` passes over (`copyright`, `x.cor`) and glob hits.
    Lists names; opens nothing."""
    if cfg.format != "auto":
        return []
    every = objstore.expand(cfg.paths, lambda f: True, "data.ingest.files.paths")
    return [u for u, _ in every if format_of(u, "auto", strict=False) is None]


def check_unknown(cfg: FilesConfig) -> list[str]:
    """`unknown_format(cfg)`; an error naming them unless cfg.skip_unknown."""
    unknown = unknown_format(cfg)
    if unknown and not cfg.skip_unknown:
        shown = ", ".join(storage.public_uri(u) for u in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"data.ingest.files.paths: {len(unknown)} file(s) whose format the extension does not "
                         f"tell: {shown}. Set data.ingest.files.format ({', '.join(FORMATS)}) to read them all "
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
    counted in DECODE_ERRORS on one of its documents (stats.json sums them per file). A streamed
    dump comes out as blocks of `rows_per_block` documents."""
    import ray

    from raylm.data import blocks

    unknown = set(check_unknown(cfg))
    files = [(u, n) for u, n in expand(cfg.paths) if u not in unknown]  # glob hits may be unknown

    def read_batch(batch: pa.Table) -> Iterator[pa.Table]:
        for u, n in zip(batch["uri"].to_pylist(), batch["name"].to_pylist()):
            if n is None:  # an unknown-format file, skipped (skip_unknown)
                shown = storage.public_uri(u)
                docs = make_docs([{"id": doc_id(shown, "file"), "text": "", "source": "file", "uri": shown,
                                   "drop": "ingest:unknown_format"}])
                yield conform(with_decode_errors(docs, 0))
                continue
            for docs, counts in read_parts(u, cfg, n):
                yield conform(with_decode_errors(docs, counts.get("decode_errors", 0)))

    items = [{"uri": u, "name": n} for u, n in files] + [{"uri": u, "name": None} for u in sorted(unknown)]
    n = blocks.read_tasks(len(items), blocks.cluster_cpus())
    return ray.data.from_items(items, override_num_blocks=n).map_batches(
        read_batch, batch_format="pyarrow", batch_size=1, num_cpus=0.5)
