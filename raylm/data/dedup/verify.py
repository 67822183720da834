"""Exact Jaccard check of candidate edges: drops LSH false positives.

Shingle sets are recomputed from the texts (64-bit fast shingle hashes: exact up to
2^-64 collisions), which the Ray shell joins onto the edges by id -- two hash joins, so
texts meet their edges in the workers, never on the driver.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.dedup.minhash import fast_shingle_hashes
from raylm.data.dedup.survivor import id_from_rank

SCORED_SCHEMA = pa.schema([("src", pa.string()), ("dst", pa.string()), ("jaccard", pa.float64())])


def _packed_unique(hv: np.ndarray, offsets: np.ndarray, doc_bits: int) -> np.ndarray:
    """Sorted distinct (doc << (64 - doc_bits)) | (hash >> doc_bits) keys of each doc's shingles.

    Packing doc and hash in one uint64 lets a plain np.sort do the work (lexsort is
    ~10x slower); dropping doc_bits hash bits leaves >= 40 bits for a few thousand
    shingles per doc, so a false match is rarer than 1e-5 per pair.
    """
    doc = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
    keys = np.sort((doc << np.uint64(64 - doc_bits)) | (hv >> np.uint64(doc_bits)))
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    return keys[keep]


def jaccard_pairs(texts_a, texts_b, ngram: int) -> np.ndarray:
    """Exact Jaccard of the shingle sets of texts_a[i] and texts_b[i], shape (N,) float64.

    Vectorised: |A & B| = number of packed (pair, hash) keys present in both unique sets.
    A pair of two shingle-less texts scores 0.
    """
    n = len(texts_a)
    doc_bits = max(1, int(n - 1).bit_length()) if n > 1 else 1
    if doc_bits > 24:
        raise ValueError(f"jaccard_pairs: at most 2^24 pairs per batch, got {n}")
    ka = _packed_unique(*fast_shingle_hashes(texts_a, ngram), doc_bits)
    kb = _packed_unique(*fast_shingle_hashes(texts_b, ngram), doc_bits)
    shift = np.uint64(64 - doc_bits)
    size_a = np.bincount((ka >> shift).astype(np.int64), minlength=n)
    size_b = np.bincount((kb >> shift).astype(np.int64), minlength=n)
    common = np.intersect1d(ka, kb, assume_unique=True)
    inter = np.bincount((common >> shift).astype(np.int64), minlength=n)
    union = size_a + size_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def with_ids(edges: pa.Table, rule: str) -> pa.Table:
    """Add src_id / dst_id (the ids inside the rank strings) for the joins."""
    return edges.append_column("src_id", id_from_rank(edges["src"], rule)).append_column(
        "dst_id", id_from_rank(edges["dst"], rule))


def score(batch: pa.Table, ngram: int, threshold: float) -> pa.Table:
    """(src, dst, jaccard) of rows (src, dst, src_text, dst_text, ...) with jaccard >= threshold."""
    if batch.num_rows == 0:
        return SCORED_SCHEMA.empty_table()
    j = jaccard_pairs(batch["src_text"], batch["dst_text"], ngram)
    out = pa.table({"src": batch["src"], "dst": batch["dst"], "jaccard": j}, schema=SCORED_SCHEMA)
    return out.filter(pc.greater_equal(out["jaccard"], threshold))


def run(edges_ds, docs_ds, threshold: float, ngram: int, rule: str, num_partitions: int):
    """Candidate edges (src, dst) of `docs_ds` (id, text) -> verified (src, dst, jaccard)."""
    import functools

    texts = docs_ds.select_columns(["id", "text"])
    e = edges_ds.map_batches(functools.partial(with_ids, rule=rule), batch_format="pyarrow", num_cpus=0.5)
    e = e.join(texts.rename_columns({"id": "src_id", "text": "src_text"}), "inner", num_partitions,
               on=("src_id",))
    e = e.join(texts.rename_columns({"id": "dst_id", "text": "dst_text"}), "inner", num_partitions,
               on=("dst_id",))
    return e.map_batches(functools.partial(score, ngram=ngram, threshold=threshold),
                         batch_format="pyarrow", num_cpus=0.5)
