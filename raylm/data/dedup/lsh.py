"""MinHash LSH as a shuffle: band keys -> buckets -> candidate edges, never all-pairs.

Every document with at least one shingle contributes one row per band
(key = hash of the band's values, rank). Rows are hash-partitioned by key with Ray Data,
so each bucket is seen by one task, which emits within-bucket edges vectorised:
all pairs for buckets of at most `all_pairs_max_bucket` members (good recall when
candidates are verified), else a star from the best-ranked member to the others
(O(bucket) edges and memory however large the bucket). Edges are (src, dst) rank
strings with src < dst, de-duplicated by a second shuffle on src.

Giant buckets (thousands of templated pages sharing a band) would land whole in one
task. With `max_bucket` set, a deterministic sample of the rows (1 doc in `every`, by a
hash of its rank) is counted per key first; keys estimated above max_bucket get a
sub-bucket per row (hash of the rank mod n_sub, folded into the key, so each sub-bucket
goes to its own partition) and one sampled member of the bucket, the anchor, is added to
every sub-bucket. Each sub-bucket's star then reaches the anchor, so the bucket stays one
connected piece while no task holds more than about max_bucket/2 of its rows. Only the
heavy keys (at most rows / max_bucket of them) reach the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.dedup.minhash import band_keys, fmix64, optimal_param, string_hashes

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
    max_bucket: int = 100_000         # buckets estimated above this are split into sub-buckets
                                      # of about max_bucket/2 joined by one anchor member; 0 = never

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"lsh.threshold must be in (0, 1], got {self.threshold}")
        if (self.bands > 0) != (self.rows > 0):
            raise ValueError("lsh.bands and lsh.rows must be set together (or both 0 to derive them)")
        if self.all_pairs_max_bucket < 2:
            raise ValueError(f"lsh.all_pairs_max_bucket must be >= 2, got {self.all_pairs_max_bucket}")
        if self.max_bucket and self.max_bucket < 2 * self.all_pairs_max_bucket:
            raise ValueError(f"lsh.max_bucket must be 0 or >= 2 * lsh.all_pairs_max_bucket "
                             f"({2 * self.all_pairs_max_bucket}), got {self.max_bucket}")

    def params(self, num_perm: int) -> tuple[int, int]:
        """(bands, rows) for signatures of length num_perm."""
        if self.bands:
            if self.bands * self.rows > num_perm:
                raise ValueError(f"lsh.bands * lsh.rows = {self.bands * self.rows} > num_perm = {num_perm}")
            return self.bands, self.rows
        return optimal_param(self.threshold, num_perm, self.fp_weight, self.fn_weight)


def _partition(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """The shuffle partition of each int64 bucket key (every row of a bucket lands in one)."""
    return (keys.view(np.uint64) % np.uint64(num_partitions)).astype(np.int64)


def bucket_rows(sigs: pa.Table, bands: int, rows: int, num_partitions: int) -> pa.Table:
    """Explode signatures (rank, minhash fixed_size_list<uint32>, n_shingles) to band rows.

    Output (key, rank, part), N_nonempty * bands rows; docs without shingles are skipped
    (their signature is all 2^32-1 and would collide with every other empty doc).
    """
    sigs = sigs.filter(pc.greater(sigs["n_shingles"], 0))
    n = sigs.num_rows
    if n == 0:
        return BUCKET_SCHEMA.empty_table()
    flat = pc.list_flatten(sigs["minhash"]).to_numpy(zero_copy_only=False).astype(np.uint32)
    sig = flat.reshape(n, -1)
    keys = band_keys(sig, bands, rows).ravel()                      # (n * bands,) row-major
    rank = sigs["rank"].combine_chunks().take(pa.array(np.repeat(np.arange(n), bands)))
    part = _partition(keys, num_partitions)
    return pa.table({"key": keys, "rank": rank, "part": part}, schema=BUCKET_SCHEMA)


def sample_every(max_bucket: int) -> int:
    """Sampling stride for heavy-bucket detection: ~50 sampled rows in a bucket at the limit."""
    return int(min(64, max(1, max_bucket // 50)))


def sampled_rows(rows: pa.Table, every: int) -> pa.Table:
    """The rows of about 1 doc in `every` (same docs in every band and every run)."""
    if rows.num_rows == 0 or every == 1:
        return rows
    keep = string_hashes(rows["rank"]) % np.uint64(every) == 0
    return rows.filter(pa.array(keep))


def heavy_keys(group: pa.Table, every: int, max_bucket: int) -> pa.Table:
    """(key, n_sub, anchor) of the sampled buckets whose estimated size exceeds max_bucket.

    n_sub splits the bucket into parts of about max_bucket/2; the anchor is the bucket's
    smallest sampled rank (a real member)."""
    out_schema = pa.schema([("key", pa.int64()), ("n_sub", pa.int64()), ("anchor", pa.string())])
    if group.num_rows == 0:
        return out_schema.empty_table()
    agg = group.group_by("key", use_threads=False).aggregate([("rank", "count"), ("rank", "min")])
    est = agg["rank_count"].to_numpy() * every
    heavy = est > max_bucket
    if not heavy.any():
        return out_schema.empty_table()
    n_sub = np.ceil(est[heavy] / (max_bucket / 2)).astype(np.int64)
    return pa.table({"key": agg["key"].filter(pa.array(heavy)), "n_sub": n_sub,
                     "anchor": agg["rank_min"].filter(pa.array(heavy))}, schema=out_schema)


def _sub_keys(keys: np.ndarray, sub: np.ndarray) -> np.ndarray:
    return fmix64(keys.view(np.uint64) ^ (sub.astype(np.uint64) + np.uint64(1)) * np.uint64(0xD6E8FEB86659FD93)
                  ).view(np.int64)


def split_heavy(rows: pa.Table, heavy: pa.Table, num_partitions: int) -> pa.Table:
    """Rows of heavy keys moved to sub-bucket keys (by a hash of the rank), partition redone."""
    if rows.num_rows == 0 or heavy.num_rows == 0:
        return rows
    keys = rows["key"].to_numpy()
    hk = heavy["key"].to_numpy()
    order = np.argsort(hk)
    pos = np.clip(np.searchsorted(hk[order], keys), 0, len(hk) - 1)
    hit = hk[order][pos] == keys
    if not hit.any():
        return rows
    idx = np.flatnonzero(hit)
    n_sub = heavy["n_sub"].to_numpy()[order][pos[idx]]
    sub = (string_hashes(rows["rank"].take(pa.array(idx))) % n_sub.astype(np.uint64)).astype(np.int64)
    keys = keys.copy()
    keys[idx] = _sub_keys(keys[idx], sub)
    part = _partition(keys, num_partitions)
    return pa.table({"key": keys, "rank": rows["rank"], "part": part}, schema=BUCKET_SCHEMA)


def anchor_rows(heavy: pa.Table, num_partitions: int) -> pa.Table:
    """One row per (heavy key, sub-bucket): the bucket's anchor, put in every sub-bucket."""
    n_sub = heavy["n_sub"].to_numpy()
    rep = np.repeat(np.arange(len(n_sub)), n_sub)
    sub = np.arange(int(n_sub.sum())) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)
    keys = _sub_keys(heavy["key"].to_numpy()[rep], sub)
    part = _partition(keys, num_partitions)
    return pa.table({"key": keys, "rank": heavy["anchor"].take(pa.array(rep)), "part": part},
                    schema=BUCKET_SCHEMA)


