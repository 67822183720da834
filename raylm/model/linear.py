"""Linear layers whose fp32 CPU matrix multiplies run on oneDNN's kernels instead of the BLAS.

PyTorch's CPU wheels send an fp32 `F.linear` to MKL's sgemm. On AMD CPUs MKL takes its AVX2
path even where the CPU has AVX-512: on the 2-core Zen 5 VM raylm is developed on, 2048^3
`torch.matmul` runs at 190-218 GFLOP/s and oneDNN's AVX-512 kernel (`mkldnn::_linear_pointwise`,
shipped in the same wheel) at 418-478 (benchmarks/cpu_step.py measures both peaks in every run);
the 768 x 128 x 384 products of a small GPT ran at 190-210 against 390-450 in an exploratory
timing. Both compute in IEEE fp32; only the order of the sums differs (results agree to ~1e-6
relative).

`linear(x, w, b)` is `F.linear` with that routing, `Linear` an `nn.Linear` that calls it (same
parameters, same state_dict). A product goes to oneDNN when the backend allows it (`use()`:
`auto` = oneDNN on x86-64 builds that have it, `onednn` = the same but an error where it is
missing, `blas` = never), it runs on the CPU in fp32 outside autocast, on plain tensors, and
it is big enough that oneDNN's ~15 us call cost does not lose (M K N >= 2^20 multiply-adds:
one-token decoding of a small model stays on the BLAS). Backward: dX = dY W and
dW = dY^T X, both through oneDNN under the same rule.
"""

from __future__ import annotations

import platform

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn import functional as F

BACKENDS = ("auto", "onednn", "blas")
MIN_MACS = 1 << 20  # below this oneDNN's fixed call cost makes it slower than the BLAS (a 1 x 128 x 384
                    # product: 18 us against 4.5; 32 x 128 x 384: level)
_backend = "auto"


def _available() -> bool:
    return (platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


# oneDNN's dense fp32 linear is in this torch build, on an x86-64 CPU (where its AVX-512 and AVX2
# kernels are what this module is for; on ARM the same op goes through another library, unmeasured).
AVAILABLE = _available()


def use(backend: str) -> None:
    """Pick the backend for fp32 CPU Linear layers in this process (train.cpu_matmul)."""
    global _backend
    if backend not in BACKENDS:
        raise ValueError(f"cpu_matmul {backend!r} unknown; choose one of {', '.join(BACKENDS)}")
    if backend == "onednn" and not AVAILABLE:
        raise ValueError(f"train.cpu_matmul: onednn, but this torch build or CPU ({platform.machine()}) has no "
                         f"oneDNN linear; use auto or blas")
    _backend = backend


def backend() -> str:
    """What fp32 CPU Linear layers use in this process now: onednn or blas."""
    return "onednn" if _backend != "blas" and AVAILABLE else "blas"


@torch.library.custom_op("raylm::onednn_mm", mutates_args=())
def _mm(x: Tensor, w: Tensor) -> Tensor:
    """x (..., K) @ w (N, K)^T -> (..., N) on oneDNN. An opaque op to torch.compile (which has no
    lowering for `_linear_pointwise` outside inference freezing)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


@_mm.register_fake
def _(x: Tensor, w: Tensor) -> Tensor:
    return x.new_empty((*x.shape[:-1], w.shape[0]))


def _big(m: int, k: int, n: int) -> bool:
    return m * k * n >= MIN_MACS


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        return _mm(x, w)

    @staticmethod
    def backward(ctx, gy: Tensor):
        # dX and dW have the forward's M K N multiply-adds, so they are as big as it was: oneDNN too
        x, w = ctx.saved_tensors
        g = gy.reshape(-1, gy.shape[-1])  # (M, N)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _mm(g, w.t()).view(*gy.shape[:-1], w.shape[1])  # (M, N) @ (N, K)
        if ctx.needs_input_grad[1]:
            x2 = x.reshape(-1, x.shape[-1])
            # oneDNN copies a transposed first operand (not a transposed weight): copy the narrower of
            # g (M, N) and x (M, K), and for N > K take dW^T = X^T dY, then transpose (a weight-sized copy)
            gw = _mm(x2.t(), g.t()).t().contiguous() if w.shape[0] > w.shape[1] else _mm(g.t(), x2.t())
        return gx, gw


def _onednn_ok(x: Tensor, w: Tensor) -> bool:
    return (_backend != "blas" and x.device.type == "cpu" and x.dtype == torch.float32 == w.dtype
            and x.dim() >= 2 and not torch.is_autocast_enabled("cpu") and AVAILABLE
            and _big(x.numel() // x.shape[-1], w.shape[1], w.shape[0]))


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear(x, weight, bias)`, on oneDNN where the module docstring says."""
    if not _onednn_ok(x, weight):
        return F.linear(x, weight, bias)
    y = _OneDNNLinear.apply(x, weight)
    return y if bias is None else y + bias


class Linear(nn.Linear):
    """nn.Linear through `linear` (same parameters and state_dict keys)."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)
