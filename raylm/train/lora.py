"""LoRA (Hu et al. 2021): low-rank adapters on the Linear layers of the transformer blocks.

`LoRALinear` keeps a pretrained Linear's weight W (out, in) and bias frozen and learns A (r, in)
and B (out, r): y = x W^T + b + dropout(x) A^T B^T * alpha / r. B starts at zero, so the adapted
model starts as the pretrained one; A starts as nn.Linear's weights do (kaiming uniform), as in
peft, whose LoRA layer this matches output for output (tests/unit/test_lora.py). W and b keep
their names (`blocks.0.attn.c_attn.weight`), so a base checkpoint loads into an adapted model
unchanged and the adapters are the only new keys (`...c_attn.lora_A`, `...c_attn.lora_B`).

Only the adapters (and a classifier's head) train, and only they go into a LoRA run's
checkpoints, with a reference to the base checkpoint (checkpoint.py `read_weights` merges them
back: W + B A alpha / r). A merged model is a plain GPT, so export, eval and generate need no
LoRA code.

Why not peft: it fits a plain nn.Module (`inject_adapter_in_model`), but it brings transformers
and accelerate into raylm's core dependencies (transformers is a dev extra here), and it renames
the base weights (`c_attn.base_layer.weight`), so base checkpoints, export and the tied-weight
handling would all need a translation layer. The layer itself is the 40 lines below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from raylm.model.linear import Linear, linear

# The Linear layers of a raylm Block (raylm/model/gpt.py), by their path inside the block.
TARGETS = {
    "attn.c_attn": "query, key and value projection (one fused Linear)",
    "attn.c_proj": "attention output projection",
    "mlp.c_fc": "MLP up projection",
    "mlp.c_proj": "MLP down projection",
}
# Outside the blocks: the token embedding, whose matrix is also the LM head's (tied). One adapter
# serves both uses (`LoRAEmbedding` for the lookup, the head's `LoRALinear` sharing its A and B),
# so the adapted model stays tied and merges into a plain tied GPT.
MODEL_TARGETS = {"wte": "token embedding, tied with the LM head (one adapter for both)"}
ADAPTER_KEYS = (".lora_A", ".lora_B")
TIED_HEAD = ("lm_head.lora_A", "lm_head.lora_B")  # the head's view of wte's adapter: never stored


@dataclass
class LoraConfig:
    r: int = 0                     # adapter rank; 0 = LoRA off (every weight trains)
    alpha: float = 16.0            # the update is scaled by alpha / r
    dropout: float = 0.0           # dropout on the adapter's input (training only)
    targets: list[str] = field(default_factory=lambda: list(TARGETS))  # Linear layers of every block to adapt

    def __post_init__(self):
        if self.r < 0:
            raise ValueError(f"lora.r must be >= 0 (0 = off), got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        unknown = [t for t in self.targets if t not in TARGETS and t not in MODEL_TARGETS]
        if unknown:
            raise ValueError(f"lora.targets: {', '.join(map(repr, unknown))} is not a layer LoRA adapts; valid: "
                             + ", ".join(f"{k} ({v})" for k, v in {**TARGETS, **MODEL_TARGETS}.items()))
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"lora.targets must name at least one layer, each once; got {self.targets}")

    @property
    def on(self) -> bool:
        return self.r > 0


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable rank-r update (module docstring)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # (out, in): the same tensor, frozen
        self.register_parameter("bias", base.bias)  # (out,) or None
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad_(False)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **kw))   # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **kw))  # (out, r): the update starts at 0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's init of an (r, in) weight, as peft
        self.scale = alpha / r
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = linear(linear(self.drop(x), self.lora_A), self.lora_B)  # (..., in) -> (..., r) -> (..., out)
        return linear(x, self.weight, self.bias) + update * self.scale

    def merged(self) -> nn.Linear:
        """A plain Linear (raylm/model/linear.py) with W + B A * scale (computed in fp32)."""
        lin = Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(merge_weight(self.weight, self.lora_A, self.lora_B, self.scale))
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin


class LoRAEmbedding(nn.Module):
    """A frozen nn.Embedding (V, d) plus a trainable rank-r update B (V, r) @ A (r, d) * alpha / r:
    the layout of LoRALinear's delta for a (V, d) weight, so `merge_weight` and `merge_state`
    serve both. B (one r-vector per token) starts at zero, A as LoRALinear's (peft's embedding
    LoRA has the same two factors, named the other way round). No dropout (peft has none here)."""

    def __init__(self, base: nn.Embedding, r: int, alpha: float):
        super().__init__()
        self.num_embeddings, self.embedding_dim = base.num_embeddings, base.embedding_dim
        self.weight = base.weight  # (V, d): the same tensor, frozen (and the LM head's, tied)
        self.weight.requires_grad_(False)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, base.embedding_dim, **kw))   # (r, d)
        self.lora_B = nn.Parameter(torch.zeros(base.num_embeddings, r, **kw))  # (V, r): the update starts at 0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.weight) + F.embedding(idx, self.lora_B) @ self.lora_A * self.scale

    def merged(self) -> nn.Embedding:
        emb = nn.Embedding(self.num_embeddings, self.embedding_dim, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            emb.weight.copy_(merge_weight(self.weight, self.lora_A, self.lora_B, self.scale))
        return emb


def merge_weight(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """W (out, in) + B (out, r) @ A (r, in) * scale, in fp32, returned in W's dtype."""
    return (w.float() + (b.float() @ a.float()) * scale).to(w.dtype)


