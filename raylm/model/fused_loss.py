"""The LM head and its cross-entropy in chunks of rows, without the (N, V) logits in memory.

The plain path (`GPT.forward`) writes the logits of every position (N = B T rows of V), upcasts
them to fp32 for the loss, and autograd keeps them for the backward: at GPT-2 small's batch 16
x 1024 positions x 50,304 tokens that is 1.6 GB of bf16 logits and 3.3 GB more in fp32. Here the
rows go through in chunks (Liger-Kernel's FusedLinearCrossEntropy, in plain PyTorch): each
chunk's logits are made, turned into their loss and their gradient (softmax - one-hot, over the
valid rows), and multiplied back into the gradients of the hidden states and of the head's
weight at once, then dropped. The backward only scales those by the loss's gradient. So the
forward does the backward's work (no extra FLOPs, none saved); what is saved is memory and the
fp32 logit traffic.

Same loss as `F.cross_entropy(logits.float(), targets, ignore_index=-1)` (mean over targets
that are not -1): the logits in the autocast dtype, their softmax in fp32. Where no gradient is
needed (evaluation) only the loss is computed, chunk by chunk.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from raylm.model.linear import linear

IGNORE = -1


def chunk_rows(n: int, c: int, v: int) -> int:
    """Rows per chunk: a chunk's logits (rows x V) about the size of the hidden states (N x C),
    as Liger-Kernel sizes them, a power of two."""
    chunks = max(1, math.ceil(v / c))
    return 1 << max(0, math.ceil(math.log2(max(1, math.ceil(n / chunks)))))


def _chunk(h: Tensor, w: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows h (r, C) and their targets t (r,) -> (fp32 logits (r, V), their logsumexp, the valid
    mask, the summed loss of the valid rows). The logits are made in the autocast dtype."""
    logits = linear(h, w).float()
    lse, valid = torch.logsumexp(logits, dim=-1), t != IGNORE
    picked = logits.gather(1, t.clamp(min=0)[:, None]).squeeze(1)
    return logits, lse, valid, torch.where(valid, lse - picked, 0.0).sum()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, t: Tensor, rows: int) -> Tensor:
        n_valid = (t != IGNORE).sum()
        scale = 1.0 / n_valid.clamp(min=1).float()
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        wt = w.t().contiguous() if w.device.type == "cpu" else w.t()  # (C, V): oneDNN would copy it per chunk
        for s in range(0, h.shape[0], rows):
            hc, tc = h[s:s + rows], t[s:s + rows]
            logits, lse, valid, loss = _chunk(hc, w, tc)
            total += loss
            g = torch.exp(logits - lse[:, None])  # softmax (r, V), then minus the one-hot of the target
            g.scatter_add_(1, tc.clamp(min=0)[:, None], -torch.ones_like(lse)[:, None])
            g *= (valid.float() * scale)[:, None]
            # the products in the autocast dtype where autocast is on, as the plain path's backward
            if grad_h is not None:
                grad_h[s:s + rows] = linear(g, wt)  # (r, V) @ (V, C)
            if grad_w is not None:
                grad_w += linear(g.t(), hc.t()).float()  # (V, r) @ (r, C)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.w_dtype = w.dtype
        # no valid target: NaN, as F.cross_entropy's mean over nothing
        return torch.where(n_valid > 0, total * scale, torch.nan)

    @staticmethod
    def backward(ctx, go: Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return (None if grad_h is None else grad_h * go.to(grad_h.dtype),
                None if grad_w is None else (grad_w * go).to(ctx.w_dtype), None, None)


def linear_cross_entropy(h: Tensor, w: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of `h @ w.T` (h (..., C), w (V, C)) against `targets` (...), ignoring
    -1, without materialising the logits (module docstring)."""
    h2, t = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
    rows = chunk_rows(h2.shape[0], w.shape[1], w.shape[0])
    if torch.is_grad_enabled() and (h2.requires_grad or w.requires_grad):
        return _LinearCrossEntropy.apply(h2, w, t, rows)
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    for s in range(0, h2.shape[0], rows):
        total += _chunk(h2[s:s + rows], w, t[s:s + rows])[3]
    n_valid = (t != IGNORE).sum()
    return torch.where(n_valid > 0, total / n_valid.clamp(min=1), torch.nan)
