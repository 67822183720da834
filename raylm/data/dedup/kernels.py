"""Compiled (numba) kernels for the "fast" MinHash path: one pass over a batch's bytes.

The numpy path in minhash.py (`fast_shingle_hashes` + `signatures_from_hashes`) is the
reference definition; these kernels compute exactly the same values, fused:

    bytes -> whitespace tokens -> word hashes -> n-gram shingle hashes -> permutations -> min

so no (num_perm x shingles) matrix and no per-token arrays are materialised, and a
document's signature stays in registers/L1 while its shingles stream past. The numpy path
spends most of its time on many passes over the batch (tokenising, gathers, n-gram sums);
here each byte is read about twice. See benchmarks/minhash_speed.py for both.

Tokens longer than 64 bytes take a blake2b hash in the reference (rare: URLs, base64);
numba has no blake2b, so a document holding one is flagged and the caller computes it with
the numpy path. Numba is a hard dependency; `available()` is False only if it fails to
import (the numpy path is then used everywhere, same values, ~2x slower).
"""

from __future__ import annotations

import numpy as np

try:  # pragma: no cover - exercised by whichever branch the environment has
    import numba as _nb
except Exception:  # noqa: BLE001 - any import failure means "use numpy"
    _nb = None

_U64 = np.uint64
_LEN_MIX = _U64(0x9E3779B97F4A7C15)
_ONES = _U64(0xFFFFFFFFFFFFFFFF)
_MASK32 = _U64(0xFFFFFFFF)
_MERSENNE = _U64((1 << 61) - 1)
_LONG_WORD = 64


def available() -> bool:
    return _nb is not None


