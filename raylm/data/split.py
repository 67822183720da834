"""The train/val split: one step like the cleaning stages, listed in data.steps or placed for you.

Each document goes whole to "train" or "val" by a seeded hash of its id, so the split does not
depend on block boundaries, worker count or order, and a document's near-duplicates removed
earlier cannot leak across it. Where it runs when data.steps does not list it:
raylm/data/pipeline.py `plan`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from raylm.data.config import StageContext


@dataclass
class SplitConfig:
    val_fraction: float = 0.1   # share of documents held out for validation (by document, never split)

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def assign_split(batch: pa.Table, val_fraction: float, seed: int) -> pa.Table:
    """Add `split` ("train" / "val") from a seeded hash of each document id."""
    ids = batch["id"].to_pylist()
    cut = int(val_fraction * 2**64)
    splits = ["val" if int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "little")
              < cut else "train" for i in ids]
    return batch.append_column("split", pa.array(splits, type=pa.string()))


def run(ds, cfg: SplitConfig, ctx: StageContext):
    """Ray Data stage: the run's seed (ctx.seed) keys the hash, so every worker agrees."""
    return ds.map_batches(assign_split, fn_args=(cfg.val_fraction, ctx.seed), batch_format="pyarrow")
