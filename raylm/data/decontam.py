"""Benchmark decontamination: drop training documents that contain text of an evaluation set.

A model scored on a benchmark must not have pretrained on its items (GPT-3's 13-gram overlap
analysis; lm-evaluation-harness's decontamination; datatrove's n-gram decontamination filter).
The stage reads the benchmark items from `paths` (on the driver: the files need not be on the
workers), normalises items and documents the same way, and tags a document
"decontam:benchmark" when

  - it shares an `ngram`-word sequence with an item (items of `ngram` words or more), or
  - it contains a whole item of `min_words` .. `ngram` - 1 words (a short sentence has no
    13-gram; shorter items than `min_words` are ignored: "a good film" is everywhere).

Normalisation: Unicode NFKC, lowercase; Penn Treebank tokenisation undone, as in SST ("does n't"
-> "doesn't", "gon na" -> "gonna", "cannot" read as "can not", -lrb- -> space); then words are
the runs of \\w. So a review's "doesn't" and SST-2's "does n't" give the same words
["doesn", "t"] (the apostrophe splits both).

Hashing: each distinct word of a text is hashed once (blake2b, 64 bits); a word sequence's hash
is a polynomial of its words' hashes and its length mod 2^64, computed for every position at once
with numpy. The index is the sorted array of the items' sequence hashes (8 bytes each: 100,000
items of 20 words are ~1 M sequences, 8 MB), built once on the driver and shipped with the
stage's tasks. A hash collision could only drop a document, never keep a contaminated one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from raylm.data import schema

log = logging.getLogger(__name__)

REASON = "decontam:benchmark"
_FORMATS = {".txt": "lines", ".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}
_PTB = ((re.compile(r"-[lr][rcs]b-"), " "),                           # -lrb- -rrb- -lsb- ...
        (re.compile(r"\s+(n['\u2019]t)\b"), r"\1"),                    # does n't -> doesn't
        (re.compile(r"\b(gon|wan|got) (na|ta)\b"), r"\1\2"),            # gon na -> gonna
        (re.compile(r"\bcannot\b"), "can not"))                        # SST writes "can not"
_WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial's base


@dataclass
class DecontamConfig:
    # Benchmark files whose items must not be trained on, by suffix: .txt (one item a line),
    # .tsv / .csv (a header row; the item is the `text_field` column), .jsonl (key `text_field`).
    # Local paths (~ expanded) or s3:// gs:// URIs, read on the driver.
    paths: list[str] = field(default_factory=list)
    text_field: str = "text"  # column or key of the item text in .tsv / .csv / .jsonl files
    ngram: int = 13           # shared word sequences of this length drop a document (GPT-3: 13)
    min_words: int = 8        # whole items of min_words .. ngram-1 words are matched; shorter ignored

    def __post_init__(self):
        if self.ngram < 1:
            raise ValueError(f"decontam.ngram must be >= 1, got {self.ngram}")
        if not 1 <= self.min_words <= self.ngram:
            raise ValueError(f"decontam.min_words must be in [1, ngram={self.ngram}], got {self.min_words}")
        for p in self.paths:
            if _suffix(p) not in _FORMATS:
                raise ValueError(f"decontam: {p}: unknown file type; use one of {', '.join(_FORMATS)}")


@dataclass(frozen=True)
class Index:
    hashes: np.ndarray          # sorted unique uint64 hashes of item word sequences
    lengths: tuple[int, ...]    # the sequence lengths in it (ngram, and the short items' lengths)
    items: int                  # items read (for the log)


def _suffix(path: str) -> str:
    return Path(path.split("?", 1)[0]).suffix.lower()


def words(text: str) -> list[str]:
    """The normalised words of `text` (see the module doc)."""
    text = unicodedata.normalize("NFKC", text).lower()
    for pat, rep in _PTB:
        text = pat.sub(rep, text)
    return _WORD.findall(text)


def _word_hashes(ws: list[str]) -> np.ndarray:
    memo = {w: int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") for w in set(ws)}
    return np.array([memo[w] for w in ws], dtype=np.uint64)


def sequence_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    """The hash of every n-word sequence, from the words' hashes `wh` (len(wh) - n + 1 of them)."""
    count = len(wh) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.full(count, n, dtype=np.uint64)  # the length is part of the hash
    for j in range(n):  # uint64 arithmetic wraps: mod 2^64
        acc = acc * _MULT + wh[j:j + count]
    return acc


