"""Which member of a duplicate group survives: encoded in a sortable `rank` string.

rank = fixed-width prefix + id, so that the smallest rank in a group is its survivor
under the rule and every later step (exact groups, LSH star edges, connected
components by minimum label) only ever takes a string minimum:

- "min_id":  prefix ""                                  (first seen = smallest id)
- "longest": prefix = hex(2^63 - 1 - utf8 bytes)         (longest text; ties by id)
- "score":   prefix = order-preserving hex of -score    (highest score; null = worst)

Exact and near dedup use the same ranks, so a near-dup cluster's survivor is never a
row that exact dedup dropped (its exact survivor ranks at least as well).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SurvivorRule = Literal["min_id", "longest", "score"]
PREFIX_WIDTH = {"min_id": 0, "longest": 16, "score": 16}


def _hex16(values: np.ndarray) -> list[str]:
    return [f"{int(v):016x}" for v in values]


def rank_keys(table: pa.Table, rule: str, score_column: str = "") -> pa.Array:
    """Rank string per row of `table` (needs `id`; `text` for longest; the score column)."""
    ids = table["id"].combine_chunks() if isinstance(table["id"], pa.ChunkedArray) else table["id"]
    ids = ids.cast(pa.string())
    if rule == "min_id":
        return ids
    if rule == "longest":
        nbytes = pc.fill_null(pc.binary_length(table["text"]), 0).to_numpy(zero_copy_only=False)
        prefix = _hex16((np.int64(2**63 - 1) - nbytes.astype(np.int64)).astype(np.uint64))
    elif rule == "score":
        if score_column not in table.column_names:
            raise ValueError(f"survivor rule 'score' needs column {score_column!r}; have {table.column_names}")
        score = pc.fill_null(table[score_column].cast(pa.float64()), -np.inf).to_numpy(zero_copy_only=False)
        bits = (-score.astype(np.float64)).view(np.uint64)
        # IEEE-754 -> unsigned order: flip all bits of negatives, set the sign bit of the rest.
        key = np.where(bits >> np.uint64(63) == 1, ~bits, bits | np.uint64(1 << 63))
        prefix = _hex16(key)
    else:
        raise ValueError(f"unknown survivor rule {rule!r}; valid: min_id, longest, score")
    return pc.binary_join_element_wise(pa.array(prefix, pa.string()), ids, "")


def id_from_rank(ranks: pa.Array | pa.ChunkedArray, rule: str | int) -> pa.Array:
    """Inverse of rank_keys: strip the fixed-width prefix (of `rule`, or `rule` characters)."""
    width = rule if isinstance(rule, int) else PREFIX_WIDTH[rule]
    return ranks if width == 0 else pc.utf8_slice_codeunits(ranks, width)
