"""Benchmark decontamination: drop training documents that contain text of an evaluation set.

A model scored on a benchmark must not have pretrained on its items (GPT-3's 13-gram overlap
analysis; lm-evaluation-harness's decontamination; datatrove's n-gram decontamination filter).
The stage reads the benchmark items from `paths` (on the driver: the files need not be on the
workers), normalises items and documents the same way, and tags a document
"decontam:benchmark" when

  - it shares an `ngram`-word sequence with an item (items of `ngram` words or more), or
  - it contains a whole item of `min_words` .. `ngram` - 1 words (a short sentence has no
    13-gram; shorter items than `min_words` are ignored: "a good film" is everywhere).

Normalisation: lowercase; Penn Treebank tokenisation undone, as in SST ("does n't" -> "doesn't",
"it 's" -> "it's", -lrb- -> space); then words are the runs of \\w. So a review's "doesn't" and
SST-2's "does n't" give the same words ["doesn", "t"].

Memory: the index is a sorted uint64 array of blake2b hashes of the items' word sequences (8 bytes
each: 100,000 items of 20 words are ~1 M sequences, 8 MB), built once on the driver and shipped to
every task with the stage. A hash collision (p ~ 2^-64 per pair) could only drop a document, never
keep a contaminated one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from raylm.data import schema

log = logging.getLogger(__name__)

REASON = "decontam:benchmark"
_FORMATS = {".txt": "lines", ".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}
_PTB = ((re.compile(r"-[lr][rcs]b-"), " "),                                 # -lrb- -rrb- -lsb- ...
        (re.compile(r"\s+(n['\u2019]t)\b"), r"\1"),                          # does n't -> doesn't
        (re.compile(r"(\w)\s+(['\u2019](?:s|re|ve|ll|d|m))\b"), r"\1\2"))   # it 's -> it's
_WORD = re.compile(r"\w+")


@dataclass
class DecontamConfig:
    # Benchmark files whose items must not be trained on, by suffix: .txt (one item a line),
    # .tsv / .csv (a header row; the item is the `text_field` column), .jsonl (key `text_field`).
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
            if Path(p).suffix not in _FORMATS:
                raise ValueError(f"decontam: {p}: unknown file type; use one of {', '.join(_FORMATS)}")


@dataclass(frozen=True)
class Index:
    hashes: np.ndarray          # sorted unique uint64 hashes of item word sequences
    lengths: tuple[int, ...]    # the sequence lengths in it (ngram, and the short items' lengths)
    items: int                  # items read (for the log)


def words(text: str) -> list[str]:
    """The normalised words of `text` (see the module doc)."""
    text = text.lower()
    for pat, rep in _PTB:
        text = pat.sub(rep, text)
    return _WORD.findall(text)


def _hash(seq: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(seq).encode(), digest_size=8).digest(), "little")


def read_items(path: str, text_field: str) -> list[str]:
    """The item texts of one benchmark file."""
    kind = _FORMATS[Path(path).suffix]
    with open(path, encoding="utf-8", newline="") as f:
        if kind == "lines":
            return [ln.rstrip("\r\n") for ln in f if ln.strip()]
        if kind == "jsonl":
            rows = [json.loads(ln) for ln in f if ln.strip()]
            cols = set().union(*rows) if rows else set()
        else:
            reader = csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",",
                                    quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
            rows, cols = list(reader), set(reader.fieldnames or [])
    if text_field not in cols:
        raise ValueError(f"decontam: {path} has no {text_field!r} field (it has: {', '.join(sorted(cols))}); "
                         f"set data.decontam.text_field")
    return [str(r[text_field]) for r in rows if r.get(text_field)]


def build_index(items: list[str], ngram: int, min_words: int) -> Index:
    hashes: set[int] = set()
    lengths = set()
    for item in items:
        w = words(item)
        if len(w) >= ngram:
            hashes.update(_hash(w[i:i + ngram]) for i in range(len(w) - ngram + 1))
            lengths.add(ngram)
        elif len(w) >= min_words:
            hashes.add(_hash(w))
            lengths.add(len(w))
    return Index(np.array(sorted(hashes), dtype=np.uint64), tuple(sorted(lengths)), len(items))


def load(cfg: DecontamConfig) -> Index:
    """The index of every benchmark file. Checked when the stage is planned, before any work runs
    (not at config load, so a config naming files of another machine still loads and validates)."""
    missing = [p for p in cfg.paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"decontam: benchmark file not found: {missing[0]}")
    items = [t for p in cfg.paths for t in read_items(p, cfg.text_field)]
    return build_index(items, cfg.ngram, cfg.min_words)


def contaminated(text: str, index: Index) -> bool:
    """Whether `text` shares an indexed word sequence."""
    w = words(text)
    for n in index.lengths:
        if len(w) < n:
            break
        seqs = np.fromiter((_hash(w[i:i + n]) for i in range(len(w) - n + 1)), dtype=np.uint64)
        pos = np.searchsorted(index.hashes, seqs)
        pos[pos == len(index.hashes)] = 0
        if len(index.hashes) and (index.hashes[pos] == seqs).any():
            return True
    return False


def apply(table: pa.Table, index: Index) -> pa.Table:
    """Tag kept rows that contain benchmark text "decontam:benchmark"; dropped rows are left alone."""
    texts = table["text"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    return schema.set_drop(table, [REASON if k and t and contaminated(t, index) else None
                                   for t, k in zip(texts, keep)])


def run(ds, cfg: DecontamConfig):
    """Ray Data stage: the index is built here, on the driver, and shipped with the tasks."""
    index = load(cfg)
    log.info("decontam: %d benchmark items from %d file(s) -> %d word sequences (lengths %s)",
             index.items, len(cfg.paths), len(index.hashes), list(index.lengths))
    return ds.map_batches(apply, fn_kwargs={"index": index}, batch_format="pyarrow", num_cpus=1)