def split_local(rows: pa.Table, max_bucket: int, num_partitions: int) -> pa.Table:
    """Single-process reference of the heavy-bucket split in run()."""
    every = sample_every(max_bucket)
    heavy = heavy_keys(sampled_rows(rows, every), every, max_bucket)
    if heavy.num_rows == 0:
        return rows
    return pa.concat_tables([split_heavy(rows, heavy, num_partitions), anchor_rows(heavy, num_partitions)])


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

def run(sigs_ds, cfg: LSHConfig, num_perm: int, num_partitions: int = 32, info: dict | None = None):
    """Distinct candidate edges (src, dst), src < dst, of a (rank, minhash, n_shingles) dataset.

    `info`, if given, gets the number of split buckets and sub-buckets."""
    import functools

    import ray

    b, r = cfg.params(num_perm)
    p = num_partitions
    rows = sigs_ds.map_batches(functools.partial(bucket_rows, bands=b, rows=r, num_partitions=p),
                               batch_format="pyarrow", num_cpus=0.5)
    if cfg.max_bucket:
        every = sample_every(cfg.max_bucket)
        heavy_parts = (rows.map_batches(functools.partial(sampled_rows, every=every),
                                        batch_format="pyarrow", num_cpus=0.5)
                       .groupby("part", num_partitions=p)
                       .map_groups(functools.partial(heavy_keys, every=every, max_bucket=cfg.max_bucket),
                                   batch_format="pyarrow", num_cpus=0.5)
                       .to_arrow_refs())
        tables = [t for t in ray.get(heavy_parts) if t.num_rows]
        heavy = pa.concat_tables(tables) if tables else None
        if info is not None:
            info.update(split_buckets=0 if heavy is None else heavy.num_rows,
                        sub_buckets=0 if heavy is None else int(pc.sum(heavy["n_sub"]).as_py()))
        if heavy is not None:
            rows = rows.map_batches(functools.partial(split_heavy, heavy=heavy, num_partitions=p),
                                    batch_format="pyarrow", num_cpus=0.5).union(
                ray.data.from_arrow(anchor_rows(heavy, p)))
    edges = rows.groupby("part", num_partitions=p).map_groups(
        functools.partial(bucket_edges, all_pairs_max_bucket=cfg.all_pairs_max_bucket),
        batch_format="pyarrow", num_cpus=0.5)
    return (edges.map_batches(functools.partial(keyed_by_src, num_partitions=p), batch_format="pyarrow",
                              num_cpus=0.5)
            .groupby("part", num_partitions=p)
            .map_groups(distinct_edges, batch_format="pyarrow", num_cpus=0.5))
