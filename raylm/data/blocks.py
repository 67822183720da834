"""Block and partition counts sized from the data and the cluster, not from the number of files.

Ray Data runs one task per block in every map and one shuffle task per block in every
groupby and join. A corpus of many small files read one task per file (728 SPDX licence texts,
2.4 MB in all) became 728 blocks; each dedup shuffle then queued 728 one-CPU shuffle tasks and up
to 32 partitions, and on a 2-CPU machine the joins' aggregator actors waited for CPUs that the
queued shuffle tasks held: a run of minutes, or a stall, and over 100 worker processes. Here:

- `read_tasks`: how many read tasks to make for `n` input files: about four per cluster CPU
  (enough to balance uneven files), never more than the files, and at least one per
  `FILES_PER_TASK` files so a huge listing still streams.
- `coalesce`: a materialised dataset with more blocks than its size needs is merged into fewer
  (order kept, no shuffle): at least one block per `TARGET_BLOCK_BYTES`, about two per CPU.
- `partitions`: a shuffle's partitions, at most the configured number, at least one per
  `PARTITION_BYTES` of input (a partition of a few kilobytes costs a task and an aggregator's
  bookkeeping and buys nothing).

None of this changes results: dedup's steps group by key, shards order documents by id.
"""

from __future__ import annotations

import math

FILES_PER_TASK = 64                   # a read task takes at most this many files (above 4/CPU)
TARGET_BLOCK_BYTES = 64 * 1024 ** 2   # coalesce: one block per this many bytes at least
PARTITION_BYTES = 16 * 1024 ** 2      # shuffles: one partition per this many input bytes at least


def cluster_cpus() -> int:
    """CPUs of the Ray cluster this process is connected to (1 when none are reported)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def read_tasks(n_files: int, cpus: int) -> int:
    """Read tasks for `n_files` input files on a cluster of `cpus` CPUs (>= 1 when there are files)."""
    if n_files <= 0:
        return 1
    return min(n_files, max(4 * cpus, math.ceil(n_files / FILES_PER_TASK)))


def block_target(num_blocks: int, size_bytes: int, cpus: int) -> int:
    """How many blocks a dataset of `num_blocks` blocks and `size_bytes` bytes should have."""
    want = max(2 * cpus, math.ceil(size_bytes / TARGET_BLOCK_BYTES))
    return max(1, min(num_blocks, want))


def partitions(configured: int, size_bytes: int) -> int:
    """Partitions of a shuffle over `size_bytes` of input: the configured number, fewer for small
    inputs (one per PARTITION_BYTES, at least one)."""
    return max(1, min(configured, math.ceil(size_bytes / PARTITION_BYTES)))


def coalesce(ds):
    """A materialised dataset with no more blocks than its size and the cluster need (see
    `block_target`); row order kept. Returns `ds` itself when it is already small enough."""
    n = ds.num_blocks()
    target = block_target(n, ds.size_bytes() or 0, cluster_cpus())
    if target >= n:
        return ds
    return ds.repartition(target, shuffle=False).materialize()
