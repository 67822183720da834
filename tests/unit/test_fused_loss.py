"""raylm/model/fused_loss.py: the chunked head + cross-entropy equals the plain path's loss and
gradients, and `train.fused_loss` trains the same, without Ray."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from raylm.model.fused_loss import chunk_rows, linear_cross_entropy
from raylm.model.gpt import GPT, GPTConfig
from raylm.train import lora
from raylm.train.config import ScheduleConfig, TrainConfig
from raylm.train.loop import LMRun, train_worker
from raylm.train.lora import LoraConfig
from raylm.train.session import LocalSession


def plain(h, w, t):
    return F.cross_entropy(F.linear(h, w).float().view(-1, w.shape[0]), t.reshape(-1), ignore_index=-1)


def loss_and_grads(fn, h, w, t, scale=1.0):
    h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fn(h, w, t)
    (loss * scale).backward()
    return loss.detach(), h.grad, w.grad


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(4, 50, 16, generator=g), torch.randn(300, 16, generator=g) * 0.3
    t = torch.randint(0, 300, (4, 50), generator=g)
    t[0, :7] = -1  # ignored positions (an encoder's unmasked tokens, padding)
    return h, w, t


def test_chunks_are_a_power_of_two_and_several_here():
    assert chunk_rows(200, 16, 300) == 16  # 19 chunks' worth of rows: 11 -> 16
    assert chunk_rows(16384, 768, 50304) == 256
    assert chunk_rows(3, 768, 100) == 4


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_loss_and_gradients_equal_the_plain_path(data, scale):
    want = loss_and_grads(plain, *data, scale)
    got = loss_and_grads(linear_cross_entropy, *data, scale)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_stays_within_bf16_rounding(data):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = loss_and_grads(plain, *data)
        got = loss_and_grads(linear_cross_entropy, *data)
    torch.testing.assert_close(got[0], want[0], rtol=1e-3, atol=1e-3)
    for a, e in zip(got[1:], want[1:]):
        assert (a - e).abs().max() <= 0.02 * e.abs().max()


def test_without_gradients_only_the_loss_and_all_ignored_is_nan(data):
    h, w, t = data
    with torch.no_grad():
        loss = linear_cross_entropy(h, w.requires_grad_(), t)
    assert loss.grad_fn is None and loss.item() == pytest.approx(plain(h, w, t).item(), rel=1e-6)
    none = torch.full_like(t, -1)
    assert torch.isnan(linear_cross_entropy(h, w, none)) and torch.isnan(plain(h, w, none))


@pytest.mark.parametrize("arch", ["decoder", "encoder"])
def test_gpt_with_fused_loss_matches_its_logits_path(arch):
    torch.manual_seed(0)
    model = GPT(GPTConfig(arch=arch, n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=120))
    x, y = torch.randint(0, 119, (3, 16)), torch.randint(0, 119, (3, 16))
    y[:, ::3] = -1
    res = {}
    for fused in (False, True):
        model.fused_loss = fused
        model.zero_grad(set_to_none=True)
        logits, loss = model(x, y)
        assert (logits is None) == fused
        loss.backward()
        res[fused] = loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()}
    assert res[True][0] == pytest.approx(res[False][0], rel=1e-6)
    for k, g in res[False][1].items():  # wte's gradient: the lookup's and the tied head's
        torch.testing.assert_close(res[True][1][k], g, rtol=1e-4, atol=1e-6)


def test_fused_loss_with_a_lora_adapted_head_is_refused():
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=50))
    lora.add_adapters(model, LoraConfig(r=2, targets=["wte"]))
    model.fused_loss = True
    with pytest.raises(ValueError, match="train.fused_loss needs a plain LM head; with LoRA on wte"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))


def test_training_with_fused_loss_follows_the_same_losses(tiny_shards, tmp_path):
    hist = {}
    for fused in (False, True):
        cfg = TrainConfig(max_steps=6, batch_size=4, eval_interval=6, eval_batches=2, log_interval=1, num_workers=0,
                          fused_loss=fused, schedule=ScheduleConfig(warmup_steps=1))
        session = LocalSession(dir=str(tmp_path / str(fused)), keep=0)
        model = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=0, dropout=0.0)
        train_worker(LMRun(model=model, train=cfg, data_dir=str(tiny_shards), seed=3, out=str(tmp_path / str(fused))),
                     session)
        hist[fused] = [(m["loss"], m.get("val_loss")) for m in session.history]
    assert len(hist[True]) == 6
    assert [a for a, _ in hist[True]] == pytest.approx([a for a, _ in hist[False]], abs=1e-5)
    assert hist[True][-1][1] == pytest.approx(hist[False][-1][1], abs=1e-5)
