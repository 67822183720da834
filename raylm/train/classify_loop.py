"""Classification fine-tuning: the per-worker loop (plain PyTorch, runs with or without Ray).
The driver around it (checks, labels, tokenizer, launch, final report) is classify_driver.py.

The worker reads the labelled files itself (small), trains on its share of each global batch
(DDP when there are several workers; FSDP is refused before launch), validates every
`train.eval_interval` steps on its shard of the validation set with confusion matrices summed
across workers, keeps the best weights by `finetune.metric`, stops early after
`train.early_stopping_patience` evaluations without improvement, then evaluates the best
weights on the test file the same way. The final checkpoint (best weights, test.json) is the
last one reported. The parts around the step are worker.py's, as the pretraining loop's.

With `finetune.lora` the body is frozen and LoRA adapters (lora.py) and the head train; the
optimizer holds those alone, and checkpoints hold them with a reference to init_from. Under DDP
every adapter is used in every forward pass, so no find_unused_parameters is needed; frozen
parameters take no part in the gradient all-reduce.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from raylm import energy, storage
from raylm.eval.classify import all_reduce_confusion, confusion_matrix, metrics_from_confusion
from raylm.model.gpt import GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train import lora
from raylm.train.classify_data import Labelled, batch_indices, encode, pad_batch, read_rows, to_indices
from raylm.train.config import TrainConfig
from raylm.train.finetune import (FinetuneConfig, SequenceClassifier, classifier_state, freeze, load_classifier_weights,
                                  param_groups, save_classifier)
from raylm.train.loop import drop_unreported_checkpoints
from raylm.train.optim import build_optimizer
from raylm.train.parallel import load_optimizer_state, no_grad_sync, parallelize
from raylm.train.session import LocalSession, resume, say
from raylm.train.worker import (Eta, agree, all_mean, autocast_for, begin_step, energy_so_far, optimizer_step, progress,
                                setup_device)

RUN_NAME = "classify"


@dataclass
class ClassifyRun:
    """Arguments of one classification fine-tuning worker (fixed by the driver for all ranks)."""

    finetune: FinetuneConfig
    train: TrainConfig
    model: GPTConfig              # the body's architecture (the checkpoint's when init_from is set)
    labels: list[str]             # class names in index order
    class_weights: list[float]    # loss weight per class; [] = equal
    tokenizer_json: str           # the tokenizer, inline: every checkpoint carries a copy
    pad_id: int
    out: str                      # the stage folder: metrics.jsonl, temp checkpoints, report
    seed: int
    init_from: str | None = None  # pretrained (or classifier) checkpoint; None = random init
    init_task: str | None = None  # "classify" when init_from is a classifier checkpoint
    scratch: str | None = None    # node-local disk (cluster.local_dir); None = the temp folder
    lora: dict | None = None      # finetune.lora on: model.json's "lora" entry (checkpoint.lora_record)


@dataclass
class ClassifyState:
    """Loop state a checkpoint holds for an exact resume."""

    step: int = 0
    best: float = -math.inf       # best validation score (higher is better; metric loss is negated)
    best_step: int = 0
    best_val_loss: float = math.inf  # validation loss of the best weights (train.keep_by val_loss)
    bad_evals: int = 0            # validations since the score last improved
    done: bool = False            # early-stopped or finished; the final evaluation is all that is left

    @classmethod
    def from_saved(cls, saved: dict) -> ClassifyState:
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


@dataclass
class _Parts:
    """What a worker builds once; the helpers below take this instead of a dozen arguments."""

    run: ClassifyRun
    session: Any
    model: torch.nn.Module        # DDP-wrapped when world > 1
    raw: SequenceClassifier       # the unwrapped module: checkpoints, best weights
    optimizer: torch.optim.Optimizer
    device: torch.device
    autocast: Any
    tok: Any                      # tokenizers.Tokenizer
    max_len: int                  # tokens kept per text
    frozen: int                   # parameters that do not train (finetune.freeze_*, LoRA's frozen body)
    trainable: int                # parameters that train (LoRA: adapters and head)
    local: Path                   # this node's files of `out` (out itself when local): temp checkpoints

    def meta(self, **more) -> dict:
        """model.json fields of this run's checkpoints."""
        ft = self.run.finetune
        return {"labels": self.run.labels, "pooling": ft.pooling, "lowercase": ft.lowercase,
                "tokenizer": "tokenizer.json", "init_from": self.run.init_from, "max_len": self.max_len,
                "pad_id": self.run.pad_id, **({"lora": self.run.lora} if self.run.lora else {}), **more}


