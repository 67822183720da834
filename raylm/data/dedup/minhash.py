"""MinHash signatures over word n-gram shingles, vectorised over Arrow batches.

A document's shingles are the word n-grams of `text.lower().split()` (a document with
fewer than n words is one shingle of all its words; an empty one has none). Each
shingle gets a 32-bit base hash, which is permuted exactly as `datasketch.MinHash` does:

- scheme "affine32" (datasketch >= 2.0 default): h -> fmix32(h); a_k * h + b_k mod 2^32
- scheme "legacy"   (datasketch < 2.0): (a_k * h + b_k) mod (2^61 - 1), low 32 bits

with (a, b) drawn from `np.random.RandomState(seed)` in datasketch's order. So:

- hash="sha1": the base hash is datasketch's `sha1_hash32(shingle.encode())`, and a
  signature equals `datasketch.MinHash(num_perm, seed, scheme=...)` after `update` with
  the same shingles. Slow (one hashlib call per shingle), meant for sharing an index.
- hash="fast" (default): the base hash is a 64-bit polynomial word hash + n-gram mix
  computed with numpy over the whole batch at once (no Python per shingle); the
  signature equals datasketch's with `hashfunc=` that hash. See benchmarks/minhash_speed.py.

Pure numpy/pyarrow: no Ray here.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm.data.dedup import kernels

_MERSENNE = np.uint64((1 << 61) - 1)
_MAX32 = np.uint64((1 << 32) - 1)
_U64 = np.uint64
# Odd 64-bit constants: polynomial base for word bytes, per-position n-gram multipliers.
_POLY = (1 << 40) + 0x1B3 | 1
_POLY_INV = pow(_POLY, -1, 1 << 64)
_LEN_MIX = _U64(0x9E3779B97F4A7C15)
_GRAM_MULT = [_U64((0xC2B2AE3D27D4EB4F * (2 * k + 1)) & ((1 << 64) - 1) | 1) for k in range(64)]
_GRAM_MULT_ARR = np.array(_GRAM_MULT, dtype=np.uint64)
_CHUNK_CELLS = 1 << 21  # shingles x perms computed at once: 2M cells = 8 MB of uint32


@dataclass
class MinHashConfig:
    ngram: int = 5                                      # words per shingle
    num_perm: int = 128                                 # signature length (permutations)
    seed: int = 1                                       # permutation seed, shared by all workers
    hash: Literal["fast", "sha1"] = "fast"              # shingle base hash; sha1 = datasketch default
    scheme: Literal["affine32", "legacy"] = "affine32"  # datasketch permutation scheme

    def __post_init__(self):
        if not 1 <= self.ngram <= 64:
            raise ValueError(f"minhash.ngram must be in 1..64, got {self.ngram}")
        if self.num_perm < 1:
            raise ValueError(f"minhash.num_perm must be >= 1, got {self.num_perm}")
        if self.hash not in ("fast", "sha1"):
            raise ValueError(f"minhash.hash must be 'fast' or 'sha1', got {self.hash!r}")
        if self.scheme not in ("affine32", "legacy"):
            raise ValueError(f"minhash.scheme must be 'affine32' or 'legacy', got {self.scheme!r}")


# ---------------------------------------------------------------- datasketch parameters

@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each shape (num_perm,), drawn exactly as datasketch.MinHash._init_permutations."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        ab = np.array([(gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
                       for _ in range(num_perm)], dtype=np.uint64).T
        return ab[0].copy(), ab[1].copy()
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: an avalanching bijection on uint64 arrays."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def optimal_param(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising fp_weight * P(false pos) + fn_weight * P(false neg).

    Same search and integrals as datasketch.lsh._optimal_param (scipy quad), so the
    result equals MinHashLSH(threshold, num_perm).b, .r. O(num_perm log num_perm) quads.
    """
    from scipy.integrate import quad

    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp, _ = quad(lambda s, r=r, b=b: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)
            fn, _ = quad(lambda s, r=r, b=b: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)
            err = fp * fp_weight + fn * fn_weight
            if err < best:
                best, opt = err, (b, r)
    return opt


# ---------------------------------------------------------------- shingles

def shingles(text: str, n: int) -> list[str]:
    """Word n-grams of `text.lower().split()`, joined by one space (the reference definition)."""
    toks = text.lower().split()
    if not toks:
        return []
    return [" ".join(toks[i:i + n]) for i in range(max(len(toks) - n + 1, 1))]


