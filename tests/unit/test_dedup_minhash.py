"""MinHash signatures: datasketch equality (compat mode), fast-mode shingling, LSH params."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

datasketch = pytest.importorskip("datasketch")
from datasketch.lsh import _optimal_param  # noqa: E402

from raylm.data.dedup import kernels  # noqa: E402
from raylm.data.dedup.minhash import (  # noqa: E402
    MinHashConfig,
    band_keys,
    fast_shingle_hashes,
    optimal_param,
    shingles,
    signatures,
    signatures_from_hashes,
)

TEXTS = [
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software",
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND,\nEXPRESS OR IMPLIED",
    "short text",
    "",
    None,
    "Ünïcödé  Straße\u00a0word\u2003more  words\x1cand more here for five",
]


def _datasketch(shingle_list, num_perm, seed, scheme, hashfunc=None):
    kw = {"hashfunc": hashfunc} if hashfunc else {}
    m = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme=scheme, **kw)
    for s in shingle_list:
        m.update(s.encode("utf-8") if hashfunc is None else s)
    return m.hashvalues


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("num_perm,seed,n", [(128, 1, 5), (64, 42, 3)])
def test_sha1_mode_equals_datasketch(scheme, num_perm, seed, n):
    cfg = MinHashConfig(ngram=n, num_perm=num_perm, seed=seed, hash="sha1", scheme=scheme)
    sig, counts = signatures(pa.array(TEXTS, pa.string()), cfg)
    assert sig.shape == (len(TEXTS), num_perm) and sig.dtype == np.uint32
    for i, t in enumerate(TEXTS):
        sh = shingles(t or "", n)
        assert counts[i] == len(sh)
        want = _datasketch(sh, num_perm, seed, scheme)
        np.testing.assert_array_equal(sig[i], want.astype(np.uint32))


def test_fast_mode_equals_datasketch_with_its_hashfunc():
    # Fast mode differs from datasketch only in the base hash of a shingle.
    cfg = MinHashConfig(ngram=2, num_perm=32, seed=3)
    texts = ["a b c d a b", "x y", "one", ""]
    hv, offsets = fast_shingle_hashes(pa.array(texts), 2)
    sig = signatures_from_hashes(hv, offsets, cfg)
    for i, t in enumerate(texts):
        table = dict(zip(shingles(t, 2), hv[offsets[i]:offsets[i + 1]].tolist()))
        want = _datasketch(shingles(t, 2), 32, 3, "affine32", hashfunc=lambda s, table=table: table[s] & 0xFFFFFFFF)
        np.testing.assert_array_equal(sig[i], want)


def test_fast_shingles_match_reference_definition():
    texts = TEXTS[:3] + ["  lead and trail  \n", "a\u3000b\u2028c d e f", "ΑΒΓ δεζ ηθι κλμ νξο πρσ"]
    hv, offsets = fast_shingle_hashes(pa.array(texts), 3)
    for i, t in enumerate(texts):
        sh = shingles(t, 3)
        got = hv[offsets[i]:offsets[i + 1]]
        assert len(got) == len(sh)
        # Equal shingles hash equal, different ones differ (no collisions at this size).
        assert len(set(got.tolist())) == len(set(sh))
    # Same shingle in two docs -> same hash; batching does not change hashes.
    hv1, _ = fast_shingle_hashes(pa.array(["x y z"]), 3)
    hv2, _ = fast_shingle_hashes(pa.array(["q", "x y z"]), 3)
    assert hv1[0] == hv2[-1]


def test_long_tokens_and_chunked_arrays():
    long_word = "x" * 200
    texts = pa.chunked_array([["a " + long_word + " b c", long_word], ["a " + long_word + " b c"]])
    hv, offsets = fast_shingle_hashes(texts, 2)
    assert list(np.diff(offsets)) == [3, 1, 3]
    np.testing.assert_array_equal(hv[0:3], hv[4:7])


EDGE_TEXTS = TEXTS + [
    "  lead and trail  \n", "a\u3000b\u2028c d e f\u205fg\u1680h\u0085i\u202fj k", "ΑΒΓ δεζ ηθι κλμ νξο πρσ",
    "tab\tsep\x0bvt\x0cff\rcr\x1dgs words", "x" * 65 + " tail of a long word doc",  # > 64-byte word
    "y" * 64 + " exactly sixty four", "one", "two words", "a b c d", "\u00e9\u00a0\u00e9", "\u2000\u200a", "z",
]


@pytest.mark.skipif(not kernels.available(), reason="numba not installed")
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_numba_kernels_equal_numpy_reference(monkeypatch, n, scheme):
    """The compiled path and the numpy path give identical shingle hashes and signatures,
    on whitespace edge cases, long words (the kernel hands those docs to numpy), short,
    empty and null docs, sliced (non-zero offset) and chunked arrays."""
    cfg = MinHashConfig(ngram=n, num_perm=64, seed=7, scheme=scheme)
    arr = pa.array(EDGE_TEXTS * 2, pa.large_string())
    inputs = [arr, arr.slice(5), arr.slice(3, 9), pa.chunked_array([arr.slice(0, 4), arr.slice(4)])]
    compiled = [(fast_shingle_hashes(x, n), signatures(x, cfg)) for x in inputs]
    monkeypatch.setattr(kernels, "available", lambda: False)
    for x, ((hv, offs), (sig, counts)) in zip(inputs, compiled):
        ref_hv, ref_offs = fast_shingle_hashes(x, n)
        np.testing.assert_array_equal(hv, ref_hv)
        np.testing.assert_array_equal(offs, ref_offs)
        ref_sig, ref_counts = signatures(x, cfg)
        np.testing.assert_array_equal(sig, ref_sig)
        np.testing.assert_array_equal(counts, ref_counts)
    assert (counts > 0).sum() > 5 and (sig != np.uint32(0xFFFFFFFF)).any()


def test_jaccard_estimate_is_close():
    words = [f"w{i}" for i in range(400)]
    a = " ".join(words)
    b = " ".join(words[:300] + [f"v{i}" for i in range(100)])
    true_j = len(set(shingles(a, 5)) & set(shingles(b, 5))) / len(set(shingles(a, 5)) | set(shingles(b, 5)))
    sig, _ = signatures(pa.array([a, b]), MinHashConfig(num_perm=512))
    est = float(np.mean(sig[0] == sig[1]))
    assert abs(est - true_j) < 0.07


@pytest.mark.parametrize("threshold,num_perm", [(0.8, 128), (0.5, 256), (0.9, 64)])
def test_optimal_param_matches_datasketch(threshold, num_perm):
    assert optimal_param(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_band_keys_equal_iff_band_equal():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 4], [7, 2, 3, 4]], dtype=np.uint32)
    keys = band_keys(sig, bands=2, rows=2)
    assert keys.shape == (3, 2) and keys.dtype == np.int64
    assert keys[0, 0] == keys[1, 0] and keys[0, 1] != keys[1, 1]
    assert keys[0, 0] != keys[2, 0] and keys[0, 1] == keys[2, 1]
    # The band index is part of the key: equal values in different bands differ.
    assert band_keys(np.array([[5, 5]], np.uint32), 2, 1)[0, 0] != band_keys(np.array([[5, 5]], np.uint32), 2, 1)[0, 1]
    with pytest.raises(ValueError):
        band_keys(sig, bands=3, rows=2)


def test_config_checks():
    with pytest.raises(ValueError, match="ngram"):
        MinHashConfig(ngram=0)
    with pytest.raises(ValueError, match="num_perm"):
        MinHashConfig(num_perm=0)
    with pytest.raises(ValueError, match="hash"):
        MinHashConfig(hash="md5")
