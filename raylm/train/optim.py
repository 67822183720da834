"""Optimizers (weight decay on matrices only) and learning-rate schedules (pure functions)."""

from __future__ import annotations

import math

import torch

from raylm.train.config import OptimConfig, ScheduleConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Decay 2-D+ tensors (matmul weights, embeddings); never biases or norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    kw = {"fused": True} if decay and decay[0].is_cuda else {}
    return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **kw)


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
