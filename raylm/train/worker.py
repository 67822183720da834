"""What every training worker does around its model: the parts the pretraining loop (loop.py)
and the classification loop (classify_loop.py) share.

The device and its threads (and which kernels fp32 CPU products use), autocast, a step's
reseeding and learning rate, the optimizer step with clipping, means and agreement across
ranks, energy so far, the progress line and its ETA, TensorBoard, throughput and MFU, and the
fault-injection hook the recovery tests use.
"""

from __future__ import annotations

import math
import os
import resource
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from raylm import console, energy
from raylm.model import linear
from raylm.model.gpt import GPT
from raylm.train.config import TrainConfig
from raylm.train.data import stable_hash
from raylm.train.optim import lr_at, set_lr
from raylm.train.parallel import local_param_bytes
from raylm.train.session import say

# bf16 dense peak FLOP/s of known accelerators, for MFU when train.peak_flops is 0.
KNOWN_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def setup_device(cfg: TrainConfig, local_rank: int = 0) -> torch.device:
    if cfg.use_gpu and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    # Threads must match the CPUs Ray gave this worker, or workers fight over cores.
    torch.set_num_threads(cfg.cpus_per_worker)
    linear.use(cfg.cpu_matmul)
    return torch.device("cpu")


def autocast_for(cfg: TrainConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()


def begin_step(optimizer, cfg: TrainConfig, seed: int, rank: int, step: int) -> float:
    """Reseed dropout from (seed, rank, step) -- what makes resume exact -- and set this step's
    learning rate (optim.set_lr); returns the schedule's lr."""
    torch.manual_seed(stable_hash(seed, "dropout", rank, step) & 0x7FFFFFFF)
    lr = lr_at(step, cfg.optim.lr, cfg.schedule, cfg.max_steps)
    set_lr(optimizer, lr)
    return lr


def optimizer_step(model, optimizer, grad_clip: float) -> torch.Tensor:
    """Clip (0 = no clipping, the norm is still measured), step, clear; returns the grad norm."""
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return gnorm


def all_mean(values: list[float], device) -> list[float]:
    """Mean of each value across ranks (a collective: every rank calls it at the same step)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t.tolist()


def agree(flag: bool, device) -> bool:
    """True on every rank when it is true on any (a collective when distributed: call it at the
    same step on every rank). Ranks see a stop request at different moments; this makes them
    all stop at the same step boundary."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def improved(value: float, best: float, min_delta: float) -> bool:
    """Lower is better: `value` beats `best` by more than `min_delta`."""
    return value < best - min_delta


def energy_so_far(power: energy.Meter, world: int, device) -> dict:
    """Device-hours and kWh of every worker since this process's loop began (a collective: call
    it on every rank at an evaluation), and how they were had (energy.py)."""
    r = power.reading()
    h, e = all_mean([r["device_hours"], r["energy_kwh"]], device)
    return {"device_hours": h * world, "energy_kwh": e * world, "energy_method": r["energy_method"]}


class Eta:
    """Seconds left to `total` steps at the pace since this process's first step (so a resumed
    run's ETA does not count the steps it did not run)."""

    def __init__(self, step: int, total: int):
        self.t0, self.step0, self.total = time.perf_counter(), step, total

    def __call__(self, step: int) -> float | None:
        done = step - self.step0
        return (time.perf_counter() - self.t0) / done * (self.total - step) if done > 0 else None


def progress(tag: str, metrics: dict, eta: Eta) -> None:
    """`[train] step 50/600 (8%) loss 2.76 val_loss 2.70 6.5k tok/s ETA 1m40s` (every metric is in
    metrics.jsonl and TensorBoard)."""
    say(console.step_line(tag, metrics, eta.total, eta(metrics["step"])))


def open_tensorboard(tb_dir: str | None):
    if not tb_dir:
        return None
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # a bare GPU image with torch + tensorboard but not tensorboardX
        from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(tb_dir)


def maybe_fail_for_test(step: int, rank: int) -> None:
    """Fault-injection for the recovery test: RAYLM_FAIL_AT="<step>:<rank>:<marker file>" makes that
    rank's process exit hard once (the marker makes the replacement worker carry on)."""
    spec = os.environ.get("RAYLM_FAIL_AT")
    if not spec:
        return
    at, who, marker = spec.split(":", 2)
    if step == int(at) and rank == int(who) and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(17)


def train_flops_per_token(model: GPT) -> float:
    """A training step's model FLOPs per token: 6N + 12LTC (GPT.flops_per_token), less the
    weight-gradient product (2 FLOPs per weight) that frozen weights skip: a LoRA run computes
    the forward pass and the input gradients through its frozen body, but no gradient for it."""
    frozen = sum(p.numel() for name, p in model.named_parameters() if not p.requires_grad and name != "wpe.weight")
    return model.flops_per_token() - 2 * frozen


class Throughput:
    """Tokens/s, FLOP/s, MFU and memory over the steps since the last progress line."""

    def __init__(self, model: GPT, cfg: TrainConfig, world: int, device: torch.device):
        self.flops_tok = train_flops_per_token(model)
        self.param_mb = local_param_bytes(model) / 2**20
        self.tokens_per_step = cfg.batch_size * cfg.grad_accum * model.cfg.block_size  # per worker
        self.world, self.device = world, device
        self.peak = cfg.peak_flops or next((v for k, v in KNOWN_PEAK.items() if device.type == "cuda"
                                            and k in torch.cuda.get_device_name(device)), 0.0)
        self.restart()

    def restart(self) -> None:
        """Start timing afresh (after a checkpoint: saving is not training throughput)."""
        self.t, self.steps = time.perf_counter(), 0

    def metrics(self, step: int) -> dict:
        tok_s = self.tokens_per_step * self.steps / (time.perf_counter() - self.t)  # per worker
        m = {"tokens_per_s": tok_s * self.world, "tokens_seen": step * self.tokens_per_step * self.world,
             "flops_per_s": self.flops_tok * tok_s}
        if self.peak:
            m["mfu"] = self.flops_tok * tok_s / self.peak
        m["param_mem_mb"] = self.param_mb
        if self.device.type == "cuda":
            m["peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        else:
            m["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        self.restart()
        return m
