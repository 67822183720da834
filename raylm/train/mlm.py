"""Masked-language-model inputs (BERT, Devlin et al. 2019): 15% of the tokens are chosen; of
those, 80% become the mask token, 10% a random token, 10% stay; the model predicts the chosen
tokens' originals (labels; -1 elsewhere, ignored by the loss).

Every draw is a hash of (seed, epoch, shard, the token's offset in the shard), not of a running
generator: a token of a document is masked the same way whichever window, batch, rank or world
size reads it, so a resumed run masks exactly as an uninterrupted one, and a new epoch masks
anew (RoBERTa's dynamic masking). Document separators (EOS) are never chosen, as BERT never
masks its special tokens. The mask token is one id past the tokenizer's vocabulary
(`mask_id(vocab)`): an encoder's embedding has one row more than its tokenizer.
"""

from __future__ import annotations

import numpy as np
import torch

RATE, TO_MASK, TO_RANDOM = 0.15, 0.8, 0.1  # BERT's 15% / 80-10-10


def mask_id(tokenizer_vocab: int) -> int:
    """The mask token of an encoder over a tokenizer of `tokenizer_vocab` ids."""
    return tokenizer_vocab


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array: a well-spread 64-bit hash, vectorised."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def draws(seed: int, epoch: int, shard: np.ndarray, offsets: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) per token: hash of (seed, epoch, shard, offset, stream); shapes of `offsets`."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64((seed * 1_000_003 + epoch * 7919 + stream) & 0xFFFFFFFFFFFFFFFF))
        h = _mix(key ^ _mix(shard.astype(np.uint64)[..., None] * np.uint64(0x9E3779B97F4A7C15)
                            + offsets.astype(np.uint64)))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def mask(tokens: torch.Tensor, shard: np.ndarray, start: np.ndarray, *, seed: int, epoch: int, vocab: int,
         eos_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for windows `tokens` (B, T) that start at `start` (B,) in shards `shard`
    (B,); `vocab` is the tokenizer's (random replacements are drawn from it; the mask id is
    `mask_id(vocab)`)."""
    B, T = tokens.shape
    offsets = start.astype(np.int64)[:, None] + np.arange(T, dtype=np.int64)[None, :]
    chosen = draws(seed, epoch, shard, offsets, 0) < RATE
    if eos_id is not None:
        chosen &= tokens.numpy() != eos_id
    how = draws(seed, epoch, shard, offsets, 1)
    random_ids = (draws(seed, epoch, shard, offsets, 2) * vocab).astype(np.int64)
    x = tokens.numpy().copy()
    labels = np.where(chosen, x, -1)
    x = np.where(chosen & (how < TO_MASK), mask_id(vocab), x)
    x = np.where(chosen & (how >= TO_MASK) & (how < TO_MASK + TO_RANDOM), random_ids, x)
    return torch.from_numpy(x), torch.from_numpy(labels)
