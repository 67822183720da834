"""Source mixing (`data.mix`): weight each source's share of the training split by seeded
repetition.

`data.mix: {wiki: 2.0, books: 0.5, crawl: 1}` maps a source (the `source` column: `file`,
`warc`, `crawl`, or a name under `data.ingest.sources`) to a weight `w`. Every kept training
document of that source appears `floor(w)` times, plus once more with probability `w - floor(w)`
(drawn from `seed:id`, so the result does not depend on batches, order or retries): 2.0 doubles
a source, 1.5 repeats half of its documents, 0.5 keeps half, 0 drops it. Sources not named keep
weight 1. Validation documents are never repeated or dropped (the validation loss stays that of
the natural mix), and mixing runs after dedup and the split, so repeats are neither removed as
duplicates nor leaked into validation.

A repeat is a new row with a stable id `sha1(id + "mix" + k)[:20]` and `repeat_of` = the
original id (null on originals); it reaches the shard index, so a repeat can always be told from
a document. Documents a weight below 1 leaves out are marked `mix:downsampled` and counted like
any drop; repeats are counted as the stage's `added` documents in stats.json, and the manifest
lists documents and tokens per source (raylm/data/shards.py).
"""

from __future__ import annotations

import hashlib
import math

import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.schema import kept_mask

REPEAT_OF = "repeat_of"
DOWNSAMPLED = "mix:downsampled"


def check(weights: dict[str, float], sources: list[str]) -> None:
    """`data.mix` against the sources the run reads (ValueError naming the bad entry)."""
    for name, w in weights.items():
        if name not in sources:
            raise ValueError(f"data.mix: {name!r} is not a source of this run; its sources: "
                             f"{', '.join(sources) or 'none (no data.ingest input is set)'}")
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"data.mix.{name}: weight {w} must be a finite number >= 0")
    if weights and all(weights.get(s, 1.0) == 0 for s in sources):
        raise ValueError("data.mix: every source has weight 0, nothing would be trained on")


def copies(doc_id: str, weight: float, seed: int) -> int:
    """How many times a training document of a source with `weight` appears (0 = left out)."""
    whole = math.floor(weight)
    frac = weight - whole
    if frac == 0:
        return whole
    u = int.from_bytes(hashlib.sha1(f"{seed}:mix:{doc_id}".encode()).digest()[:8], "little") / 2**64
    return whole + (1 if u < frac else 0)


def repeat_id(doc_id: str, k: int) -> str:
    return hashlib.sha1(f"{doc_id}\x00mix\x00{k}".encode()).hexdigest()[:20]


def mix(batch: pa.Table, weights: dict[str, float], seed: int) -> pa.Table:
    """The batch with `repeat_of` added, left-out training documents marked, repeats appended."""
    n = batch.num_rows
    train = pc.fill_null(pc.equal(batch["split"], "train"), False) if "split" in batch.column_names \
        else pa.array([True] * n)
    eligible = pc.and_(kept_mask(batch), train).to_pylist()
    ids, sources = batch["id"].to_pylist(), batch["source"].to_pylist()
    drops = batch["drop"].to_pylist()
    take, repeat_of, new_ids = [], [], []
    for i in range(n):
        w = weights.get(sources[i])
        if w is None or not eligible[i]:
            continue
        k = copies(ids[i], w, seed)
        if k == 0:
            drops[i] = DOWNSAMPLED
        for j in range(1, k):
            take.append(i)
            repeat_of.append(ids[i])
            new_ids.append(repeat_id(ids[i], j))
    out = batch.set_column(batch.column_names.index("drop"), "drop", pa.array(drops, pa.string()))
    out = out.append_column(REPEAT_OF, pa.array([None] * n, pa.string()))
    if not take:
        return out
    reps = out.take(pa.array(take, pa.int64()))
    reps = reps.set_column(reps.column_names.index("id"), "id", pa.array(new_ids, pa.string()))
    reps = reps.set_column(reps.column_names.index(REPEAT_OF), REPEAT_OF, pa.array(repeat_of, pa.string()))
    for i, name in enumerate(reps.column_names):  # earlier stages' byte counts are the original's
        if name.startswith("_bytes_"):
            reps = reps.set_column(i, name, pa.array([0] * reps.num_rows, reps.schema.field(i).type))
    return pa.concat_tables([out, reps])


def run(ds, cfg: dict[str, float], ctx=None):
    """Ray Data stage: `mix` on every batch with the weights (data.mix) and the run's seed."""
    return ds.map_batches(mix, fn_args=(dict(cfg), ctx.seed if ctx else 0), batch_format="pyarrow")
