"""Incremental near-dup dedup: index a new batch against the signatures of earlier runs.

An earlier run's `<workdir>/signatures` (id, rank, minhash, n_shingles) is read, not
recomputed. Earlier documents always outrank new ones (rank prefix "0" vs "1"), so a new
document in a cluster with an earlier one is the one dropped, and earlier documents are
never marked (they are not in this run's dataset). Pairs of two earlier documents are
left out of the candidate edges (they were settled by their own run).

Verification: a pair of two new documents is checked by exact Jaccard of their texts;
a pair with an earlier document, whose text this run does not have, by the MinHash
estimate (share of equal signature values, std ~ sqrt(J(1-J)/num_perm): about 0.035 at
J = 0.8 with 128 permutations).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from raylm import storage
from raylm.data.dedup.verify import SCORED_SCHEMA

OLD, NEW = "0", "1"


def prefixed(sigs: pa.Table, tag: str) -> pa.Table:
    """Signature rows with `tag` prepended to the rank (OLD for earlier runs, NEW for this one)."""
    rank = pc.binary_join_element_wise(pa.array([tag] * sigs.num_rows, pa.string()),
                                       sigs["rank"].cast(pa.string()), "")
    return sigs.set_column(sigs.column_names.index("rank"), "rank", rank)


def without_old_pairs(edges: pa.Table) -> pa.Table:
    both_old = pc.and_(pc.starts_with(edges["src"], OLD), pc.starts_with(edges["dst"], OLD))
    return edges.filter(pc.invert(both_old))


def is_new_pair(edges: pa.Table) -> pa.Array:
    return pc.and_(pc.starts_with(edges["src"], NEW), pc.starts_with(edges["dst"], NEW))


def only_new(edges: pa.Table, keep_new: bool) -> pa.Table:
    mask = is_new_pair(edges)
    return edges.filter(mask if keep_new else pc.invert(mask))


def estimate(batch: pa.Table, threshold: float) -> pa.Table:
    """(src, dst, jaccard) from rows (src, dst, src_minhash, dst_minhash), estimate >= threshold."""
    if batch.num_rows == 0:
        return SCORED_SCHEMA.empty_table()
    a = pc.list_flatten(batch["src_minhash"]).to_numpy(zero_copy_only=False).reshape(batch.num_rows, -1)
    b = pc.list_flatten(batch["dst_minhash"]).to_numpy(zero_copy_only=False).reshape(batch.num_rows, -1)
    j = (a == b).mean(axis=1)
    out = pa.table({"src": batch["src"], "dst": batch["dst"], "jaccard": j}, schema=SCORED_SCHEMA)
    return out.filter(pc.greater_equal(out["jaccard"], threshold))


def check_previous(previous: list[str], minhash: dict, survivor: str) -> None:
    """Each earlier workdir (a local path or an object-store URI) must hold finished signatures
    made with the same MinHash and rule."""
    for prev in previous:
        try:
            finished = storage.is_file(storage.join(prev, "signatures", "_DONE"))
            old = json.loads(storage.read_text(storage.join(prev, "config.json"))) if finished else None
        except FileNotFoundError:
            old = None
        except OSError as e:
            raise storage.access_error("data.dedup.previous", prev, e) from None
        if old is None:
            raise ValueError(f"dedup.previous: {prev} has no finished signatures/ step (and config.json)")
        if old.get("minhash") != minhash or old.get("survivor") != survivor:
            raise ValueError(f"dedup.previous: {prev} was made with minhash={old.get('minhash')}, "
                             f"survivor={old.get('survivor')!r}; this run has minhash={minhash}, "
                             f"survivor={survivor!r}: signatures are not comparable")


# ---------------------------------------------------------------- Ray shell

def lsh_input(sigs_ds, previous: list[str], sig_schema: pa.Schema):
    """This run's signatures tagged NEW, unioned with the earlier runs' tagged OLD."""
    import functools

    from raylm.data.dedup.stage import read_step

    out = sigs_ds.map_batches(functools.partial(prefixed, tag=NEW), batch_format="pyarrow", num_cpus=0.5)
    for prev in previous:  # local or object store, as the earlier run wrote it
        old = read_step(prev, "signatures", sig_schema)
        out = out.union(old.map_batches(functools.partial(prefixed, tag=OLD), batch_format="pyarrow", num_cpus=0.5))
    return out


def verify_run(cands, docs_ds, all_sigs, threshold: float, ngram: int, width: int, num_partitions: int):
    """Verified (src, dst, jaccard): texts for new-new pairs, signature estimate otherwise.

    The two branches run one after the other (materialised): run side by side, their
    join aggregators held all CPUs of a 2-CPU Ray and the map tasks waited forever.
    """
    import functools

    from raylm.data.dedup import verify

    import ray

    empty = ray.data.from_arrow(SCORED_SCHEMA.empty_table())
    # Either kind of pair may be absent (a new batch that only repeats earlier documents has no
    # new-new pair); Ray Data never calls a batch function on an empty dataset's blocks, so the
    # columns a join needs would be missing: an absent kind is skipped, not joined.
    new = cands.map_batches(functools.partial(only_new, keep_new=True), batch_format="pyarrow",
                            num_cpus=0.5).materialize()
    mixed = cands.map_batches(functools.partial(only_new, keep_new=False), batch_format="pyarrow",
                              num_cpus=0.5).materialize()
    exact = verify.run(new, docs_ds, threshold, ngram, width, num_partitions).materialize() if new.count() else empty
    if not mixed.count():
        return exact
    sigs = all_sigs.select_columns(["rank", "minhash"])
    mixed = mixed.join(sigs.rename_columns({"rank": "src", "minhash": "src_minhash"}), "inner",
                       num_partitions, on=("src",))
    mixed = mixed.join(sigs.rename_columns({"rank": "dst", "minhash": "dst_minhash"}), "inner",
                       num_partitions, on=("dst",))
    est = mixed.map_batches(functools.partial(estimate, threshold=threshold), batch_format="pyarrow",
                            num_cpus=0.5).materialize()
    return exact.union(est)