def local_file(path: str, scratch: str | None = None) -> str:
    """A labelled file as a local path: an object-store one is copied to node-local scratch once."""
    if not storage.is_remote(path):
        return path
    import hashlib

    dest = storage.scratch(scratch, "files") / (hashlib.sha1(path.encode()).hexdigest()[:12] + "-" +
                                                 path.rsplit("/", 1)[-1].split("?", 1)[0])
    if not dest.is_file():
        storage.download(path, dest)
    return str(dest)


def load_split(path: str, ft: FinetuneConfig, labels: list[str], limit: int, scratch: str | None = None) -> Labelled:
    texts, raw, skipped = read_rows(local_file(path, scratch), ft.format, ft.header, ft.columns, ft.text_column,
                                    ft.label_column, limit)
    if ft.lowercase:
        texts = [t.lower() for t in texts]
    return to_indices(texts, raw, ft.label_map, labels, skipped)


@torch.no_grad()
def evaluate(model, ids: list[list[int]], y: list[int], k: int, batch_size: int, rank: int, world: int,
             device, pad_id: int, autocast=nullcontext()) -> tuple[np.ndarray, float]:
    """(confusion matrix summed over workers, mean loss) on the whole set; rank r scores
    examples r, r + W, ... so each example is counted exactly once."""
    was_training = model.training
    model.eval()
    mine = sorted(range(rank, len(ids), world), key=lambda i: len(ids[i]))  # by length: less padding
    cm = np.zeros((k, k), dtype=np.int64)
    loss = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of losses, examples)
    for b in range(0, len(mine), batch_size):
        sel = mine[b: b + batch_size]
        x, lengths = pad_batch([ids[i] for i in sel], pad_id)
        target = torch.tensor([y[i] for i in sel], device=device)
        with autocast:
            logits = model(x.to(device), lengths.to(device)).float()
        loss += torch.tensor([F.cross_entropy(logits, target, reduction="sum").item(), len(sel)],
                             dtype=torch.float64, device=device)
        cm += confusion_matrix(target.cpu().numpy(), logits.argmax(-1).cpu().numpy(), k)
    cm = all_reduce_confusion(cm)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(loss)
    model.train(was_training)
    return cm, (loss[0] / loss[1].clamp(min=1)).item()


def _score(m: dict, loss: float, metric: str) -> float:
    return -loss if metric == "loss" else m[metric]  # higher is better


def _build(run: ClassifyRun, session, device) -> tuple[_Parts, ClassifyState, dict | None]:
    """Model (initial, `init_from` or resumed), wrapper, optimizer; the state and best weights
    (CPU state dict, None before the first validation) to continue from."""
    from tokenizers import Tokenizer

    ft, cfg = run.finetune, run.train
    torch.manual_seed(run.seed)  # identical head init on every rank
    model = SequenceClassifier(run.model, len(run.labels), ft.pooling, ft.head_dropout).to(device)
    if run.init_from:
        if run.init_task == "classify":
            load_classifier_weights(model, run.init_from)
        else:
            ckpt.load_weights(model.gpt, run.init_from)  # strict: every body weight must be there
    if ft.lora.on:  # after the base weights: they stay as loaded, frozen
        lora.add_adapters(model.gpt, ft.lora)
    freeze(model, ft.freeze_embeddings, ft.freeze_layers)
    trainable, total = lora.count(model)
    optimizer = build_optimizer(param_groups(model, cfg.optim.weight_decay, ft.head_lr_mult, ft.layer_decay),
                                cfg.optim)
    def load(path: Path) -> tuple[dict, dict | None]:
        from safetensors.torch import load_file

        load_classifier_weights(model, path)
        saved = ckpt.load_state(path)
        ClassifyState.from_saved(saved)  # a state without its fields is corrupt too
        best = path / "best.safetensors"
        return saved, (load_file(str(best)) if best.is_file() else None)

    latest, loaded = resume(session.resume_candidates(), load, session.rank)
    saved, best_weights = loaded or (None, None)
    state = ClassifyState.from_saved(saved) if saved is not None else ClassifyState()
    if best_weights is None and latest is not None and state.best_step == state.step and state.best > -math.inf:
        best_weights = {key: v.clone() for key, v in classifier_state(model).items()}
    wrapped = parallelize(model, "ddp", session.world, device)
    if saved is not None:
        load_optimizer_state(wrapped, optimizer, saved["optimizer"], "ddp")
    parts = _Parts(run=run, session=session, model=wrapped, raw=model, optimizer=optimizer, device=device,
                   autocast=autocast_for(cfg, device), tok=Tokenizer.from_str(run.tokenizer_json),
                   max_len=min(ft.max_len or run.model.block_size, run.model.block_size), frozen=total - trainable,
                   trainable=trainable, local=storage.work_dir(run.out, run.scratch))
    return parts, state, best_weights


