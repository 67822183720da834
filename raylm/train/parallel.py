"""Wrap the model for data parallelism; the model file knows nothing of this (torchtitan habit).

- ddp:  `DistributedDataParallel`, full replica per worker, gradients all-reduced.
- fsdp: PyTorch's `fully_shard` (FSDP2) per transformer block and at the root: parameters,
        gradients and optimizer state are sharded, so per-worker parameter memory falls
        roughly by the number of workers. Works over gloo on CPU and NCCL on GPU.

Checkpoints are always written as full (unsharded) state dicts by rank 0, so a run can resume
with a different world size or parallelism; loading into FSDP gives each rank the full dict
and lets `set_*_state_dict` keep its shard.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def parallelize(model: torch.nn.Module, kind: str, world: int, device: torch.device) -> torch.nn.Module:
    if world <= 1:
        return model
    if kind == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def no_grad_sync(model: torch.nn.Module, kind: str, world: int, last_micro: bool):
    """Context for a gradient-accumulation micro-step: skip the gradient exchange unless last."""
    if world <= 1 or last_micro:
        if kind == "fsdp" and world > 1:
            model.set_requires_gradient_sync(True)
        return nullcontext()
    if kind == "fsdp":
        model.set_requires_gradient_sync(False)
        return nullcontext()
    return model.no_sync()


def full_model_state(model: torch.nn.Module, kind: str) -> dict[str, torch.Tensor] | None:
    """Full state dict on every rank (a collective under FSDP: every rank must call it)."""
    if kind == "fsdp" and dist.is_initialized():
        return get_model_state_dict(model, options=FULL)
    return None  # checkpoint.save reads the (unwrapped) module directly


def optimizer_state(model, optimizer, kind: str) -> dict:
    if kind == "fsdp" and dist.is_initialized():
        return get_optimizer_state_dict(model, optimizer, options=FULL)
    return optimizer.state_dict()


def load_optimizer_state(model, optimizer, state: dict, kind: str) -> None:
    if kind == "fsdp" and dist.is_initialized():
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)


def local_param_bytes(model: torch.nn.Module) -> int:
    """Bytes of parameters this worker holds (its shard under FSDP)."""
    total = 0
    for p in model.parameters():
        t = p.to_local() if hasattr(p, "to_local") else p
        total += t.numel() * t.element_size()
    return total