def sha1_hash32(data: bytes) -> int:
    """datasketch.hashfunc.sha1_hash32: first 4 bytes of SHA-1, little-endian."""
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


def sha1_shingle_hashes(texts: list[str | None], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint64 (S,), offsets int64 (N+1,)): sha1_hash32 of every shingle, per doc."""
    hs: list[int] = []
    offsets = [0]
    for t in texts:
        hs.extend(sha1_hash32(s.encode("utf-8")) for s in shingles(t or "", n))
        offsets.append(len(hs))
    return np.array(hs, dtype=np.uint64), np.array(offsets, dtype=np.int64)


# Bytes Python's str.split() treats as whitespace in ASCII text (\x1c-\x1f included).
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# The other characters str.split() splits on, as UTF-8: U+0085, U+00A0, U+1680,
# U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
_WS_MULTI = [bytes([0xC2, 0x85]), bytes([0xC2, 0xA0]), "\u1680".encode(),
             *[chr(c).encode() for c in range(0x2000, 0x200B)],
             *["\u2028".encode(), "\u2029".encode(), "\u202f".encode(), "\u205f".encode(), "\u3000".encode()]]
_LONG_WORD = 64  # bytes; longer tokens (rare: URLs, base64) are hashed one by one


def _u64_loads(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Little-endian 8-byte loads at arbitrary byte positions `pos` of `data` (padded by 8)."""
    view = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    return view[pos]


