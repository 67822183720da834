"""MinHash LSH as a shuffle: band keys -> buckets -> candidate edges, never all-pairs.

Every document with at least one shingle contributes one row per band
(key = hash of the band's values, rank). Rows are hash-partitioned by key with Ray Data,
so each bucket is seen by one task, which emits within-bucket edges vectorised:
all pairs for buckets of at most `all_pairs_max_bucket` members (good recall when
candidates are verified), else a star from the best-ranked member to the others
(O(bucket) edges and memory however large the bucket). Edges are (src, dst) rank
strings with src < dst, de-duplicated by a second shuffle on src.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.dedup.minhash import optimal_param, string_hashes

BUCKET_SCHEMA = pa.schema([("key", pa.int64()), ("rank", pa.string()), ("part", pa.int64())])
EDGE_SCHEMA = pa.schema([("src", pa.string()), ("dst", pa.string())])


@dataclass
class LSHConfig:
    threshold: float = 0.7            # Jaccard the bands/rows are tuned for (datasketch _optimal_param);
                                      # below the decision threshold so verification keeps recall
    fp_weight: float = 0.5            # weight of false positives when tuning bands/rows
    fn_weight: float = 0.5            # weight of false negatives when tuning bands/rows
    bands: int = 0                    # bands; 0 = derive from threshold
    rows: int = 0                     # rows per band; 0 = derive from threshold
    all_pairs_max_bucket: int = 16    # buckets up to this size emit all pairs, larger a star

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"lsh.threshold must be in (0, 1], got {self.threshold}")
        if (self.bands > 0) != (self.rows > 0):
            raise ValueError("lsh.bands and lsh.rows must be set together (or both 0 to derive them)")
        if self.all_pairs_max_bucket < 2:
            raise ValueError(f"lsh.all_pairs_max_bucket must be >= 2, got {self.all_pairs_max_bucket}")

    def params(self, num_perm: int) -> tuple[int, int]:
        """(bands, rows) for signatures of length num_perm."""
        if self.bands:
            if self.bands * self.rows > num_perm:
                raise ValueError(f"lsh.bands * lsh.rows = {self.bands * self.rows} > num_perm = {num_perm}")
            return self.bands, self.rows
        return optimal_param(self.threshold, num_perm, self.fp_weight, self.fn_weight)


def bucket_rows(sigs: pa.Table, bands: int, rows: int, num_partitions: int) -> pa.Table:
    """Explode signatures (rank, minhash fixed_size_list<uint32>, n_shingles) to band rows.

    Output (key, rank, part), N_nonempty * bands rows; docs without shingles are skipped
    (their signature is all 2^32-1 and would collide with every other empty doc).
    """
    from raylm.data.dedup.minhash import band_keys

    sigs = sigs.filter(pc.greater(sigs["n_shingles"], 0))
    n = sigs.num_rows
    if n == 0:
        return BUCKET_SCHEMA.empty_table()
    flat = pc.list_flatten(sigs["minhash"]).to_numpy(zero_copy_only=False).astype(np.uint32)
    sig = flat.reshape(n, -1)
    keys = band_keys(sig, bands, rows).ravel()                      # (n * bands,) row-major
    rank = sigs["rank"].combine_chunks().take(pa.array(np.repeat(np.arange(n), bands)))
    part = (keys.view(np.uint64) % np.uint64(num_partitions)).astype(np.int64)
    return pa.table({"key": keys, "rank": rank, "part": part}, schema=BUCKET_SCHEMA)


def bucket_edges(group: pa.Table, all_pairs_max_bucket: int) -> pa.Table:
    """Edges of every bucket in `group` (rows (key, rank[, part]) holding whole buckets)."""
    if group.num_rows < 2:
        return EDGE_SCHEMA.empty_table()
    t = group.select(["key", "rank"]).sort_by([("key", "ascending"), ("rank", "ascending")])
    keys = t["key"].to_numpy()
    rank = t["rank"].combine_chunks()
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(keys)]]))
    src_idx, dst_idx = [], []
    # Small buckets: all pairs i < j, one vectorised block per distinct size.
    for s in np.unique(sizes[(sizes >= 2) & (sizes <= all_pairs_max_bucket)]):
        b = starts[sizes == s]
        iu, ju = np.triu_indices(int(s), 1)
        src_idx.append((b[:, None] + iu[None, :]).ravel())
        dst_idx.append((b[:, None] + ju[None, :]).ravel())
    # Large buckets: star from the first (smallest rank) member.
    big = sizes > all_pairs_max_bucket
    if big.any():
        b, s = starts[big], sizes[big]
        rel = np.arange(int((s - 1).sum())) - np.repeat(np.cumsum(s - 1) - (s - 1), s - 1)
        src_idx.append(np.repeat(b, s - 1))
        dst_idx.append(np.repeat(b, s - 1) + 1 + rel)
    if not src_idx:
        return EDGE_SCHEMA.empty_table()
    src = rank.take(pa.array(np.concatenate(src_idx)))
    dst = rank.take(pa.array(np.concatenate(dst_idx)))
    out = pa.table({"src": src, "dst": dst}, schema=EDGE_SCHEMA)
    out = out.filter(pc.not_equal(out["src"], out["dst"]))
    return out.group_by(["src", "dst"], use_threads=False).aggregate([])


def keyed_by_src(edges: pa.Table, num_partitions: int) -> pa.Table:
    part = (string_hashes(edges["src"]) % np.uint64(num_partitions)).astype(np.int64)
    return edges.append_column("part", pa.array(part))


def distinct_edges(group: pa.Table) -> pa.Table:
    return group.select(["src", "dst"]).group_by(["src", "dst"], use_threads=False).aggregate([])


def edges_local(sigs: pa.Table, cfg: LSHConfig, num_perm: int) -> pa.Table:
    """Single-process reference of run(): all candidate edges of one signature table."""
    b, r = cfg.params(num_perm)
    return bucket_edges(bucket_rows(sigs, b, r, 1), cfg.all_pairs_max_bucket)


# ---------------------------------------------------------------- Ray shell

def run(sigs_ds, cfg: LSHConfig, num_perm: int, num_partitions: int = 32):
    """Distinct candidate edges (src, dst), src < dst, of a (rank, minhash, n_shingles) dataset."""
    import functools

    b, r = cfg.params(num_perm)
    p = num_partitions
    rows = sigs_ds.map_batches(functools.partial(bucket_rows, bands=b, rows=r, num_partitions=p),
                               batch_format="pyarrow", num_cpus=0.5)
    edges = rows.groupby("part", num_partitions=p).map_groups(
        functools.partial(bucket_edges, all_pairs_max_bucket=cfg.all_pairs_max_bucket),
        batch_format="pyarrow", num_cpus=0.5)
    return (edges.map_batches(functools.partial(keyed_by_src, num_partitions=p), batch_format="pyarrow",
                              num_cpus=0.5)
            .groupby("part", num_partitions=p)
            .map_groups(distinct_edges, batch_format="pyarrow", num_cpus=0.5))
