"""Training configuration: the recipe (optimizer, schedule, precision) and how it scales."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class OptimConfig:
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3              # peak learning rate
    weight_decay: float = 0.1     # decoupled (AdamW) / L2 (SGD); applied to matrices only
    beta1: float = 0.9            # Adam betas
    beta2: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.9         # SGD only
    nesterov: bool = False        # SGD only

    def __post_init__(self):
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")


@dataclass
class ScheduleConfig:
    name: Literal["cosine", "linear", "constant", "wsd"] = "cosine"  # decay after warmup
    warmup_steps: int = 100       # linear warmup from 0 to lr
    min_lr: float = 1e-4          # floor reached at decay_steps
    decay_steps: int = 0          # step where decay ends; 0 = train.max_steps
    wsd_decay_fraction: float = 0.2  # wsd: last fraction of decay_steps spent decaying linearly

    def __post_init__(self):
        if self.warmup_steps < 0 or self.decay_steps < 0 or not 0 < self.wsd_decay_fraction <= 1:
            raise ValueError("warmup_steps, decay_steps >= 0 and 0 < wsd_decay_fraction <= 1 required")
        if self.min_lr < 0:
            raise ValueError(f"min_lr must be >= 0, got {self.min_lr}")


@dataclass
class TrainConfig:
    max_steps: int = 2000         # optimizer steps
    objective: Literal["clm", "mlm"] | None = None  # clm: next token (a decoder); mlm: masked tokens, BERT's
                                  # 15% / 80-10-10 (an encoder); None = the one of model.arch
    batch_size: int = 12          # sequences per worker per micro-step
    grad_accum: int = 1           # micro-steps per optimizer step
    grad_clip: float = 1.0        # max global gradient norm; 0 = off
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 = autocast (GPU or CPU)
    compile: bool = False         # torch.compile the model
    fused_loss: bool = False      # LM head + cross-entropy in chunks of rows: no (tokens x vocab) logits in memory
    cpu_matmul: Literal["auto", "onednn", "blas"] = "auto"  # fp32 CPU Linear layers: oneDNN's kernels or the BLAS
                                  # (MKL); auto = oneDNN on x86-64 (raylm/model/linear.py says why)
    eval_interval: int = 250      # steps between validations (and checkpoints)
    eval_batches: int = 20        # batches per validation per worker; 0 = the whole split
    log_interval: int = 50        # steps between progress lines
    keep_checkpoints: int = 2     # checkpoints kept (0 = all); the newest is always kept for resume
    keep_by: Literal["newest", "val_loss"] = "newest"  # which ones: the newest K, or the K best by val_loss
    early_stopping_patience: int = 0  # validations without improvement before stopping; 0 = off
    early_stopping_min_delta: float = 0.0  # improvement smaller than this (nats) does not count
    num_workers: int = 1          # Ray Train workers; 0 = run in this process without Ray
    cpus_per_worker: int = 1      # CPUs reserved per worker; torch threads are set to match
    use_gpu: bool = False         # one GPU per worker (NCCL), else CPU (gloo)
    gpus_per_worker: float = 1.0  # with use_gpu: GPUs a worker reserves; a fraction (one worker only)
                                  # shares a GPU, as tune.gpus_per_trial does for small trials
    resources: dict[str, float] = field(default_factory=dict)  # extra Ray resources per worker, e.g. {trainer: 1}
    label_selector: dict[str, str] = field(default_factory=dict)  # node labels a worker needs, e.g. {raylm-role: train}
    parallelism: Literal["ddp", "fsdp"] = "ddp"  # replicate (DDP) or shard (FSDP2 fully_shard) over workers
    max_failures: int = 0         # worker failures Ray Train recovers from (restart from checkpoint)
    data_dir: str | None = None   # shards + manifest; default <out>/data/shards
    peak_flops: float = 0.0       # per worker FLOP/s for MFU; 0 = detect known GPUs / skip
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self):
        for k in ("max_steps", "batch_size", "grad_accum", "eval_interval", "log_interval", "cpus_per_worker"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.num_workers < 0 or self.keep_checkpoints < 0 or self.eval_batches < 0:
            raise ValueError("num_workers, keep_checkpoints and eval_batches must be >= 0")
        g = self.gpus_per_worker
        if not (0 < g <= 1 or float(g).is_integer()):
            raise ValueError(f"train.gpus_per_worker must be a fraction in (0, 1] or a whole number, got {g}")
        if g < 1 and self.num_workers > 1:
            raise ValueError(f"train.gpus_per_worker {g} with {self.num_workers} workers: NCCL cannot run two "
                             "ranks of one job on one GPU; use one worker, or whole GPUs")
        if set(self.resources) & {"CPU", "GPU"}:
            raise ValueError("train.resources: set CPUs with train.cpus_per_worker and GPUs with train.use_gpu")
        if any(v < 0 for v in self.resources.values()):
            raise ValueError(f"train.resources must be >= 0, got {self.resources}")
        if self.schedule.name != "constant" and self.schedule.min_lr > self.optim.lr:
            # a decay that rises; a sweep over optim.lr can sample this, so parse_space checks it
            raise ValueError(f"schedule.min_lr ({self.schedule.min_lr:g}) exceeds optim.lr ({self.optim.lr:g}): "
                             f"the schedule would rise instead of decay; lower schedule.min_lr")
        if self.schedule.warmup_steps > self.max_steps:
            raise ValueError(f"schedule.warmup_steps ({self.schedule.warmup_steps}) exceeds max_steps "
                             f"({self.max_steps})")
