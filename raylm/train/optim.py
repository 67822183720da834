"""Optimizers and learning-rate schedules (pure functions).

Parameter groups carry an `lr_scale`: every step the loop sets each group's lr to the schedule's
lr times that scale (`set_lr`). Pretraining has two groups at scale 1 (matrices with weight
decay, the rest without); classification fine-tuning builds per-depth groups with layer decay and
a head multiplier (finetune.param_groups). Either list goes through `build_optimizer`.
"""

from __future__ import annotations

import math

import torch

from raylm.train.config import OptimConfig, ScheduleConfig


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay 2-D+ tensors (matmul weights, embeddings); never biases or norm gains. Scale 1."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, "lr_scale": 1.0},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr_scale": 1.0}]


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The configured optimizer over `groups` (each with params, weight_decay and lr_scale)."""
    for g in groups:
        g.setdefault("lr_scale", 1.0)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    params = [p for g in groups for p in g["params"]]
    kw = {"fused": True} if fused_ok(params) else {}
    return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **kw)


def fused_ok(params: list[torch.Tensor]) -> bool:
    """Adam(W)'s fused kernel (one pass over all parameters): on CUDA (FSDP's sharded parameters
    included, as before), and on CPU for plain tensors, where it replaces PyTorch's default
    per-parameter loop (~10 small kernels per tensor per step: benchmarks/cpu_step.py); FSDP's
    sharded (DTensor) parameters on CPU keep the default path."""
    from torch.distributed.tensor import DTensor

    if not params:
        return False
    return params[0].is_cuda or all(p.device.type == "cpu" and not isinstance(p, DTensor) for p in params)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """This step's learning rate on every group, times the group's `lr_scale`."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)  # a checkpoint's groups from before lr_scale: 1


def lr_at(step: int, lr: float, cfg: ScheduleConfig, max_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based)."""
    end = cfg.decay_steps or max_steps
    if step < cfg.warmup_steps:
        return lr * (step + 1) / (cfg.warmup_steps + 1)
    if cfg.name == "constant" or step >= end:
        return lr if cfg.name == "constant" else cfg.min_lr
    if cfg.name == "wsd":
        start = end - int(cfg.wsd_decay_fraction * end)
        if step < start:
            return lr
        return lr - (lr - cfg.min_lr) * (step - start) / max(1, end - start)
    frac = (step - cfg.warmup_steps) / max(1, end - cfg.warmup_steps)
    if cfg.name == "linear":
        return lr - (lr - cfg.min_lr) * frac
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * frac)) * (lr - cfg.min_lr)