def _word_hashes(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """64-bit hash of the byte spans data[start:end] (uint8 `data` padded with 8 zero bytes).

    Words are read 8 bytes at a time with one unaligned gather per 8-byte step (most
    words need one or two), masked to their length, and folded with fmix64.
    """
    length = (end - start).astype(np.int64)
    ones = _U64(0xFFFFFFFFFFFFFFFF)
    # First 8 bytes of every word (bytes past the end masked off), then 8 more for the
    # words that are longer, up to _LONG_WORD.
    nb = np.minimum(length, 8).astype(np.uint64)
    h = fmix64(length.astype(np.uint64) * _LEN_MIX
               ^ (_u64_loads(data, start) & (ones >> (_U64(8) - nb) * _U64(8))) * _GRAM_MULT[0])
    idx = np.flatnonzero((length > 8) & (length <= _LONG_WORD))
    k = 1
    while len(idx):
        rem = length[idx] - 8 * k
        nb = np.minimum(rem, 8).astype(np.uint64)
        chunk = _u64_loads(data, start[idx] + 8 * k) & (ones >> (_U64(8) - nb) * _U64(8))
        h[idx] = fmix64(h[idx] ^ chunk * _GRAM_MULT[k])
        idx = idx[rem > 8]
        k += 1
    for i in np.flatnonzero(length > _LONG_WORD):
        digest = hashlib.blake2b(data[start[i]:end[i]].tobytes(), digest_size=8).digest()
        h[i] = fmix64(np.frombuffer(digest, dtype="<u8") ^ h[i:i + 1])[0]
    return h


def _bytes(texts: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes padded with 8 zero bytes, doc offsets (N+1,) from 0) of `texts`."""
    n = len(texts)
    offs = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset:texts.offset + n + 1]
    buf = texts.buffers()[2]
    raw = np.frombuffer(buf, dtype=np.uint8)[offs[0]:offs[-1]] if buf is not None else np.zeros(0, np.uint8)
    return np.concatenate([raw, np.zeros(8, dtype=np.uint8)]), offs - offs[0]


def _one_chunk(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """One large_string chunk, nulls as ""."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.large_string())
    return pc.fill_null(texts.cast(pa.large_string()), "")


def _lowered(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """Nulls as "", lowercased (ascii_lower for ASCII batches, else utf8_lower), one chunk."""
    texts = _one_chunk(texts)
    if len(texts) == 0:
        return texts
    return pc.ascii_lower(texts) if pc.all(pc.string_is_ascii(texts)).as_py() else pc.utf8_lower(texts)


def _tokens(texts: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(data, token starts, token ends, tokens per doc): whitespace split of lowercased
    UTF-8 `texts` on the same characters as str.split(), done on the bytes in numpy."""
    data, offs = _bytes(texts)
    raw = data[:-8]
    ws = _WS[raw]
    lead = np.flatnonzero(raw >= 0xC2)  # lead bytes of the multi-byte whitespace above
    if len(lead):
        for seq in _WS_MULTI:
            cand = lead[raw[lead] == seq[0]]
            for j in range(1, len(seq)):
                cand = cand[data[cand + j] == seq[j]]
            for j in range(len(seq)):
                ws[cand + j] = True
    word = ~ws
    # A token starts at a word byte whose previous byte is whitespace or in another doc.
    prev = np.concatenate([[False], word[:-1]])
    nxt = np.concatenate([word[1:], [False]])
    inner = offs[1:-1]
    prev[inner[inner < len(raw)]] = False
    nxt[inner[inner > 0] - 1] = False
    starts = np.flatnonzero(word & ~prev)
    ends = np.flatnonzero(word & ~nxt) + 1
    per_doc = np.diff(np.searchsorted(starts, offs))
    return data, starts, ends, per_doc


def fast_shingle_hashes(texts: pa.Array | pa.ChunkedArray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint64 (S,), offsets int64 (N+1,)) for the same shingles as `shingles()`.

    Lowercasing is Arrow's utf8_lower (ascii_lower for ASCII batches; it differs from
    str.lower only in rare contextual cases such as a word-final Greek sigma), splitting
    is done on the UTF-8 bytes on exactly str.split()'s whitespace. Nulls count as "".
    A shingle hash is fmix64(sum_k word_hash[t+k] * M_k) over its n words (order-aware).
    """
    texts = _lowered(texts)
    if len(texts) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(1, dtype=np.int64)
    if kernels.available():
        data, offs = _bytes(texts)
        hv, offsets, long = kernels.shingle_hashes_kernel(data, offs, n, _WS, _GRAM_MULT_ARR)
        if long.any():  # docs with a > 64-byte word: their hashes from the numpy path
            idx = np.flatnonzero(long)
            lhv, loffs = _numpy_shingle_hashes(texts.take(pa.array(idx)), n)
            counts = np.diff(offsets)
            counts[idx] = np.diff(loffs)
            merged = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            out = np.empty(int(merged[-1]), dtype=np.uint64)
            keep = np.flatnonzero(~long)  # kernel hashes: the kept docs' runs, in order
            out[np.repeat(merged[keep] - offsets[keep], counts[keep]) + np.arange(len(hv))] = hv
            lc = np.diff(loffs)
            out[np.repeat(merged[idx] - loffs[:-1], lc) + np.arange(len(lhv))] = lhv
            hv, offsets = out, merged
        return hv, offsets
    return _numpy_shingle_hashes(texts, n)


def _numpy_shingle_hashes(texts: pa.LargeStringArray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """fast_shingle_hashes on already lowercased, null-free `texts`, in numpy (the reference)."""
    data, starts, ends, lens = _tokens(texts)
    w = _word_hashes(data, starts, ends)
    tok_start = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n_sh = np.where(lens > 0, np.maximum(lens - n + 1, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(n_sh)]).astype(np.int64)
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, dtype=np.uint64), offsets
    # Full n-grams: one pass over contiguous slices of all tokens, then keep the
    # windows that start in a doc with >= n tokens and end inside it.
    n_tok = len(w)
    out = np.empty(total, dtype=np.uint64)
    long_docs = lens >= n
    if n_tok >= n and long_docs.any():
        acc = w[:n_tok - n + 1] * _GRAM_MULT[0]
        for k in range(1, n):
            acc += w[k:n_tok - n + 1 + k] * _GRAM_MULT[k]
        ld = np.flatnonzero(long_docs)
        cnt = n_sh[ld]
        rel = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        out[np.repeat(offsets[ld], cnt) + rel] = acc[np.repeat(tok_start[ld], cnt) + rel]
    # Docs with 1..n-1 tokens: one shingle of all their tokens (rare; masked loop).
    sd = np.flatnonzero((lens > 0) & ~long_docs)
    if len(sd):
        acc = np.zeros(len(sd), dtype=np.uint64)
        for k in range(n - 1):
            valid = k < lens[sd]
            acc += np.where(valid, w[np.minimum(tok_start[sd] + k, n_tok - 1)] * _GRAM_MULT[k], _U64(0))
        out[offsets[sd]] = acc
    return fmix64(out), offsets


def shingle_hashes(texts: pa.Array | pa.ChunkedArray, cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """Base hashes per shingle and per-doc offsets, by cfg.hash (sha1 hashes are 32-bit)."""
    if cfg.hash == "sha1":
        return sha1_shingle_hashes(texts.to_pylist(), cfg.ngram)
    return fast_shingle_hashes(texts, cfg.ngram)


# ---------------------------------------------------------------- signatures

def signatures_from_hashes(hv: np.ndarray, offsets: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """(N, num_perm) uint32 signatures from base hashes `hv` (S,) grouped by `offsets` (N+1,).

    Docs with no shingle keep datasketch's empty value 2^32-1 everywhere. Shingles are
    permuted in chunks of ~_CHUNK_CELLS cells so memory stays bounded for huge docs.
    """
    n_docs = len(offsets) - 1
    a, b = permutations(cfg.num_perm, cfg.seed, cfg.scheme)
    sig = np.full((n_docs, cfg.num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    if len(hv) == 0:
        return sig
    counts = np.diff(offsets)
    doc = np.repeat(np.arange(n_docs), counts)
    if cfg.scheme == "affine32":
        h = _fmix32(hv.astype(np.uint32))  # 32-bit base hash, as datasketch's hashfunc returns
    else:
        h = (hv & _MAX32).astype(np.uint64)
    # Layout (num_perm, chunk): the per-doc min is then a reduceat along contiguous rows,
    # and the multiply-add runs in place (about 0.2 ns per cell on one core).
    step = max(1, _CHUNK_CELLS // cfg.num_perm)
    a_col, b_col = a[:, None], b[:, None]
    for c0 in range(0, len(h), step):
        hc, dc = h[None, c0:c0 + step], doc[c0:c0 + step]
        if cfg.scheme == "affine32":
            phv = np.multiply(a_col, hc)                       # (P, chunk) uint32, wraps mod 2^32
            np.add(phv, b_col, out=phv)
        else:
            phv = ((a_col * hc + b_col) % _MERSENNE) & _MAX32  # exactly datasketch's uint64 ops
        seg = np.concatenate([[0], np.flatnonzero(np.diff(dc)) + 1])
        red = np.minimum.reduceat(phv, seg, axis=1).T.astype(np.uint32)
        rows = dc[seg]
        sig[rows] = np.minimum(sig[rows], red)
    return sig


def signatures(texts: pa.Array | pa.ChunkedArray, cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """(signatures (N, num_perm) uint32, shingle counts (N,) int64) for a text column."""
    if cfg.hash == "fast" and kernels.available():
        low = _lowered(texts)
        if len(low) == 0:
            return np.zeros((0, cfg.num_perm), dtype=np.uint32), np.zeros(0, dtype=np.int64)
        a, b = permutations(cfg.num_perm, cfg.seed, cfg.scheme)
        data, offs = _bytes(low)
        sig, counts, long = kernels.signatures_kernel(data, offs, cfg.ngram, _WS, _GRAM_MULT_ARR,
                                                      a, b, cfg.scheme == "legacy")
        if long.any():  # docs with a > 64-byte word: the numpy path (blake2b for those words)
            idx = np.flatnonzero(long)
            hv, loffs = _numpy_shingle_hashes(low.take(pa.array(idx)), cfg.ngram)
            sig[idx] = signatures_from_hashes(hv, loffs, cfg)
            counts[idx] = np.diff(loffs)
        return sig, counts
    hv, offsets = shingle_hashes(texts, cfg)
    return signatures_from_hashes(hv, offsets, cfg), np.diff(offsets)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(N, bands) int64 bucket keys: a 64-bit hash of each band's `rows` values and its index.

    Two docs share a key in band i iff their values there are equal (up to 2^-64 collisions).
    """
    n = sig.shape[0]
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands*rows = {bands * rows} exceeds num_perm = {sig.shape[1]}")
    v = sig[:, :bands * rows].reshape(n, bands, rows).astype(np.uint64)
    acc = np.broadcast_to(np.arange(bands, dtype=np.uint64) * _LEN_MIX, (n, bands)).copy()
    for j in range(rows):
        acc = fmix64(acc ^ (v[:, :, j] * _GRAM_MULT[j % 64] + _U64(j)))
    return acc.view(np.int64)


def string_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Deterministic 64-bit hash of each string (same in every process; nulls hash as "")."""
    arr = _one_chunk(arr)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    data, offs = _bytes(arr)
    return _word_hashes(data, offs[:-1], offs[1:])
