"""Exact dedup: rows whose normalised text (or URL) equals a better-ranked row's are dropped.

Pure part: key a batch (`key_table`), find the non-survivors of a partition of keys
(`duplicates_in`), and apply drop reasons to documents (`apply_reasons`). Ray part:
only (id, rank, key) rows are shuffled -- hash-partitioned by key, so every key group is
seen by one task -- and the small (id, reason) table is joined back to the documents
once (`mark`). Rows that an earlier stage dropped take no part and stay untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm.data import schema
from raylm.data.dedup.survivor import SurvivorRule, rank_keys

REASON_TEXT = "dedup:exact"
REASON_URL = "dedup:url"
REASONS_SCHEMA = pa.schema([("id", pa.string()), ("reason", pa.string())])
KEYS_SCHEMA = pa.schema([("id", pa.string()), ("rank", pa.string()), ("key", pa.binary(16)),
                         ("part", pa.int64())])


@dataclass
class ExactDedupConfig:
    text: bool = True                  # drop rows whose normalised text equals a better-ranked row's
    url: bool = False                  # drop rows whose normalised URL equals a better-ranked row's
    lowercase: bool = True             # text key: lowercase before hashing
    collapse_whitespace: bool = True   # text key: whitespace runs -> one space, ends trimmed
    survivor: SurvivorRule = "min_id"  # who survives a group: min_id | longest | score
    score_column: str = ""             # column read by survivor="score" (higher is better)
    num_partitions: int = 16           # shuffle partitions of the (id, key) table

    def __post_init__(self):
        if self.survivor not in ("min_id", "longest", "score"):
            raise ValueError(f"exact.survivor must be min_id|longest|score, got {self.survivor!r}")
        if self.survivor == "score" and not self.score_column:
            raise ValueError("exact.survivor='score' needs exact.score_column")
        if self.num_partitions < 1:
            raise ValueError(f"exact.num_partitions must be >= 1, got {self.num_partitions}")


def text_key(text: str | None, lowercase: bool = True, collapse_whitespace: bool = True) -> bytes | None:
    """16-byte BLAKE2b of the normalised text; None for a null text."""
    if text is None:
        return None
    if lowercase:
        text = text.lower()
    if collapse_whitespace:
        text = " ".join(text.split())
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def normalize_url(url: str | None) -> str | None:
    """Scheme and host lowercased, default port, fragment and trailing '/' removed; None if blank."""
    if url is None or not url.strip():
        return None
    try:
        p = urlsplit(url.strip())
        host = (p.hostname or "").lower()
        port = p.port
    except ValueError:  # malformed (e.g. bad port): compare the stripped string as is
        return url.strip()
    scheme = p.scheme.lower()
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = p.path.rstrip("/") or ""
    return urlunsplit((scheme, host, path, p.query, ""))


def key_table(table: pa.Table, kind: str, cfg: ExactDedupConfig) -> pa.Table:
    """(id, rank, key, part) for the rows of `table` still kept and with a `kind` key.

    kind "text" keys on text_key(text), "url" on blake2b(normalize_url(url)).
    part = first 8 key bytes mod num_partitions (the shuffle partition).
    """
    table = schema.conform(table)
    kept = schema.kept_mask(table)
    if kind == "text":
        keys = [text_key(t, cfg.lowercase, cfg.collapse_whitespace) for t in table["text"].to_pylist()]
    elif kind == "url":
        norm = [normalize_url(u) for u in table["url"].to_pylist()]
        keys = [None if u is None else hashlib.blake2b(u.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                for u in norm]
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    key_arr = pa.array(keys, pa.binary(16))
    rank = rank_keys(table, cfg.survivor, cfg.score_column)
    out = pa.table({"id": table["id"], "rank": rank, "key": key_arr})
    out = out.filter(pc.and_(kept, pc.is_valid(key_arr)))
    if out.num_rows == 0:
        return KEYS_SCHEMA.empty_table()
    raw = np.frombuffer(out["key"].combine_chunks().buffers()[1], dtype=np.uint8)
    k8 = raw.reshape(-1, 16)[:, :8].copy().view("<u8").ravel()
    part = (k8 % np.uint64(cfg.num_partitions)).astype(np.int64)
    return pa.table({"id": out["id"].cast(pa.string()), "rank": out["rank"], "key": out["key"],
                     "part": pa.array(part)}, schema=KEYS_SCHEMA)


def duplicates_in(keys: pa.Table, reason: str) -> pa.Table:
    """(id, reason) of every row of `keys` that is not the smallest rank of its key group.

    `keys` must hold whole key groups (one shuffle partition). Vectorised: one sort.
    """
    if keys.num_rows == 0:
        return REASONS_SCHEMA.empty_table()
    keys = keys.sort_by([("key", "ascending"), ("rank", "ascending")])
    k = keys["key"].combine_chunks()
    same_as_prev = np.zeros(keys.num_rows, dtype=bool)
    if keys.num_rows > 1:
        same_as_prev[1:] = pc.equal(k.slice(1), k.slice(0, keys.num_rows - 1)).to_numpy(zero_copy_only=False)
    dups = keys.filter(pa.array(same_as_prev))
    return pa.table({"id": dups["id"], "reason": pa.array([reason] * dups.num_rows, pa.string())},
                    schema=REASONS_SCHEMA)


def apply_reasons(table: pa.Table, column: str = "_dedup_reason") -> pa.Table:
    """Set `drop` from `column` (null = keep) on still-kept rows, then remove `column`."""
    reasons = table[column].to_pylist()
    table = table.drop_columns([column])
    return schema.set_drop(schema.conform(table), reasons)


# ---------------------------------------------------------------- Ray shell

def _keys_ds(ds, kind: str, cfg: ExactDedupConfig):
    return ds.map_batches(key_table, batch_format="pyarrow", fn_args=(kind, cfg), num_cpus=0.5)


def duplicates(ds, cfg: ExactDedupConfig):
    """Dataset of (id, reason) for exact text duplicates, then URL duplicates among the rest."""
    import functools

    out = None
    if cfg.text:
        out = _keys_ds(ds, "text", cfg).groupby("part", num_partitions=cfg.num_partitions).map_groups(
            functools.partial(duplicates_in, reason=REASON_TEXT), batch_format="pyarrow", num_cpus=0.5)
    if cfg.url:
        url_keys = _keys_ds(ds, "url", cfg)
        if out is not None:  # a row already dropped as a text duplicate cannot survive a URL group
            out = out.materialize()
            url_keys = url_keys.join(out.select_columns(["id"]), "left_anti", cfg.num_partitions, on=("id",))
        url_dups = url_keys.groupby("part", num_partitions=cfg.num_partitions).map_groups(
            functools.partial(duplicates_in, reason=REASON_URL), batch_format="pyarrow", num_cpus=0.5)
        out = url_dups if out is None else out.union(url_dups.materialize())
    return out


def mark(ds, reasons, num_partitions: int):
    """Join the (id, reason) dataset `reasons` (ids unique) onto `ds` and set `drop`.

    One shuffle of the documents; their order is not kept.
    """
    reasons = reasons.rename_columns({"reason": "_dedup_reason"})
    joined = ds.join(reasons, "left_outer", num_partitions, on=("id",))
    return joined.map_batches(apply_reasons, batch_format="pyarrow", num_cpus=0.5)


def run(ds, cfg: ExactDedupConfig):
    """Mark exact (and, if cfg.url, URL) duplicates `drop="dedup:exact"` / `"dedup:url"`.

    The duplicate ids are materialised first (small: one row per duplicate): with their
    shuffles and the marking join in one plan, the shuffle actors of a 2-CPU Ray held
    every CPU and the join's tasks waited forever.
    """
    dups = duplicates(ds, cfg)
    return ds if dups is None else mark(ds, dups.materialize(), cfg.num_partitions)