def _train_step(p: _Parts, ids: list[list[int]], y: list[int], weight, step: int):
    """One optimizer step over grad_accum micro-batches; returns (lr, last micro-batch loss, grad norm)."""
    run, cfg, ft = p.run, p.run.train, p.run.finetune
    rank, world = p.session.rank, p.session.world
    lr = begin_step(p.optimizer, cfg, run.seed, rank, step)
    for micro in range(cfg.grad_accum):
        sel = batch_indices(len(ids), step * cfg.grad_accum + micro, cfg.batch_size, rank, world, run.seed)
        x, lengths = pad_batch([ids[i] for i in sel], run.pad_id)
        x, lengths = x.to(p.device), lengths.to(p.device)
        target = torch.tensor([y[i] for i in sel], device=p.device)
        with no_grad_sync(p.model, "ddp", world, micro == cfg.grad_accum - 1), p.autocast:
            if ft.lm_loss_weight > 0:  # GPT-1's auxiliary LM objective on the same forward pass
                logits, lm = p.model(x, lengths, lm_loss=True)
                loss = F.cross_entropy(logits.float(), target, weight=weight) + ft.lm_loss_weight * lm
            else:
                loss = F.cross_entropy(p.model(x, lengths).float(), target, weight=weight)
        (loss / cfg.grad_accum).backward()
    return lr, loss, optimizer_step(p.model, p.optimizer, cfg.grad_clip)


def _score_set(p: _Parts, data: Labelled, ids: list[list[int]], positive: int | None = None) -> tuple[dict, float]:
    """(accuracy / P / R / F1 ..., mean loss) of the current weights on a labelled set, sharded."""
    ft = p.run.finetune
    cm, loss = evaluate(p.model, ids, data.labels, len(p.run.labels), ft.eval_batch_size, p.session.rank,
                        p.session.world, p.device, p.run.pad_id, p.autocast)
    return metrics_from_confusion(cm, p.run.labels, positive), loss


def _save(p: _Parts, name: str, state: ClassifyState, meta: dict, files: dict | None = None,
          tensors: dict | None = None) -> Path | None:
    """Rank 0 writes a checkpoint directory `<out>/.ckpt-<name>` (weights, tokenizer, state)."""
    if p.session.rank != 0:
        return None
    return save_classifier(p.local / f".ckpt-{name}", p.raw, p.run.model, p.meta(**meta),
                           {"optimizer": p.optimizer.state_dict(), **asdict(state)},
                           files={"tokenizer.json": p.run.tokenizer_json, **(files or {})}, tensors=tensors)


