"""raylm/model/linear.py: Linear layers on oneDNN's fp32 kernels equal F.linear, and go there
only when they should."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from raylm.model import linear as L
from raylm.model.gpt import GPT, GPTConfig

needs_onednn = pytest.mark.skipif(not L.AVAILABLE, reason="no oneDNN linear in this torch build / CPU")


@pytest.fixture(autouse=True)
def _restore_backend():
    yield
    L.use("auto")


@pytest.fixture
def calls(monkeypatch):
    """How many products went to oneDNN."""
    seen = []
    real = L._mm

    def counting(x, w):
        seen.append((tuple(x.shape), tuple(w.shape)))
        return real(x, w)

    monkeypatch.setattr(L, "_mm", counting)
    return seen


def grads(fn, x, w, b):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    b = None if b is None else b.clone().requires_grad_()
    y = fn(x, w, b)
    y.backward(torch.linspace(-1, 1, y.numel()).view_as(y))
    return y.detach(), x.grad, w.grad, None if b is None else b.grad


@needs_onednn
@pytest.mark.parametrize("shape,bias", [((12, 64, 128), False), ((768, 512), True), ((3, 5, 256), True)])
def test_onednn_linear_equals_f_linear_forward_and_backward(shape, bias, calls):
    g = torch.Generator().manual_seed(0)
    k, n = shape[-1], 384
    x, w = torch.randn(*shape, generator=g), torch.randn(n, k, generator=g) / k**0.5
    b = torch.randn(n, generator=g) if bias else None
    want = grads(F.linear, x, w, b)
    got = grads(L.linear, x, w, b)
    for a, e in zip(got, want):
        if e is not None:  # fp32 sums in another order: equal to ~1e-6 of the largest entry
            assert (a - e).abs().max() <= 1e-5 * e.abs().max()
    rows = x.numel() // k
    if rows * k * n >= L.MIN_MACS:
        assert calls[0] == (shape, (n, k))  # forward on oneDNN, then dX and dW
        assert len(calls) == 3
    else:
        assert calls == []  # 15 rows: too small to gain


@needs_onednn
def test_frozen_weight_gets_no_weight_product(calls):
    """LoRA's frozen base: only dX is computed."""
    x = torch.randn(64, 128, 128, requires_grad=True)
    w = torch.randn(256, 128)
    L.linear(x, w).sum().backward()
    assert len(calls) == 2 and x.grad is not None


def test_blas_backend_and_autocast_and_small_products_take_f_linear(calls):
    x, w = torch.randn(64, 64, 128), torch.randn(384, 128)
    L.use("blas")
    assert L.backend() == "blas"
    torch.testing.assert_close(L.linear(x, w), F.linear(x, w), rtol=0, atol=0)
    L.use("auto")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert L.linear(x, w).dtype == torch.bfloat16
    L.linear(torch.randn(1, 128), w)  # one-token decoding: 49k multiply-adds
    L.linear(x.double(), w.double())
    assert calls == []


def test_backend_choice_is_checked(monkeypatch):
    with pytest.raises(ValueError, match="cpu_matmul 'mkl' unknown; choose one of auto, onednn, blas"):
        L.use("mkl")
    monkeypatch.setattr(L, "AVAILABLE", False)
    with pytest.raises(ValueError, match="no oneDNN linear; use auto or blas"):
        L.use("onednn")
    L.use("auto")
    assert L.backend() == "blas"


@needs_onednn
def test_gpt_step_on_onednn_matches_blas_and_state_dict_is_unchanged(calls):
    """A model step: same loss and gradients (to fp32 summation order), same parameter names
    as nn.Linear layers have (checkpoints and exports do not change)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=64))
    x, y = torch.randint(0, 65, (12, 64)), torch.randint(0, 65, (12, 64))
    res = {}
    for backend in ("blas", "onednn"):
        L.use(backend)
        model.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        res[backend] = loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()}
    assert len(calls) == 3 * 17  # 4 blocks x 4 Linears + the tied head, forward and two backward
    assert res["onednn"][0] == pytest.approx(res["blas"][0], rel=1e-6)
    for k, gr in res["blas"][1].items():
        torch.testing.assert_close(res["onednn"][1][k], gr, rtol=1e-4, atol=1e-6)
    assert "blocks.0.attn.c_attn.weight" in model.state_dict() and "lm_head.weight" in model.state_dict()


@needs_onednn
def test_compiled_onednn_linear_matches_eager():
    lin = L.Linear(128, 384)
    x = torch.randn(8, 64, 128, requires_grad=True)
    want = lin(x)
    want.sum().backward()
    wg, xg = lin.weight.grad.clone(), x.grad.clone()
    lin.weight.grad = x.grad = None
    got = torch.compile(lin, fullgraph=True)(x)
    got.sum().backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(lin.weight.grad, wg)
    torch.testing.assert_close(x.grad, xg)
