"""The per-worker pretraining loop: plain PyTorch, top to bottom. Runs with or without Ray.

`launch.launch` runs `train_worker` in every Ray Train worker with a `RaySession`;
`raylm train --set train.num_workers=0`, the tests and the benchmarks call it in-process with a
`LocalSession` (session.py). The session is the only thing that differs: where checkpoints go
and how metrics are reported.

Exact resume: the checkpoint holds weights, optimizer, step, data position and early-stopping
state (`LoopState`); dropout randomness is reseeded every step from (seed, rank, step), so a
run resumed at step k draws exactly what the uninterrupted run drew.

The parts around the step (device, autocast, learning rate, optimizer step, cross-rank means,
progress lines, TensorBoard, throughput) are worker.py's, shared with the classification loop.

Continued pretraining with LoRA (`LMRun.lora`, from finetune.lora): the init_from weights stay
frozen, adapters (lora.py) train, and checkpoints hold the adapters and a reference to init_from;
a resume loads init_from, then the adapters. DDP only: FSDP with LoRA is refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from raylm import energy, storage
from raylm.data import shards
from raylm.data.shards import read_manifest
from raylm.model.gpt import GPT, GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train import lora
from raylm.train.config import TrainConfig
from raylm.train.data import Loader, TokenWindows, masked
from raylm.train.lora import LoraConfig
from raylm.train.optim import build_optimizer, decay_groups
from raylm.train.parallel import full_model_state, load_optimizer_state, no_grad_sync, optimizer_state, parallelize
from raylm.train.session import LocalSession, resume, say
from raylm.train.worker import (Eta, Throughput, agree, all_mean, autocast_for, begin_step, energy_so_far, improved,
                                maybe_fail_for_test, open_tensorboard, optimizer_step, progress, setup_device)


@dataclass
class LMRun:
    """Arguments of one pretraining (or continued-pretraining) worker."""

    model: GPTConfig
    train: TrainConfig
    data_dir: str                 # shards + manifest.json (local, or on an object store: copied to scratch)
    out: str                      # the stage folder (local or an object store): metrics.jsonl, TensorBoard
    seed: int
    init_from: str | None = None  # checkpoint whose weights start the run (continued pretraining)
    tb_dir: str | None = None     # TensorBoard events (rank 0); None = none
    tokenizer_json: str | None = None  # copied into every checkpoint; None = not copied
    scratch: str | None = None    # node-local disk (cluster.local_dir); None = the temp folder
    lora: LoraConfig | None = None  # LoRA adapters on init_from's frozen weights (finetune.lora); None / r 0 = off


@dataclass
class LoopState:
    """Everything besides weights and optimizer that a checkpoint must hold for an exact resume."""

    step: int = 0                 # optimizer steps done
    data: dict | None = None      # Loader position {epoch, pos}; None = the start
    best_val: float = math.inf    # lowest val loss so far (early stopping)
    bad_evals: int = 0            # validations since it last improved

    @classmethod
    def from_saved(cls, saved: dict) -> LoopState:
        return cls(**{f.name: saved[f.name] for f in fields(cls)})


# ---------------------------------------------------------------- pretraining


@torch.no_grad()
def evaluate(model, windows: TokenWindows, batch_size: int, rank: int, world: int, max_batches: int,
             device, autocast, mlm: dict | None = None) -> float:
    """Mean loss over the first max_batches * batch_size * world windows (all if 0), exact across ranks.
    With `mlm` (an encoder), the mean over the masked tokens of those windows, masked as in
    training for epoch 0 (the same masks at every validation).

    Every rank runs the same number of forward passes (FSDP's all-gathers are collectives); a rank
    whose share has run out scores a placeholder window with weight 0."""
    model.eval()
    n = windows.num_windows(0)
    limit = n if max_batches == 0 else min(n, max_batches * batch_size * world)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of token losses, tokens)
    for g in range(math.ceil(limit / (batch_size * world))):
        pos = g * batch_size * world + rank + np.arange(batch_size) * world
        pos = pos[pos < limit]
        weight = 1.0 if len(pos) else 0.0
        pos = pos if len(pos) else np.zeros(1, dtype=np.int64)
        win = windows.windows(0, pos, shuffle=False)
        if mlm:
            x, y = masked(win[:, :-1], *windows.places(0, pos, shuffle=False), 0, mlm)
        else:
            x, y = win[:, :-1], win[:, 1:]
        x, y = x.to(device), y.to(device)
        with autocast:
            _, loss = model(x, y)
        k = (y >= 0).sum().item() * weight
        if k == 0:  # no masked token in this batch: nothing to score (the loss is NaN)
            loss = torch.zeros((), device=device)
        total += torch.tensor([loss.item() * k, k], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def drop_unreported_checkpoints(folder: Path) -> None:
    """A worker writes each checkpoint to `<folder>/.ckpt-<step>` before handing it to its
    session; one left behind by a killed run was never recorded and is removed."""
    import shutil

    for d in Path(folder).glob(".ckpt-*"):
        shutil.rmtree(d, ignore_errors=True)


def mlm_settings(model_cfg: GPTConfig, data_dir: str, seed: int) -> dict | None:
    """An encoder's masking settings (raylm/train/mlm.py) for these shards; None for a decoder."""
    if model_cfg.arch != "encoder":
        return None
    m = read_manifest(data_dir)
    return {"seed": seed, "vocab": m["vocab_size"], "eos_id": m["eos_id"]}


def resolve_model_config(model_cfg: GPTConfig, data_dir: str) -> GPTConfig:
    """The model for these shards: vocab_size from their tokenizer (GPTConfig.with_vocab)."""
    return model_cfg.with_vocab(read_manifest(data_dir)["vocab_size"], f"the tokenizer of {data_dir}")


def _build(run: LMRun, model_cfg: GPTConfig, session, device):
    """Model (initial, `init_from` or resumed weights), its parallel wrapper, optimizer, loop state."""
    cfg = run.train
    torch.manual_seed(run.seed)  # identical initial weights on every rank
    model = GPT(model_cfg).to(device)
    model.fused_loss = cfg.fused_loss
    if run.init_from:
        ckpt.load_weights(model, run.init_from)
    if run.lora is not None and run.lora.on:
        if not run.init_from:
            raise ValueError("finetune.lora adapts a pretrained checkpoint: set finetune.init_from")
        if cfg.parallelism == "fsdp" and session.world > 1:
            raise ValueError("finetune.lora runs with train.parallelism=ddp only: the optimizer state and gradients "
                             "FSDP would shard are the adapters' alone; set train.parallelism=ddp")
        n = lora.add_adapters(model, run.lora)  # after init_from's weights: they stay as loaded, frozen
        if session.rank == 0:
            say(f"[train] LoRA r={run.lora.r} on {', '.join(run.lora.targets)}: {n} trainable of "
                f"{lora.count(model)[1]} parameters")

    def load(path: Path) -> dict:
        ckpt.load_weights(model, path)  # before wrapping: full weights, or a LoRA run's adapters
        saved = ckpt.load_state(path)
        LoopState.from_saved(saved)  # a state without every field is corrupt too
        return saved

    latest, saved = resume(session.resume_candidates(), load, session.rank)
    state = LoopState.from_saved(saved) if saved is not None else LoopState()
    if latest is not None and session.rank == 0:
        say(f"resumed from {latest} at step {state.step}")
    raw = model
    model = parallelize(model, cfg.parallelism, session.world, device)
    optimizer = build_optimizer(decay_groups(model, cfg.optim.weight_decay), cfg.optim)  # FSDP params: DTensors
    if saved is not None:
        load_optimizer_state(model, optimizer, saved["optimizer"], cfg.parallelism)
    if cfg.compile:
        model = torch.compile(model)
    return model, raw, optimizer, state


def _train_step(model, optimizer, loader, run: LMRun, rank: int, world: int, step: int, device, autocast):
    """One optimizer step over grad_accum micro-batches; returns (lr, last micro-batch loss, grad norm)."""
    cfg = run.train
    lr = begin_step(optimizer, cfg, run.seed, rank, step)
    for micro in range(cfg.grad_accum):
        x, y = next(loader)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with no_grad_sync(model, cfg.parallelism, world, micro == cfg.grad_accum - 1), autocast:
            _, loss = model(x, y)
        (loss / cfg.grad_accum).backward()
    return lr, loss, optimizer_step(model, optimizer, cfg.grad_clip)


def _checkpoint(run: LMRun, local: Path, model, raw, optimizer, model_cfg, state: LoopState, rank: int, val: float):
    """Full weights (a LoRA run's adapters alone) and optimizer state (collectives under FSDP:
    every rank takes part); rank 0 writes the checkpoint directory under `local` (this node's
    disk) and returns it, the others None."""
    cfg = run.train
    weights = full_model_state(model, cfg.parallelism)
    opt_state = optimizer_state(model, optimizer, cfg.parallelism)
    if rank != 0:
        return None
    extra = {"step": state.step, "val_loss": val, "data_dir": str(run.data_dir)}
    if lora.has_adapters(raw):
        weights = lora.adapter_state(ckpt.model_state(raw, weights))
        extra["lora"] = ckpt.lora_record(run.lora, run.init_from)
    return ckpt.save(local / f".ckpt-{state.step}", raw, model_cfg, {"optimizer": opt_state, **asdict(state)},
                     weights=weights, extra=extra,
                     files={"tokenizer.json": run.tokenizer_json} if run.tokenizer_json else None)


def train_worker(run: LMRun, session=None) -> dict:
    """Train as `run` says; returns the last metrics reported."""
    cfg = run.train
    session = session or LocalSession(dir=run.out, keep=cfg.keep_checkpoints, keep_by=cfg.keep_by)
    rank, world = session.rank, session.world
    device = setup_device(cfg, session.local_rank)
    local = storage.work_dir(run.out, run.scratch)  # this node's files of `out` (out itself when local)
    if rank == 0:
        drop_unreported_checkpoints(local)
    data_dir = shards.localize(run.data_dir, ("train", "val"), storage.scratch(run.scratch))
    model_cfg = resolve_model_config(run.model, data_dir)
    train_w = TokenWindows(data_dir, "train", model_cfg.block_size, run.seed)
    val_w = TokenWindows(data_dir, "val", model_cfg.block_size, run.seed)
    model, raw, optimizer, state = _build(run, model_cfg, session, device)
    autocast = autocast_for(cfg, device)
    mlm = mlm_settings(model_cfg, data_dir, run.seed)
    loader = Loader(train_w, cfg.batch_size, rank, world, state=state.data, mlm=mlm)
    tb = open_tensorboard(str(storage.work_dir(run.tb_dir, run.scratch))) if rank == 0 and run.tb_dir else None
    meter = Throughput(raw, cfg, world, device)
    power = energy.Meter(device.index or 0 if device.type == "cuda" else None, cfg.cpus_per_worker)

    def validate() -> float:
        return evaluate(model, val_w, cfg.batch_size, rank, world, cfg.eval_batches, device, autocast, mlm)

    metrics: dict = {}
    early_stopped = 0 < cfg.early_stopping_patience <= state.bad_evals
    if state.step >= cfg.max_steps or early_stopped:  # resumed a finished run: report where it stands
        val = validate()
        metrics = {"step": state.step, "val_loss": val, "val_ppl": math.exp(min(val, 50)),
                   "best_val_loss": state.best_val, "already_complete": True}
        session.report(dict(metrics), None)
    eta = Eta(state.step, cfg.max_steps)
    while state.step < cfg.max_steps and not early_stopped:
        lr, loss, gnorm = _train_step(model, optimizer, loader, run, rank, world, state.step, device, autocast)
        state.step, state.data = state.step + 1, loader.state
        step = state.step
        maybe_fail_for_test(step, rank)
        meter.steps += 1
        halt = agree(session.should_stop(), device)  # Ctrl-C / SIGTERM: checkpoint here, then return
        regular_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        is_eval = regular_eval or halt
        if not (is_eval or step % cfg.log_interval == 0):
            continue
        loss_mean, gnorm_mean = all_mean([loss.item(), float(gnorm)], device)
        metrics = {"step": step, "loss": loss_mean, "lr": lr, "grad_norm": gnorm_mean, **meter.metrics(step)}
        ckpt_dir, stop = None, False
        if is_eval:
            val = validate()
            if regular_eval:  # a stop request's extra validation leaves early stopping as it was
                if improved(val, state.best_val, cfg.early_stopping_min_delta):
                    state.best_val, state.bad_evals = val, 0
                else:
                    state.bad_evals += 1
                stop = 0 < cfg.early_stopping_patience <= state.bad_evals
            metrics.update(val_loss=val, val_ppl=math.exp(min(val, 50)), best_val_loss=state.best_val,
                           early_stopped=stop, **({"interrupted": True} if halt else {}),
                           **energy_so_far(power, world, device))
            ckpt_dir = _checkpoint(run, local, model, raw, optimizer, model_cfg, state, rank, val)
            meter.restart()
        if rank == 0:
            progress("train", metrics, eta)
            if tb is not None:
                for k, v in metrics.items():
                    if isinstance(v, int | float) and k != "step":
                        tb.add_scalar(f"train/{k}", v, step)
        if is_eval:  # Ray Train's report is a barrier with the controller: only at evaluations
            if tb is not None:
                tb.flush()  # before the session uploads it (out on an object store)
            session.report(dict(metrics), ckpt_dir)
        else:
            session.log(dict(metrics))
        if stop:
            if rank == 0:
                say(f"[train] early stop at step {step}: no val improvement in "
                    f"{cfg.early_stopping_patience} evaluations")
            break
        if halt:
            break
    if tb is not None:
        tb.close()
    return metrics