if _nb is not None:
    _jit = _nb.njit(cache=True, nogil=True, boundscheck=False)
    _inline = _nb.njit(cache=True, nogil=True, boundscheck=False)

    @_inline
    def _fmix64(h):
        h ^= h >> _U64(33)
        h *= _U64(0xFF51AFD7ED558CCD)
        h ^= h >> _U64(33)
        h *= _U64(0xC4CEB9FE1A85EC53)
        h ^= h >> _U64(33)
        return h

    @_inline
    def _fmix32(h):
        # h: uint64 holding a 32-bit value; the arithmetic is done mod 2^32.
        h ^= h >> _U64(16)
        h = (h * _U64(0x85EBCA6B)) & _MASK32
        h ^= h >> _U64(13)
        h = (h * _U64(0xC2B2AE35)) & _MASK32
        h ^= h >> _U64(16)
        return h

    @_inline
    def _load8(data, pos):
        """Little-endian 8-byte load at data[pos] (the caller pads `data` with 8 zero bytes).
        No bounds branch here: with one, LLVM stops merging the byte loads (8x slower)."""
        v = _U64(0)
        for i in range(8):
            v |= _U64(data[pos + i]) << _U64(8 * i)
        return v

    @_jit
    def _ws_multi(data, i, end):
        """Bytes of the multi-byte str.split() whitespace character at data[i], else 0
        (U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
        Called only for bytes >= 0x80: ASCII is tested inline (a call per byte is 10x slower)."""
        c = data[i]
        if c == 0xC2:
            if i + 1 < end and (data[i + 1] == 0x85 or data[i + 1] == 0xA0):
                return 2
        elif c == 0xE1:
            if i + 2 < end and data[i + 1] == 0x9A and data[i + 2] == 0x80:
                return 3
        elif c == 0xE2:
            if i + 2 < end:
                c1 = data[i + 1]
                c2 = data[i + 2]
                if c1 == 0x80 and ((c2 >= 0x80 and c2 <= 0x8A) or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF):
                    return 3
                if c1 == 0x81 and c2 == 0x9F:
                    return 3
        elif c == 0xE3:
            if i + 2 < end and data[i + 1] == 0x80 and data[i + 2] == 0x80:
                return 3
        return 0

    @_inline
    def _word_hash(data, start, length, gram_mult):
        nb = min(length, 8)
        first = _load8(data, start) & (_ONES >> _U64((8 - nb) * 8))
        h = _fmix64(_U64(length) * _LEN_MIX ^ first * gram_mult[0])
        k = 1
        while 8 * k < length:
            rem = length - 8 * k
            nb = min(rem, 8)
            chunk = _load8(data, start + 8 * k) & (_ONES >> _U64((8 - nb) * 8))
            h = _fmix64(h ^ chunk * gram_mult[k])
            k += 1
        return h

    @_inline
    def _doc_words(data, s, e, ws, gram_mult, w):
        """Fill w with the word hashes of data[s:e]; return the count, or -1 if a word
        is longer than _LONG_WORD bytes (the caller falls back to the numpy path)."""
        t = 0
        i = s
        while i < e:
            c = data[i]
            if c < 0x80:
                if ws[c]:
                    i += 1
                    continue
            else:
                wl = _ws_multi(data, i, e)
                if wl:
                    i += wl
                    continue
            j = i + 1
            while j < e:
                c = data[j]
                if c < 0x80:
                    if ws[c]:
                        break
                elif _ws_multi(data, j, e):
                    break
                j += 1
            if j - i > _LONG_WORD:
                return -1
            w[t] = _word_hash(data, i, j - i, gram_mult)
            t += 1
            i = j
        return t

    @_inline
    def _shingle(w, t0, k_end, gram_mult):
        acc = _U64(0)
        for k in range(k_end):
            acc += w[t0 + k] * gram_mult[k]
        return _fmix64(acc)

    @_jit
    def shingle_hashes_kernel(data, offs, n, ws, gram_mult):
        """(hashes (S,), offsets (N+1,), long (N,) bool) for lowercased UTF-8 `data`
        (padded with 8 zero bytes) split into docs by `offs`. Docs flagged long get no hashes."""
        n_docs = len(offs) - 1
        max_len = 0
        total_cap = 0
        for d in range(n_docs):
            ln = offs[d + 1] - offs[d]
            max_len = max(max_len, ln)
            total_cap += ln // 2 + 1
        w = np.empty(max_len // 2 + 2, dtype=np.uint64)
        out = np.empty(total_cap, dtype=np.uint64)
        offsets = np.zeros(n_docs + 1, dtype=np.int64)
        long = np.zeros(n_docs, dtype=np.bool_)
        o = 0
        for d in range(n_docs):
            t = _doc_words(data, offs[d], offs[d + 1], ws, gram_mult, w)
            if t < 0:
                long[d] = True
            elif t >= n:
                for t0 in range(t - n + 1):
                    out[o] = _shingle(w, t0, n, gram_mult)
                    o += 1
            elif t > 0:
                out[o] = _shingle(w, 0, t, gram_mult)
                o += 1
            offsets[d + 1] = o
        return out[:o].copy(), offsets, long

    @_jit
    def signatures_kernel(data, offs, n, ws, gram_mult, a, b, legacy):
        """(signatures (N, P) uint32, shingle counts (N,), long (N,) bool): the fused path,
        on the same inputs as shingle_hashes_kernel.

        affine32: h32 = fmix32(low 32 bits of the shingle hash); a*h32 + b mod 2^32.
        legacy:   ((a * (h & 0xFFFFFFFF) + b) mod 2^64) mod (2^61 - 1), low 32 bits.
        """
        n_docs = len(offs) - 1
        p = len(a)
        max_len = 0
        for d in range(n_docs):
            max_len = max(max_len, offs[d + 1] - offs[d])
        w = np.empty(max_len // 2 + 2, dtype=np.uint64)
        sig = np.full((n_docs, p), np.uint32(0xFFFFFFFF), dtype=np.uint32)
        counts = np.zeros(n_docs, dtype=np.int64)
        long = np.zeros(n_docs, dtype=np.bool_)
        a32 = a.astype(np.uint32)
        b32 = b.astype(np.uint32)
        mins = np.empty(p, dtype=np.uint32)
        for d in range(n_docs):
            t = _doc_words(data, offs[d], offs[d + 1], ws, gram_mult, w)
            if t < 0:
                long[d] = True
                continue
            if t == 0:
                continue
            n_sh = t - n + 1 if t >= n else 1
            k_end = n if t >= n else t
            mins[:] = np.uint32(0xFFFFFFFF)
            for t0 in range(n_sh):
                hv = _shingle(w, t0, k_end, gram_mult)
                if legacy:
                    h = hv & _MASK32
                    for j in range(p):
                        v = np.uint32(((a[j] * h + b[j]) % _MERSENNE) & _MASK32)
                        if v < mins[j]:
                            mins[j] = v
                else:
                    h32 = np.uint32(_fmix32(hv & _MASK32))
                    for j in range(p):
                        v = a32[j] * h32 + b32[j]
                        mins[j] = min(mins[j], np.uint32(v))
            sig[d, :] = mins
            counts[d] = n_sh
        return sig, counts, long
