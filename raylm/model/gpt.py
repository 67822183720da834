"""A GPT-style decoder (nanoGPT lineage), or the same body as a bidirectional encoder. Knows
nothing of Ray or parallelism.

Pre-norm blocks, self-attention through `F.scaled_dot_product_attention` (fused / flash kernels
where the device has them), GELU MLP, learned positions, input and output embeddings tied.
`arch: decoder` attends causally and predicts the next token; `arch: encoder` attends both ways
and is pretrained by masked-language modelling (raylm/train/mlm.py): its embedding has one row
more than its tokenizer, the mask token. Shapes in comments: B batch, T time, C n_embd, nh
heads, hs head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from raylm.model.fused_loss import linear_cross_entropy
from raylm.model.linear import Linear

# Named sizes, a plain dict (torchtitan habit). Pick with `model.size`; explicit fields win.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64),
    "shakespeare-cpu": dict(n_layer=4, n_head=4, n_embd=128),   # nanoGPT's CPU config
    "small": dict(n_layer=6, n_head=6, n_embd=384),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),            # 124M with a 50257 vocab
}
DEFAULT_SIZE = "shakespeare-cpu"  # what n_layer / n_head / n_embd left unset mean without a size


@dataclass
class GPTConfig:
    arch: Literal["decoder", "encoder"] = "decoder"  # decoder: causal, next token; encoder: bidirectional,
                                     # masked tokens (train.objective mlm), one extra embedding row: [MASK]
    size: str | None = None          # a key of SIZES: fills n_layer / n_head / n_embd left unset
    n_layer: int | None = None       # transformer blocks; unset = from size (no size: shakespeare-cpu, 4)
    n_head: int | None = None        # attention heads per block; unset = from size (4)
    n_embd: int | None = None        # model width C; unset = from size (128)
    block_size: int = 64             # context length T in tokens
    vocab_size: int = 0              # 0 = take it from the tokenizer in the shard manifest
    dropout: float = 0.0             # on attention weights, residual outputs and embeddings
    bias: bool = False               # biases in Linear and LayerNorm
    init: Literal["scaled_normal", "normal", "xavier_uniform", "xavier_normal", "kaiming"] = "scaled_normal"
    init_std: float = 0.02           # std for normal / scaled_normal
    activation_checkpointing: bool = False  # recompute block activations in backward to save memory

    def __post_init__(self):
        # Explicit fields win: `size: tiny` with `n_layer: 4` is the tiny width with 4 blocks. The
        # resolved config keeps both, and reloading it gives the same model.
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"size {self.size!r} unknown; choose one of {', '.join(SIZES)}")
        for k, v in SIZES[self.size or DEFAULT_SIZE].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        for k in ("n_layer", "n_head", "n_embd", "block_size"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.vocab_size < 0:
            raise ValueError(f"vocab_size must be >= 0 (0 = from the tokenizer), got {self.vocab_size}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")

    def with_vocab(self, vocab: int, source: str) -> GPTConfig:
        """This config for a tokenizer of `vocab` tokens (from `source`, named in the error):
        vocab_size 0 takes it (an encoder one more, for its mask token); a smaller one is
        refused, as the model could not embed every id."""
        need = vocab + (1 if self.arch == "encoder" else 0)
        if self.vocab_size == 0:
            return replace(self, vocab_size=need)
        if self.vocab_size < need:
            raise ValueError(f"model.vocab_size={self.vocab_size} is smaller than the {vocab} tokens of {source}"
                             f"{' plus the mask token' if self.arch == 'encoder' else ''}: they were not made "
                             f"together (vocab_size 0 follows the tokenizer)")
        return self


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.causal = cfg.arch == "decoder"
        self.c_attn = Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.c_proj.residual = True  # scaled init target
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x, attn_mask=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None and self.causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.c_proj(y))

    def cached(self, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        """Inference with a KV cache: x (B, T, C) holds the newest T positions; their keys and
        values are written into `cache` after the `cache.length` cached ones, and the queries
        attend to all of them."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        P = cache.length
        k, v = cache.put(layer, k, v)  # (B, nh, P + T, hs) views of the preallocated buffers
        mask = None  # T == 1: the new token sees everything; P == 0: plain causal
        if T > 1 and P > 0:  # several new tokens after a cache: causal, shifted by P
            mask = torch.arange(T, device=x.device)[:, None] + P >= torch.arange(P + T, device=x.device)[None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=P == 0 and T > 1)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class KVCache:
    """Keys and values of every block for up to `size` positions, preallocated (B, nh, size, hs)
    so that a decoding step writes one position in place instead of copying the whole cache."""

    def __init__(self, cfg: GPTConfig, batch: int, size: int, device, dtype):
        shape = (batch, cfg.n_head, size, cfg.n_embd // cfg.n_head)
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0  # positions filled (every block alike, once a forward pass is done)

    def put(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.size(2)
        self.k[layer][:, :, self.length:end] = k
        self.v[layer][:, :, self.length:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.c_proj.residual = True
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, attn_mask=None):
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))

    def cached(self, x, cache: KVCache, layer: int):
        x = x + self.attn.cached(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if cfg.vocab_size < 1:
            raise ValueError("GPTConfig.vocab_size must be set (it comes from the tokenizer)")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied embeddings
        self.fused_loss = False  # forward with targets: head + loss in chunks, no logits (raylm/model/fused_loss.py)
        self.apply(self._init)

    def _init(self, m: nn.Module):
        cfg = self.cfg
        if isinstance(m, nn.Linear):
            std = cfg.init_std
            if cfg.init == "scaled_normal" and getattr(m, "residual", False):
                std = cfg.init_std / math.sqrt(2 * cfg.n_layer)  # GPT-2: residual branches scaled
            if cfg.init in ("scaled_normal", "normal"):
                nn.init.normal_(m.weight, 0.0, std)
            elif cfg.init == "xavier_uniform":
                nn.init.xavier_uniform_(m.weight)
            elif cfg.init == "xavier_normal":
                nn.init.xavier_normal_(m.weight)
            elif cfg.init == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, cfg.init_std)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; tied wte is counted once, positions excluded when non_embedding."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, T: int | None = None) -> float:
        """Training FLOPs per token: 6N + 12 L T C (PaLM appendix B, as nanoGPT counts)."""
        T = T or self.cfg.block_size
        return 6 * self.num_params() + 12 * self.cfg.n_layer * T * self.cfg.n_embd

    def _decoder_only(self, what: str) -> None:
        if self.cfg.arch != "decoder":
            raise ValueError(f"an encoder (model.arch: encoder) does not {what}: it predicts masked tokens; "
                             f"fine-tune it (finetune.task: classify) or pretrain a decoder")

    def hidden(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, T) -> final normalised hidden states (B, T, C)."""
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            if self.cfg.activation_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, attn_mask, use_reentrant=False)
            else:
                x = block(x, attn_mask)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """(B, T) ids -> (logits (B, T, V), mean cross-entropy or None). With `fused_loss` and
        targets: (None, the same loss) without making the logits."""
        if targets is not None and self.fused_loss:
            if not isinstance(self.lm_head, nn.Linear):
                raise ValueError("train.fused_loss needs a plain LM head; with LoRA on wte (an adapted head) "
                                 "set train.fused_loss=false")
            return None, linear_cross_entropy(self.hidden(idx), self.lm_head.weight, targets)
        logits = self.lm_head(self.hidden(idx))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def cached(self, idx: torch.Tensor, cache: KVCache | None = None,
               last_only: bool = False) -> tuple[torch.Tensor, KVCache]:
        """KV-cache inference (eval mode): logits (B, T, V) of the T newest tokens `idx` at
        positions P..P+T-1 after the P = cache.length cached ones (a new cache when None), and
        the cache, extended in place. `last_only`: logits of the last position only (B, 1, V).
        P + T must not exceed block_size."""
        B, T = idx.shape
        self._decoder_only("generate")
        if cache is None:
            cache = KVCache(self.cfg, B, self.cfg.block_size, idx.device, self.wte.weight.dtype)
        start = cache.length
        if start + T > self.cfg.block_size:
            raise ValueError(f"{start + T} positions exceed block_size {self.cfg.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(start, start + T, device=idx.device))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block.cached(x, cache, i)
        cache.length = start + T
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.ln_f(x)), cache

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample continuations of (B, T) prompts; returns (B, T + max_new_tokens). Recomputes the
        whole window every token (no cache): the reference raylm/eval/generate.py is checked against."""
        self._decoder_only("generate")
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.cfg.block_size:]
            nxt = sample(self(ctx)[0][:, -1, :], temperature, top_k, top_p, generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids (B, 1) from last-position logits (B, V): greedy at temperature 0, else
    softmax sampling after temperature, top-k and nucleus (top-p) truncation."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        srt, order = torch.sort(logits, descending=True)
        cum = srt.softmax(-1).cumsum(-1)
        remove = cum - srt.softmax(-1) > top_p  # keep the smallest set reaching top_p
        srt = srt.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, srt)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)