def read_items(path: str, text_field: str) -> list[str]:
    """The item texts of one benchmark file (a local path or an object-store URI)."""
    from pyarrow.fs import FileType

    from raylm.storage import resolve

    fs, where = resolve(path)
    if fs.get_file_info(where).type != FileType.File:
        raise FileNotFoundError(f"decontam: benchmark file not found: {path}")
    with fs.open_input_stream(where) as f:
        text = f.read().decode("utf-8-sig")  # a byte-order mark is not part of the first field
    kind = _FORMATS[_suffix(path)]
    if kind == "lines":
        return [ln for ln in text.splitlines() if ln.strip()]
    if kind == "jsonl":
        rows = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        cols = set().union(*rows) if rows else set()
    else:
        csv.field_size_limit(sys.maxsize)  # a long passage is one field
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",",
                                quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
        rows, cols = list(reader), set(reader.fieldnames or [])
    if text_field not in cols:
        raise ValueError(f"decontam: {path} has no {text_field!r} field (it has: {', '.join(sorted(cols))}); "
                         f"set data.decontam.text_field")
    bad = next((r[text_field] for r in rows if not isinstance(r.get(text_field) or "", str)), None)
    if bad is not None:
        raise ValueError(f"decontam: {path}: {text_field!r} holds a {type(bad).__name__}, not text")
    return [r[text_field] for r in rows if r.get(text_field)]


def build_index(items: list[str], ngram: int, min_words: int) -> Index:
    parts, lengths = [], set()
    for item in items:
        wh = _word_hashes(words(item))
        if len(wh) >= ngram:
            parts.append(sequence_hashes(wh, ngram))
            lengths.add(ngram)
        elif len(wh) >= min_words:
            parts.append(sequence_hashes(wh, len(wh)))
            lengths.add(len(wh))
    hashes = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)
    return Index(hashes, tuple(sorted(lengths)), len(items))


def load(cfg: DecontamConfig) -> Index:
    """The index of every benchmark file. Checked when the stage is planned, before any work runs
    (not at config load, so a config naming files of another machine still loads and validates)."""
    items = [t for p in cfg.paths for t in read_items(p, cfg.text_field)]
    return build_index(items, cfg.ngram, cfg.min_words)


def contaminated(text: str, index: Index) -> bool:
    """Whether `text` shares an indexed word sequence (an empty index has no lengths)."""
    wh = _word_hashes(words(text))
    for n in index.lengths:  # ascending
        if len(wh) < n:
            break
        seqs = sequence_hashes(wh, n)
        pos = np.minimum(np.searchsorted(index.hashes, seqs), len(index.hashes) - 1)
        if (index.hashes[pos] == seqs).any():
            return True
    return False


def apply(table: pa.Table, index: Index) -> pa.Table:
    """Tag kept rows that contain benchmark text "decontam:benchmark"; dropped rows are left alone."""
    texts = table["text"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    return schema.set_drop(table, [REASON if k and t and contaminated(t, index) else None
                                   for t, k in zip(texts, keep)])


def run(ds, cfg: DecontamConfig, ctx=None):
    """Ray Data stage: the index is built here, on the driver, and shipped with the tasks."""
    index = load(cfg)
    if not len(index.hashes):
        log.warning("decontam: none of the %d items in %s has %d or more words: the stage drops nothing",
                    index.items, cfg.paths, cfg.min_words)
    else:
        log.info("decontam: %d benchmark items from %d file(s) -> %d word sequences (lengths %s)",
                 index.items, len(cfg.paths), len(index.hashes), list(index.lengths))
    return ds.map_batches(apply, fn_kwargs={"index": index}, batch_format="pyarrow", num_cpus=1)