def add_adapters(gpt: nn.Module, cfg: LoraConfig) -> int:
    """Freeze every parameter of a GPT and wrap each `cfg.targets` Linear of every block in a
    LoRALinear (in place); returns the number of adapter parameters. Adapters are created on
    the weights' device, from torch's global RNG (seed it identically on every rank)."""
    for p in gpt.parameters():
        p.requires_grad_(False)
    n = 0
    for block in gpt.blocks:
        for name in (t for t in cfg.targets if t in TARGETS):
            parent_name, _, attr = name.rpartition(".")
            parent = block.get_submodule(parent_name)
            lin = getattr(parent, attr)
            if not isinstance(lin, nn.Linear):
                raise ValueError(f"lora.targets: {name} is a {type(lin).__name__}, not an nn.Linear (adapted twice?)")
            adapter = LoRALinear(lin, cfg.r, cfg.alpha, cfg.dropout)
            setattr(parent, attr, adapter)
            n += adapter.lora_A.numel() + adapter.lora_B.numel()
    if "wte" in cfg.targets:
        emb = LoRAEmbedding(gpt.wte, cfg.r, cfg.alpha)
        head = LoRALinear(gpt.lm_head, cfg.r, cfg.alpha)  # logits from the adapted matrix too: still tied
        head.lora_A, head.lora_B = emb.lora_A, emb.lora_B  # (r, d) and (V, r): the same delta as the lookup
        gpt.wte, gpt.lm_head = emb, head
        n += emb.lora_A.numel() + emb.lora_B.numel()
    return n


def has_adapters(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear | LoRAEmbedding) for m in model.modules())


def merge(model: nn.Module) -> nn.Module:
    """Replace every adapted layer inside `model` by its merged plain one (in place); returns it.
    A head sharing an embedding's adapter is tied to the merged embedding again."""
    merged_emb: dict[int, nn.Parameter] = {}  # id(lora_A) -> the merged embedding's weight
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRAEmbedding):
            parent_name, _, attr = name.rpartition(".")
            plain = m.merged()
            setattr(model.get_submodule(parent_name), attr, plain)
            merged_emb[id(m.lora_A)] = plain.weight
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            parent_name, _, attr = name.rpartition(".")
            plain = m.merged()
            if id(m.lora_A) in merged_emb:
                plain.weight = merged_emb[id(m.lora_A)]
            setattr(model.get_submodule(parent_name), attr, plain)
    return model


def is_stored_adapter(key: str) -> bool:
    """A state-dict key of an adapter a checkpoint holds (.lora_A / .lora_B), not the tied head's
    view of the embedding's adapter (the same tensors as wte's)."""
    return key.endswith(ADAPTER_KEYS) and not key.endswith(TIED_HEAD)


def adapter_state(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapter tensors a checkpoint stores (`is_stored_adapter`)."""
    return {k: v for k, v in sd.items() if is_stored_adapter(k)}


def merge_state(sd: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A state dict holding base weights and adapters -> the merged state dict without adapters:
    `<layer>.weight` becomes W + B A * scale for every `<layer>.lora_A` / `<layer>.lora_B` pair."""
    out = {k: v for k, v in sd.items() if not k.endswith(ADAPTER_KEYS)}
    for k in sd:
        if k.endswith(".lora_A"):
            layer = k.removesuffix(".lora_A")
            if f"{layer}.weight" not in out or f"{layer}.lora_B" not in sd:
                raise KeyError(f"adapter {layer} has no base weight or no lora_B to merge with")
            out[f"{layer}.weight"] = merge_weight(out[f"{layer}.weight"], sd[k], sd[f"{layer}.lora_B"], scale)
    return out


def count(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; a tied weight counts once."""
    ps = list(model.parameters())
    return sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps)
