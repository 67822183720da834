"""The per-worker training loop: plain PyTorch, top to bottom. Runs with or without Ray.

Ray Train (raylm/train/trainer.py) calls `train_worker` in every worker with a `RaySession`;
`raylm train --set train.num_workers=0` and the benchmarks call it in-process with a
`LocalSession`. The session is the only thing that differs: where checkpoints go and how
metrics are reported.

Exact resume: the checkpoint holds weights, optimizer, step, data position and early-stopping
state; dropout randomness is reseeded every step from (seed, rank, step), so a run resumed at
step k draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from raylm.data.shards import read_manifest
from raylm.model.gpt import GPT, GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train.config import TrainConfig
from raylm.train.data import Loader, TokenWindows, _h
from raylm.train.optim import build_optimizer, lr_at
from raylm.train.parallel import (full_model_state, load_optimizer_state, local_param_bytes, no_grad_sync,
                                  optimizer_state, parallelize)

# bf16 dense peak FLOP/s of known accelerators, for MFU when train.peak_flops is 0.
KNOWN_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def say(line: str) -> None:
    """One progress line on stdout. Not print(): in a Ray Train V2 worker print is patched to log
    through the root logger and also, because Ray wraps the worker's sys.stdout, to tee to stdout,
    so each printed line reached the driver twice."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class LocalSession:
    """No Ray: checkpoints under `<dir>/checkpoints/step-N`, metrics appended to metrics.jsonl."""

    dir: str
    keep: int = 2
    keep_by: str = "newest"  # or "val_loss": keep the `keep` best, plus the newest
    rank: int = 0
    world: int = 1
    history: list = field(default_factory=list)

    def latest_checkpoint(self) -> Path | None:
        cks = sorted(Path(self.dir, "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:]))
        return cks[-1] if cks else None

    def log(self, metrics: dict) -> None:
        """Metrics between evaluations: kept locally, not reported to anyone."""
        self.history.append(metrics)
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        with open(Path(self.dir) / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")

    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        self.log(metrics)
        if checkpoint_dir is not None:
            dest = Path(self.dir, "checkpoints", f"step-{metrics['step']}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(checkpoint_dir, dest)
            cks = sorted(dest.parent.glob("step-*"), key=lambda p: int(p.name[5:]))
            if self.keep_by == "val_loss":
                def score(p):
                    return json.loads((p / "model.json").read_text()).get("val_loss", math.inf)
                best = set(sorted(cks, key=score)[: self.keep]) if self.keep else set(cks)
                drop = [c for c in cks[:-1] if c not in best]  # as Ray Train: top K, plus the newest
            else:
                drop = cks[: -self.keep] if self.keep else []
            for old in drop:
                shutil.rmtree(old)


def setup_device(cfg: TrainConfig, local_rank: int = 0) -> torch.device:
    if cfg.use_gpu and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    # Threads must match the CPUs Ray gave this worker, or workers fight over cores.
    torch.set_num_threads(cfg.cpus_per_worker)
    return torch.device("cpu")


def resolve_model_config(model_cfg: GPTConfig, data_dir: str) -> GPTConfig:
    """Take vocab_size from the manifest; refuse a mismatch before any work."""
    vocab = read_manifest(data_dir)["vocab_size"]
    if model_cfg.vocab_size == 0:
        return replace(model_cfg, size=None, vocab_size=vocab)
    if model_cfg.vocab_size < vocab:
        raise ValueError(f"model.vocab_size={model_cfg.vocab_size} is smaller than the tokenizer's {vocab} "
                         f"({data_dir}); set it to 0 to follow the tokenizer")
    return replace(model_cfg, size=None)


def _all_mean(values: list[float], device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t.tolist()


@torch.no_grad()
def evaluate(model, windows: TokenWindows, batch_size: int, rank: int, world: int, max_batches: int,
             device, autocast) -> float:
    """Mean loss over the first max_batches * batch_size * world windows (all if 0), exact across ranks.

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
        win = windows.windows(0, pos if len(pos) else np.zeros(1, dtype=np.int64), shuffle=False).to(device)
        with autocast:
            _, loss = model(win[:, :-1], win[:, 1:])
        k = win[:, 1:].numel() * weight
        total += torch.tensor([loss.item() * k, k], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def begin_step(optimizer, cfg: TrainConfig, seed: int, rank: int, step: int) -> float:
    """Reseed dropout from (seed, rank, step) -- what makes resume exact -- and set this step's
    learning rate on every param group (times its `lr_scale`); returns the base lr."""
    torch.manual_seed(_h(seed, "dropout", rank, step) & 0x7FFFFFFF)
    lr = lr_at(step, cfg.optim.lr, cfg.schedule, cfg.max_steps)
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    return lr


def _maybe_fail_for_test(step: int, rank: int) -> None:
    """Fault-injection for the recovery test: RAYLM_FAIL_AT="<step>:<rank>:<marker file>" makes that
    rank's process exit hard once (the marker makes the replacement worker carry on)."""
    spec = os.environ.get("RAYLM_FAIL_AT")
    if not spec:
        return
    at, who, marker = spec.split(":", 2)
    if step == int(at) and rank == int(who) and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(17)


def train_worker(config: dict, session=None) -> dict:
    """Train from `config` = {model, train, data_dir, out, seed, init_from?}; returns final metrics."""
    model_cfg: GPTConfig = config["model"]
    cfg: TrainConfig = config["train"]
    data_dir, seed = config["data_dir"], config["seed"]
    session = session or LocalSession(dir=str(Path(config["out"])), keep=cfg.keep_checkpoints, keep_by=cfg.keep_by)
    rank, world = session.rank, session.world
    device = setup_device(cfg, getattr(session, "local_rank", 0))
    model_cfg = resolve_model_config(model_cfg, data_dir)
    train_w = TokenWindows(data_dir, "train", model_cfg.block_size, seed)
    val_w = TokenWindows(data_dir, "val", model_cfg.block_size, seed)

    torch.manual_seed(seed)  # identical initial weights on every rank
    model = GPT(model_cfg).to(device)
    if config.get("init_from"):
        ckpt.load_weights(model, config["init_from"])
    st = {"step": 0, "data": None, "best_val": math.inf, "bad_evals": 0}
    latest = session.latest_checkpoint()
    saved = None
    if latest is not None:
        ckpt.load_weights(model, latest)  # before wrapping: checkpoints hold full weights
        saved = ckpt.load_state(latest)
        st.update({k: saved[k] for k in st})
        if rank == 0:
            say(f"resumed from {latest} at step {st['step']}")
    raw_model = model
    model = parallelize(model, cfg.parallelism, world, device)
    optimizer = build_optimizer(model, cfg.optim)  # after fully_shard: FSDP params are DTensors
    if saved is not None:
        load_optimizer_state(model, optimizer, saved["optimizer"], cfg.parallelism)
    if cfg.compile:
        model = torch.compile(model)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext())
    loader = Loader(train_w, cfg.batch_size, rank, world, state=st["data"])

    tb = None
    if rank == 0 and config.get("tb_dir"):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:  # a bare GPU image with torch + tensorboard but not tensorboardX
            from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(config["tb_dir"])
    flops_tok = raw_model.flops_per_token()
    param_mb = local_param_bytes(raw_model) / 2**20
    peak = cfg.peak_flops or next((v for k, v in KNOWN_PEAK.items() if device.type == "cuda"
                                   and k in torch.cuda.get_device_name(device)), 0.0)
    tokens_per_step = cfg.batch_size * cfg.grad_accum * model_cfg.block_size  # per worker
    metrics: dict = {}
    t_last, steps_since = time.perf_counter(), 0
    if st["step"] >= cfg.max_steps:  # resumed a finished run: report where it stands, train nothing
        val = evaluate(model, val_w, cfg.batch_size, rank, world, cfg.eval_batches, device, autocast)
        metrics = {"step": st["step"], "val_loss": val, "val_ppl": math.exp(min(val, 50)),
                   "best_val_loss": st["best_val"], "already_complete": True}
        session.report(dict(metrics), None)
    while st["step"] < cfg.max_steps:
        step = st["step"]
        lr = begin_step(optimizer, cfg, seed, rank, step)
        for micro in range(cfg.grad_accum):
            x, y = next(loader)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with no_grad_sync(model, cfg.parallelism, world, micro == cfg.grad_accum - 1), autocast:
                _, loss = model(x, y)
            (loss / cfg.grad_accum).backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        st["step"] = step = step + 1
        st["data"] = loader.state
        _maybe_fail_for_test(step, rank)
        steps_since += 1
        is_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        if step % cfg.log_interval == 0 or is_eval:
            dt = time.perf_counter() - t_last
            loss_mean, gnorm_mean = _all_mean([loss.item(), float(gnorm)], device)
            tok_s = tokens_per_step * steps_since / dt  # per worker
            metrics = {"step": step, "loss": loss_mean, "lr": lr, "grad_norm": gnorm_mean,
                       "tokens_per_s": tok_s * world, "tokens_seen": step * tokens_per_step * world,
                       "flops_per_s": flops_tok * tok_s}
            if peak:
                metrics["mfu"] = flops_tok * tok_s / peak
            metrics["param_mem_mb"] = param_mb
            if device.type == "cuda":
                metrics["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
            else:
                metrics["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            t_last, steps_since = time.perf_counter(), 0
        ckpt_dir = None
        stop = False
        if is_eval:
            val = evaluate(model, val_w, cfg.batch_size, rank, world, cfg.eval_batches, device, autocast)
            metrics.update(val_loss=val, val_ppl=math.exp(min(val, 50)))
            if val < st["best_val"] - cfg.early_stopping_min_delta:
                st["best_val"], st["bad_evals"] = val, 0
            else:
                st["bad_evals"] += 1
            stop = cfg.early_stopping_patience > 0 and st["bad_evals"] >= cfg.early_stopping_patience
            metrics.update(best_val_loss=st["best_val"], early_stopped=stop)
            weights = full_model_state(model, cfg.parallelism)  # collectives: every rank takes part
            opt_state = optimizer_state(model, optimizer, cfg.parallelism)
            if rank == 0:
                ckpt_dir = ckpt.save(Path(config["out"]) / f".ckpt-{step}", raw_model, model_cfg,
                                     {"optimizer": opt_state, **st}, weights=weights,
                                     extra={"step": step, "val_loss": val, "data_dir": str(data_dir)})
                t_last = time.perf_counter()  # checkpoint time is not training throughput
        if step % cfg.log_interval == 0 or is_eval:
            if rank == 0:
                msg = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                               if k not in ("tokens_seen", "flops_per_s", "early_stopped"))
                say(f"[train] {msg}")
                if tb is not None:
                    for k, v in metrics.items():
                        if isinstance(v, int | float) and k != "step":
                            tb.add_scalar(f"train/{k}", v, step)
            if is_eval:  # Ray Train's report is a barrier with the controller: only at evaluations
                session.report(dict(metrics), ckpt_dir)
            else:
                session.log(dict(metrics))
        if stop:
            if rank == 0:
                say(f"[train] early stop at step {step}: no val improvement in "
                    f"{cfg.early_stopping_patience} evaluations")
            break
    if tb is not None:
        tb.close()
    return metrics
