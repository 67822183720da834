"""Per-rank sampling of training windows from the token shards; exact, resumable position.

A window is T+1 consecutive tokens inside one shard (inputs = first T, targets = last T).
Epoch e tiles every shard with non-overlapping windows starting at a seeded shift s_e in
[0, T), so successive epochs see different cut points, then visits them in a seeded
pseudo-random order (a Feistel permutation: O(1) memory however many windows there are).
Global sample p of the epoch goes to rank p mod world: within an epoch no window is read
twice and none is skipped, except the tail shorter than one global batch.

The state is (epoch, pos): pos counts global samples consumed this epoch. It is the same on
every rank, so a checkpoint from rank 0 resumes all of them, at any world size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path

import numpy as np
import torch

from raylm.data.shards import open_split


def stable_hash(*parts) -> int:
    """A 64-bit hash of the parts that is the same in every process and run (Python's hash() is not)."""
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def feistel_permute(idx: np.ndarray, n: int, key: int, rounds: int = 4) -> np.ndarray:
    """A bijection of [0, n) applied to `idx` (int64 array), keyed; cycle-walks to stay < n."""
    if n <= 1:
        return idx.copy()
    bits = max(2, int(np.ceil(np.log2(n))))
    bits += bits % 2
    half, mask = bits // 2, (1 << (bits // 2)) - 1
    keys = [(stable_hash(key, r) & 0xFFFFFFFF) for r in range(rounds)]
    out = idx.astype(np.uint64).copy()
    todo = np.ones(len(out), dtype=bool)
    while todo.any():
        x = out[todo]
        left, right = x >> np.uint64(half), x & np.uint64(mask)
        for k in keys:
            f = ((right * np.uint64(0x9E3779B1) + np.uint64(k)) ^ (right >> np.uint64(3))) & np.uint64(mask)
            left, right = right, left ^ f
        x = (left << np.uint64(half)) | right
        out[todo] = x
        todo_idx = np.flatnonzero(todo)
        todo[todo_idx[x < n]] = False
    return out.astype(np.int64)


class TokenWindows:
    """Windows of `block_size + 1` tokens over one split's shards."""

    def __init__(self, data_dir: str | Path, split: str, block_size: int, seed: int = 0):
        self.shards = open_split(data_dir, split)
        self.T, self.seed, self.split = block_size, seed, split
        if self.num_windows(0) == 0 and self.num_windows(1) == 0:
            sizes = ", ".join(str(len(s)) for s in self.shards)
            raise ValueError(f"the {split} split is too small for one sequence of {block_size + 1} tokens "
                             f"(shard sizes: {sizes}): add data or lower model.block_size")

    def _shift(self, epoch: int) -> int:
        return 0 if self.split != "train" else stable_hash(self.seed, "shift", epoch) % self.T

    def _counts(self, epoch: int) -> np.ndarray:
        s = self._shift(epoch)
        return np.array([max(0, (len(sh) - s - 1) // self.T) for sh in self.shards], dtype=np.int64)

    def num_windows(self, epoch: int) -> int:
        return int(self._counts(epoch).sum())

    def places(self, epoch: int, positions: np.ndarray, shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(shard index, start offset in it) of the windows at epoch-local sample positions."""
        counts = self._counts(epoch)
        n = int(counts.sum())
        idx = feistel_permute(positions, n, stable_hash(self.seed, "perm", epoch)) if shuffle else positions
        bounds = np.cumsum(counts)
        shard = np.searchsorted(bounds, idx, side="right")
        local = idx - (bounds[shard] - counts[shard])
        return shard, self._shift(epoch) + local * self.T

    def windows(self, epoch: int, positions: np.ndarray, shuffle: bool = True) -> torch.Tensor:
        """Token windows (len(positions), T+1) as int64 for epoch-local sample positions."""
        shard, starts = self.places(epoch, positions, shuffle)
        out = np.empty((len(shard), self.T + 1), dtype=np.int64)
        for i, (sh, st) in enumerate(zip(shard, starts)):
            out[i] = self.shards[sh][st: st + self.T + 1]
        return torch.from_numpy(out)


class Loader:
    """Yields (x, y) micro-batches for one rank; `state` is the position after the last one taken.

    One background thread reads ahead `prefetch` batches from the memory-mapped shards; the
    state only advances when a batch is consumed, so a checkpoint never skips prefetched data.
    With `mlm` ({seed, vocab, eos_id}: train.objective mlm) x is the window's first T tokens
    masked and y their labels (raylm/train/mlm.py), instead of next-token targets.
    """

    def __init__(self, windows: TokenWindows, batch_size: int, rank: int = 0, world: int = 1,
                 state: dict | None = None, prefetch: int = 2, mlm: dict | None = None):
        self.w, self.B, self.rank, self.world = windows, batch_size, rank, world
        self.mlm = mlm
        self.state = dict(state or {"epoch": 0, "pos": 0})
        self.prefetch = prefetch
        self._q: queue.Queue | None = None

    def _next_pos(self, epoch: int, pos: int) -> tuple[int, int]:
        step = self.B * self.world
        while pos + step > self.w.num_windows(epoch):
            if self.w.num_windows(epoch) < step and pos == 0 and self.w.num_windows(epoch + 1) < step:
                raise ValueError(f"{self.w.split} split has fewer windows than one global batch "
                                 f"({self.B} x {self.world} workers): add data or lower the batch size")
            epoch, pos = epoch + 1, 0
        return epoch, pos

    def batch_at(self, epoch: int, pos: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        epoch, pos = self._next_pos(epoch, pos)
        positions = pos + np.arange(self.B, dtype=np.int64) * self.world + self.rank
        win = self.w.windows(epoch, positions)
        after = {"epoch": epoch, "pos": pos + self.B * self.world}
        if self.mlm:
            shard, start = self.w.places(epoch, positions)
            x, y = masked(win[:, :-1], shard, start, epoch, self.mlm)
            return x, y, after
        return win[:, :-1], win[:, 1:], after

    def _producer(self, epoch, pos):
        try:
            while True:
                item = self.batch_at(epoch, pos)
                self._q.put(item)
                epoch, pos = item[2]["epoch"], item[2]["pos"]
        except Exception as e:  # handed to the consumer, which raises it
            self._q.put(e)

    def __iter__(self):
        return self

    def __next__(self):
        if self.prefetch <= 0:
            x, y, self.state = self.batch_at(self.state["epoch"], self.state["pos"])
            return x, y
        if self._q is None:
            self._q = queue.Queue(maxsize=self.prefetch)
            threading.Thread(target=self._producer, args=(self.state["epoch"], self.state["pos"]),
                             daemon=True).start()
        item = self._q.get()
        if isinstance(item, Exception):
            raise item
        x, y, self.state = item
        return x, y


def masked(tokens: torch.Tensor, shard: np.ndarray, start: np.ndarray, epoch: int, mlm: dict):
    """MLM (inputs, labels) of windows (raylm/train/mlm.py) with the run's mlm settings."""
    from raylm.train import mlm as M

    return M.mask(tokens, shard, start, seed=mlm["seed"], epoch=epoch, vocab=mlm["vocab"], eos_id=mlm["eos_id"])