def classify_worker(run: ClassifyRun, session=None) -> dict:
    """Fine-tune as `run` says; returns the final metrics (test set included)."""
    ft, cfg = run.finetune, run.train
    session = session or LocalSession(dir=run.out, keep=cfg.keep_checkpoints, keep_by=cfg.keep_by)
    p, state, best_weights = _build(run, session, setup_device(cfg, session.local_rank))
    if session.rank == 0:
        drop_unreported_checkpoints(p.local)
    tr = load_split(ft.train_file, ft, run.labels, ft.max_train_examples, run.scratch)
    tr_ids = encode(p.tok, tr.texts, p.max_len)
    if not tr_ids:
        raise ValueError(f"{ft.train_file}: no usable rows (skipped: {tr.skipped})")
    val = load_split(ft.val_file, ft, run.labels, ft.max_eval_examples, run.scratch) if ft.val_file else None
    val_ids = encode(p.tok, val.texts, p.max_len) if val else None
    weight = torch.tensor(run.class_weights, dtype=torch.float32, device=p.device) if run.class_weights else None
    if session.rank == 0:
        say(f"[finetune] {len(tr_ids)} train examples ({tr.skipped or 'none'} skipped), {len(run.labels)} classes, "
            f"{p.trainable} trainable / {p.frozen} frozen params"
            + (f" (LoRA r={ft.lora.r} on {', '.join(ft.lora.targets)})" if ft.lora.on else "")
            + f", workers {session.world}")
    metrics: dict = {}
    t0 = time.perf_counter()
    timing = {"seconds": 0.0, "steps": 0}  # training steps of this process alone (no evaluation, no saving)
    eta = Eta(state.step, cfg.max_steps)
    power = energy.Meter(p.device.index or 0 if p.device.type == "cuda" else None, cfg.cpus_per_worker)
    while state.step < cfg.max_steps and not state.done:
        t_step = time.perf_counter()
        lr, loss, gnorm = _train_step(p, tr_ids, tr.labels, weight, state.step)
        timing["seconds"] += time.perf_counter() - t_step
        timing["steps"] += 1
        state.step = step = state.step + 1
        halt = agree(session.should_stop(), p.device)  # Ctrl-C / SIGTERM: checkpoint here, then return
        regular_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        is_eval = regular_eval or halt
        if not (is_eval or step % cfg.log_interval == 0):
            continue
        loss_mean, gnorm_mean = all_mean([loss.item(), float(gnorm)], p.device)
        metrics = {"step": step, "loss": loss_mean, "lr": lr, "grad_norm": gnorm_mean,
                   "seconds": time.perf_counter() - t0, **_step_time(timing)}
        ckpt_dir = None
        if is_eval and val_ids:
            m, vloss = _score_set(p, val, val_ids)
            score = _score(m, vloss, ft.metric)
            metrics.update(val_loss=vloss, val_accuracy=m["accuracy"], val_macro_f1=m["macro_f1"])
            if not regular_eval:  # a stop request's extra validation leaves the best weights as they were
                pass
            elif score > state.best + cfg.early_stopping_min_delta:
                state.best, state.best_step, state.best_val_loss, state.bad_evals = score, step, vloss, 0
                # clone: on CPU the state dict tensors share storage with the live parameters
                best_weights = {key: v.clone() for key, v in classifier_state(p.raw).items()}
            else:
                state.bad_evals += 1
            state.done = 0 < cfg.early_stopping_patience <= state.bad_evals
            metrics.update(best_val=state.best, best_step=state.best_step, early_stopped=state.done)
        if is_eval:
            metrics.update(energy_so_far(power, session.world, p.device))
        if is_eval:
            # a resumed run needs the best weights too, when they are not the current ones
            extra = {"best.safetensors": best_weights} if best_weights and state.best_step != step else None
            ckpt_dir = _save(p, str(step), state, {"step": step, **_val_loss(metrics)}, tensors=extra)
        if session.rank == 0:
            progress("finetune", metrics, eta)
        session.report(dict(metrics), ckpt_dir)
        if halt:  # the test evaluation waits for the rerun that finishes training
            return {**metrics, "interrupted": True}
    if best_weights is not None:
        p.raw.load_state_dict(best_weights, strict=False)  # tied lm_head follows wte
    return _final(p, state, _step_time(timing))


def _step_time(timing: dict) -> dict:
    """Mean seconds per optimizer step of this process (rank 0's), evaluation and saving excluded."""
    return {"step_s": timing["seconds"] / timing["steps"]} if timing["steps"] else {}


def _val_loss(metrics: dict) -> dict:
    return {"val_loss": metrics["val_loss"]} if "val_loss" in metrics else {}


def _final(p: _Parts, state: ClassifyState, timing: dict) -> dict:
    """Test evaluation of the best weights (sharded, counts summed), then the final checkpoint."""
    ft = p.run.finetune
    test_file = ft.test_file or ft.val_file
    metrics = {"step": state.step, "best_step": state.best_step, "final": True, "trainable_params": p.trainable,
               **timing}
    if state.best > -math.inf:  # the validation metric of the weights tested (higher is better)
        metrics.update(best_val=state.best, val_loss=state.best_val_loss)
    test = None
    if test_file:
        te = load_split(test_file, ft, p.run.labels, ft.max_eval_examples, p.run.scratch)
        pos = p.run.labels.index(ft.positive_label) if ft.positive_label else None
        m, tloss = _score_set(p, te, encode(p.tok, te.texts, p.max_len), pos)
        test = {"file": test_file, "loss": tloss, "skipped": te.skipped, **m}
        metrics.update(test_accuracy=test["accuracy"], test_macro_f1=test["macro_f1"])
    state = replace(state, done=True)
    ckpt_dir = _save(p, "final", state, {"step": state.step, "best_step": state.best_step, **_val_loss(metrics)},
                     files={"test.json": json.dumps(test, indent=2)})
    p.session.report(metrics, ckpt_dir)
    return metrics
