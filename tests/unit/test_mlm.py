"""Masked-language-model inputs (issue 26 item 1): BERT's 15% / 80-10-10, EOS never masked,
every draw tied to the token's place in its shard (so windows, batches and resumes agree)."""

from __future__ import annotations

import numpy as np
import torch

from raylm.train import mlm


def _tokens(B, T, vocab=50, eos=49, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, vocab - 1, (B, T), generator=g)
    t[:, ::17] = eos
    return t


def test_rates_and_labels():
    B, T, V, eos = 64, 256, 50, 49
    tok = _tokens(B, T, V, eos)
    x, y = mlm.mask(tok, np.zeros(B, dtype=np.int64), np.arange(B) * T, seed=1, epoch=0, vocab=V, eos_id=eos)
    chosen = y >= 0
    not_eos = tok != eos
    assert abs(chosen.sum().item() / not_eos.sum().item() - 0.15) < 0.01
    assert not chosen[~not_eos].any()                       # separators are never chosen
    assert torch.equal(y[chosen], tok[chosen]) and (y[~chosen] == -1).all()
    assert torch.equal(x[~chosen], tok[~chosen])           # unchosen tokens untouched
    masked = (x == mlm.mask_id(V)) & chosen
    kept = (x == tok) & chosen
    n = chosen.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.03 and abs(kept.sum().item() / n - 0.1) < 0.03  # (random
    assert x.max().item() == mlm.mask_id(V)  # draws that equal the original count as kept: ~0.1 * 1/V of n)


def test_a_token_is_masked_the_same_in_any_window_and_anew_each_epoch():
    V, eos = 50, 49
    corpus = _tokens(1, 400, V, eos)[0]
    shard = np.array([3])
    a_x, a_y = mlm.mask(corpus[None, 100:228], shard, np.array([100]), seed=5, epoch=2, vocab=V, eos_id=eos)
    b_x, b_y = mlm.mask(corpus[None, 164:292], shard, np.array([164]), seed=5, epoch=2, vocab=V, eos_id=eos)
    assert torch.equal(a_x[0, 64:], b_x[0, :64]) and torch.equal(a_y[0, 64:], b_y[0, :64])  # offsets 164..227
    other_epoch = mlm.mask(corpus[None, 100:228], shard, np.array([100]), seed=5, epoch=3, vocab=V, eos_id=eos)[1]
    other_shard = mlm.mask(corpus[None, 100:228], np.array([4]), np.array([100]), seed=5, epoch=2, vocab=V,
                           eos_id=eos)[1]
    assert not torch.equal(a_y, other_epoch) and not torch.equal(a_y, other_shard)


def test_loader_mlm_batches_resume_exactly(tmp_path):
    import pyarrow as pa

    from raylm.data import shards
    from raylm.data.tokenize import char_tokenizer
    from raylm.train.data import Loader, TokenWindows

    text = "".join(chr(97 + (i * 7) % 26) for i in range(6000))
    docs = pa.table({"id": [f"d{i}" for i in range(30)], "text": [text[i * 200:(i + 1) * 200] for i in range(30)],
                     "split": ["train"] * 27 + ["val"] * 3})
    tok = char_tokenizer(text)
    m = shards.write_local(docs, tok, tmp_path)
    w = TokenWindows(tmp_path, "train", 32, seed=1)
    settings = {"seed": 1, "vocab": tok.get_vocab_size(), "eos_id": m["eos_id"]}
    run = Loader(w, 4, prefetch=0, mlm=settings)
    batches = [next(run) for _ in range(5)]
    resumed = Loader(w, 4, prefetch=0, mlm=settings, state=Loader(w, 4, prefetch=0, mlm=settings).state)
    for _ in range(2):
        next(resumed)
    state = resumed.state
    again = Loader(w, 4, prefetch=0, mlm=settings, state=state)
    for x, y in batches[2:]:
        ax, ay = next(again)
        assert torch.equal(ax, x) and torch.equal(ay, y)
    x, y = batches[0]
    assert x.shape == y.shape == (4, 32) and (y >= 0).any() and (x == mlm.mask_id(settings["vocab"])).any()
