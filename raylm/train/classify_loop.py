"""Classification fine-tuning: the per-worker loop (plain PyTorch, runs with or without Ray)
and the driver around it (TorchTrainer, final report).

The worker reads the labelled files itself (small), trains on its share of each global
batch (DDP when there are several workers), validates every `train.eval_interval` steps on its
shard of the validation set with confusion matrices summed across workers, keeps the best
weights by `finetune.metric`, stops early after `train.early_stopping_patience` evaluations
without improvement, then evaluates the best weights on the test file the same way. The
final checkpoint (best weights, test.json) is the last one reported.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from raylm.eval.classify import all_reduce_confusion, confusion_matrix, metrics_from_confusion, write_report
from raylm.model.gpt import GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train.classify_data import (Labelled, balanced_weights, batch_indices, encode, label_list, pad_batch,
                                       read_rows, to_indices, tokenizer_path)
from raylm.train.config import TrainConfig
from raylm.train.finetune import (FinetuneConfig, SequenceClassifier, classifier_state, freeze,
                                  load_classifier_weights, param_groups, save_classifier)
from raylm.train.loop import LocalSession, _all_mean, begin_step, say, setup_device

RUN_NAME = "classify"


def load_split(path: str, ft: FinetuneConfig, labels: list[str], limit: int) -> Labelled:
    texts, raw, skipped = read_rows(path, ft.format, ft.header, ft.columns, ft.text_column, ft.label_column, limit)
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


def build_optimizer(model, cfg: TrainConfig, ft: FinetuneConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.optim.weight_decay, ft.head_lr_mult, ft.layer_decay)
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)


def classify_worker(config: dict, session=None) -> dict:
    """Fine-tune from `config` (built by `run`); returns the final metrics."""
    from tokenizers import Tokenizer

    ft: FinetuneConfig = config["finetune"]
    cfg: TrainConfig = config["train"]
    model_cfg: GPTConfig = config["model"]
    labels, seed, out = config["labels"], config["seed"], Path(config["out"])
    k, pad_id = len(labels), config["pad_id"]
    session = session or LocalSession(dir=str(out), keep=cfg.keep_checkpoints)
    rank, world = session.rank, session.world
    device = setup_device(cfg, getattr(session, "local_rank", 0))
    tok = Tokenizer.from_str(config["tokenizer_json"])
    max_len = min(ft.max_len or model_cfg.block_size, model_cfg.block_size)
    tr = load_split(ft.train_file, ft, labels, ft.max_train_examples)
    tr_ids = encode(tok, tr.texts, max_len)
    val = load_split(ft.val_file, ft, labels, ft.max_eval_examples) if ft.val_file else None
    val_ids = encode(tok, val.texts, max_len) if val else None
    if not tr_ids:
        raise ValueError(f"{ft.train_file}: no usable rows (skipped: {tr.skipped})")

    torch.manual_seed(seed)  # identical head init on every rank
    model = SequenceClassifier(model_cfg, k, ft.pooling, ft.head_dropout).to(device)
    if config.get("init_from"):
        if config.get("init_task") == "classify":
            load_classifier_weights(model, config["init_from"])
        else:
            ckpt.load_weights(model.gpt, config["init_from"])  # strict: every body weight must be there
    frozen = freeze(model, ft.freeze_embeddings, ft.freeze_layers)
    optimizer = build_optimizer(model, cfg, ft)
    weight = torch.tensor(config["class_weights"], dtype=torch.float32, device=device) if config["class_weights"] \
        else None
    st = {"step": 0, "best": -math.inf, "best_step": 0, "bad_evals": 0, "done": False}
    best_weights = None  # CPU state dict of the best validation model; None = no validation yet
    latest = session.latest_checkpoint()
    if latest is not None:
        load_classifier_weights(model, latest)
        saved = ckpt.load_state(latest)
        optimizer.load_state_dict(saved["optimizer"])
        st.update({key: saved[key] for key in st})
        if (Path(latest) / "best.safetensors").is_file():
            from safetensors.torch import load_file

            best_weights = load_file(str(Path(latest) / "best.safetensors"))
        elif st["best_step"] == st["step"] and st["best"] > -math.inf:
            best_weights = {key: v.clone() for key, v in classifier_state(model).items()}
    raw = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    meta = {"labels": labels, "pooling": ft.pooling, "lowercase": ft.lowercase, "tokenizer": "tokenizer.json",
            "init_from": config.get("init_from"),
            "max_len": max_len, "pad_id": pad_id}
    files = {"tokenizer.json": config["tokenizer_json"]}
    if rank == 0:
        say(f"[finetune] {len(tr_ids)} train examples ({tr.skipped or 'none'} skipped), {k} classes, "
            f"{frozen} frozen params, workers {world}")
    metrics: dict = {}
    t0 = time.perf_counter()
    while st["step"] < cfg.max_steps and not st["done"]:
        step = st["step"]
        lr = begin_step(optimizer, cfg, seed, rank, step)
        for micro in range(cfg.grad_accum):
            sel = batch_indices(len(tr_ids), step * cfg.grad_accum + micro, cfg.batch_size, rank, world, seed)
            x, lengths = pad_batch([tr_ids[i] for i in sel], pad_id)
            y = torch.tensor([tr.labels[i] for i in sel], device=device)
            sync = nullcontext() if world == 1 or micro == cfg.grad_accum - 1 else model.no_sync()
            with sync, autocast:
                if ft.lm_loss_weight > 0:
                    logits, lm = model(x.to(device), lengths.to(device), lm_loss=True)
                    loss = F.cross_entropy(logits.float(), y, weight=weight) + ft.lm_loss_weight * lm
                else:
                    loss = F.cross_entropy(model(x.to(device), lengths.to(device)).float(), y, weight=weight)
            (loss / cfg.grad_accum).backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        st["step"] = step = step + 1
        is_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        if not (is_eval or step % cfg.log_interval == 0):
            continue
        loss_mean, gnorm_mean = _all_mean([loss.item(), float(gnorm)], device)
        metrics = {"step": step, "loss": loss_mean, "lr": lr, "grad_norm": gnorm_mean,
                   "seconds": time.perf_counter() - t0}
        ckpt_dir = None
        if is_eval and val_ids:
            cm, vloss = evaluate(model, val_ids, val.labels, k, ft.eval_batch_size, rank, world, device, pad_id,
                                 autocast)
            m = metrics_from_confusion(cm, labels)
            score = _score(m, vloss, ft.metric)
            metrics.update(val_loss=vloss, val_accuracy=m["accuracy"], val_macro_f1=m["macro_f1"])
            if score > st["best"] + cfg.early_stopping_min_delta:
                st.update(best=score, best_step=step, bad_evals=0)
                # clone: on CPU the state dict tensors share storage with the live parameters
                best_weights = {key: v.clone() for key, v in classifier_state(raw).items()}
            else:
                st["bad_evals"] += 1
            st["done"] = cfg.early_stopping_patience > 0 and st["bad_evals"] >= cfg.early_stopping_patience
            metrics.update(best_val=st["best"], best_step=st["best_step"], early_stopped=st["done"])
        if is_eval and rank == 0:
            state = {"optimizer": optimizer.state_dict(), **st}
            # a resumed run needs the best weights too, when they are not the current ones
            extra = {"best.safetensors": best_weights} if best_weights and st["best_step"] != step else None
            ckpt_dir = save_classifier(out / f".ckpt-{step}", raw, model_cfg, {**meta, "step": step}, state,
                                       files=files, tensors=extra)
        if rank == 0:
            say("[finetune] " + " ".join(f"{a} {b:.4g}" if isinstance(b, float) else f"{a} {b}"
                                         for a, b in metrics.items()))
        session.report(dict(metrics), ckpt_dir)
    if best_weights is not None:
        raw.load_state_dict(best_weights, strict=False)  # tied lm_head follows wte
    return _final(model, raw, config, ft, tok, labels, max_len, st, meta, files, session, optimizer, device,
                  autocast)


def _final(model, raw, config, ft, tok, labels, max_len, st, meta, files, session, optimizer, device, autocast):
    """Test evaluation of the best weights (sharded, counts summed), then the final checkpoint."""
    test_file = ft.test_file or ft.val_file
    metrics = {"step": st["step"], "best_step": st["best_step"], "final": True}
    if st["best"] > -math.inf:  # the validation metric of the weights tested (higher is better)
        metrics["best_val"] = st["best"]
    test = None
    if test_file:
        te = load_split(test_file, ft, labels, ft.max_eval_examples)
        cm, tloss = evaluate(model, encode(tok, te.texts, max_len), te.labels, len(labels), ft.eval_batch_size,
                             session.rank, session.world, device, config["pad_id"], autocast)
        pos = labels.index(ft.positive_label) if ft.positive_label else None
        test = {"file": test_file, "loss": tloss, "skipped": te.skipped, **metrics_from_confusion(cm, labels, pos)}
        metrics.update(test_accuracy=test["accuracy"], test_macro_f1=test["macro_f1"])
    ckpt_dir = None
    if session.rank == 0:
        st = {**st, "done": True}
        files = {**files, "test.json": json.dumps(test, indent=2)}
        ckpt_dir = save_classifier(Path(config["out"]) / ".ckpt-final", raw, config["model"],
                                   {**meta, "step": st["step"], "best_step": st["best_step"]},
                                   {"optimizer": optimizer.state_dict(), **st}, files=files)
    session.report(metrics, ckpt_dir)
    return metrics


def _ray_worker(config: dict) -> None:
    from raylm.train.trainer import RaySession

    classify_worker(config, RaySession(config["out"]))


def run(ft: FinetuneConfig, cfg: TrainConfig, out: str, seed: int, init_from: str | None,
        model_cfg: GPTConfig | None = None, storage_path: str | None = None, data_dir: str | None = None) -> dict:
    from tokenizers import Tokenizer

    from raylm.data.tokenize import EOS

    if ft.task != "classify" or not ft.train_file:
        raise ValueError("run_classify needs finetune.task=classify and finetune.train_file")
    t0 = time.time()
    init_task = None
    if ft.random_init:
        init_from = None
    if init_from:
        init_task = json.loads((Path(init_from) / "model.json").read_text()).get("task")
        model_cfg = ckpt.read_model_config(init_from)  # the architecture is the checkpoint's
    elif model_cfg is None:
        raise ValueError("random init (no init_from) needs a model config")
    tok_path = tokenizer_path(init_from, ft.tokenizer, ft.data_dir or data_dir)
    tok = Tokenizer.from_file(tok_path)
    vocab = tok.get_vocab_size()
    if model_cfg.vocab_size == 0:
        model_cfg = replace(model_cfg, size=None, vocab_size=vocab)
    elif model_cfg.vocab_size < vocab:
        raise ValueError(f"model vocab_size {model_cfg.vocab_size} < tokenizer {tok_path} vocab {vocab}: "
                         f"they were not made together")
    model_cfg = replace(model_cfg, size=None)
    texts, raw, _ = read_rows(ft.train_file, ft.format, ft.header, ft.columns, ft.text_column, ft.label_column,
                              ft.max_train_examples)
    labels = label_list(raw, ft.label_map, ft.labels)
    if len(labels) < 2:
        raise ValueError(f"{ft.train_file}: need at least 2 classes, found {labels}")
    if ft.class_weights and len(ft.class_weights) != len(labels):
        raise ValueError(f"finetune.class_weights has {len(ft.class_weights)} values for labels {labels}")
    weights = list(ft.class_weights) or (
        balanced_weights(to_indices(texts, raw, ft.label_map, labels, {}).labels, len(labels))
        if ft.balanced_class_weights else [])
    eos = tok.token_to_id(EOS)
    out_dir = Path(out).resolve()
    config = {"finetune": ft, "train": cfg, "model": model_cfg, "labels": labels, "class_weights": weights,
              "tokenizer_json": tok.to_str(), "pad_id": eos if eos is not None else 0, "init_from": init_from,
              "init_task": init_task, "seed": seed, "out": str(out_dir)}
    if cfg.num_workers == 0:
        session = LocalSession(dir=str(out_dir), keep=cfg.keep_checkpoints)
        metrics = classify_worker(config, session)
        ck = str(session.latest_checkpoint())
        test = json.loads((Path(ck) / "test.json").read_text())
    else:
        metrics, ck, test = _fit_ray(config, cfg, storage_path or str(out_dir / "ray"))
    report = {"task": "classify", "checkpoint": ck, "init_from": init_from, "tokenizer": tok_path,
              "labels": labels, "class_weights": weights, "final": metrics, "test": test,
              "config": {"finetune": asdict(ft), "train": asdict(cfg), "model": asdict(model_cfg)},
              "seconds": round(time.time() - t0, 2)}
    write_report(report, out_dir)
    (out_dir / "result.json").write_text(json.dumps({"metrics": metrics, "checkpoint": ck}, indent=2, default=str))
    return report


def _fit_ray(config: dict, cfg: TrainConfig, storage_path: str):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})}
    trainer = TorchTrainer(
        _ray_worker, train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=RUN_NAME, storage_path=storage_path,
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints or None)))
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("classification fine-tuning reported no checkpoint")
    with result.checkpoint.as_directory() as d:
        test = json.loads((Path(d) / "test.json").read_text())
    from raylm.train.checkpoint import uri_of

    return result.metrics, uri_of(result.checkpoint), test


def evaluate_checkpoint(checkpoint: str, ft: FinetuneConfig, out: str) -> dict:
    """In-process evaluation of a saved classifier on ft.test_file (else ft.val_file)."""
    from tokenizers import Tokenizer

    from raylm.train.finetune import load_classifier

    test_file = ft.test_file or ft.val_file
    if not test_file:
        raise ValueError("evaluating a classifier needs finetune.test_file (or val_file)")
    t0 = time.time()
    model, meta = load_classifier(checkpoint)
    tok = Tokenizer.from_file(str(Path(checkpoint) / meta["tokenizer"]))
    labels = meta["labels"]
    ft = replace(ft, lowercase=meta.get("lowercase", False))  # the classifier's own preprocessing, like max_len
    te = load_split(test_file, ft, labels, ft.max_eval_examples)
    cm, loss = evaluate(model, encode(tok, te.texts, meta["max_len"]), te.labels, len(labels), ft.eval_batch_size,
                        0, 1, torch.device("cpu"), meta["pad_id"])
    pos = labels.index(ft.positive_label) if ft.positive_label else None
    test = {"file": test_file, "loss": loss, "skipped": te.skipped, **metrics_from_confusion(cm, labels, pos)}
    report = {"task": "classify", "checkpoint": str(checkpoint), "init_from": meta.get("init_from"),
              "labels": labels, "test": test, "config": {"finetune": asdict(ft)},
              "seconds": round(time.time() - t0, 2)}
    write_report(report, Path(out))
    return report
