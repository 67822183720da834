"""Classification fine-tuning, the driver side: every check that can fail before a worker
starts (`prepare`), the launch of `classify_worker` (classify_loop.py) on Ray Train or in this
process (`execute`), the final report, and the in-process evaluation of a saved classifier
(`evaluate_checkpoint`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from raylm import atomic, interrupt, provenance, storage
from raylm.eval.classify import metrics_from_confusion, write_report
from raylm.model.gpt import GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train.classify_data import balanced_weights, encode, label_list, read_rows, to_indices, tokenizer_path
from raylm.train.classify_loop import RUN_NAME, ClassifyRun, classify_worker, evaluate, load_split, local_file
from raylm.train.config import TrainConfig
from raylm.train.finetune import FinetuneConfig, check_pooling
from raylm.train.launch import launch, raise_if_stopped
from raylm.train.session import LocalSession


def prepare(ft: FinetuneConfig, cfg: TrainConfig, out: str, seed: int, init_from: str | None,
            model_cfg: GPTConfig | None, data_dir: str | None, scratch: str | None = None) -> tuple[ClassifyRun, str]:
    """Every check that can fail before a worker starts, and the run's fixed inputs: the body's
    architecture, tokenizer, label order and class weights. Returns (run, tokenizer path)."""
    from tokenizers import Tokenizer

    from raylm.data.tokenize import EOS
    from raylm.train.trainer import local_path

    if ft.task != "classify" or not ft.train_file:
        raise ValueError("classification fine-tuning needs finetune.task=classify and finetune.train_file")
    if cfg.parallelism == "fsdp" and cfg.num_workers > 1:
        raise ValueError("train.parallelism=fsdp: classification fine-tuning runs DDP only (the model is "
                         "replicated on every worker); set train.parallelism=ddp")
    if cfg.keep_by == "val_loss" and not ft.val_file:
        raise ValueError("train.keep_by=val_loss needs finetune.val_file: without validation no checkpoint "
                         "has a val_loss to keep it by")
    # Workers read these files themselves, from their own working directory: make them absolute.
    ft = replace(ft, **{k: str(Path(v).resolve()) for k in ("train_file", "val_file", "test_file")
                        if (v := getattr(ft, k)) and "://" not in v})
    for k in ("train_file", "val_file", "test_file"):
        if getattr(ft, k) and not storage.is_file(getattr(ft, k)):
            raise FileNotFoundError(f"finetune.{k}: {getattr(ft, k)} not found")
    init_from = None if ft.random_init else init_from
    if init_from and "://" not in init_from:
        init_from = str(Path(init_from).resolve())
    if ft.lora.on and not init_from:
        raise ValueError("finetune.lora adapts a pretrained checkpoint: set finetune.init_from (random init has no "
                         "base weights to keep frozen)")
    init_task = None
    if init_from:
        init_task = json.loads((Path(init_from) / "model.json").read_text()).get("task")
        model_cfg = ckpt.read_model_config(init_from)  # the architecture is the checkpoint's
    elif model_cfg is None:
        raise ValueError("random init (no init_from) needs a model config")
    tok_path = tokenizer_path(init_from, ft.tokenizer, ft.data_dir or data_dir)
    tok = Tokenizer.from_str(storage.read_text(tok_path))
    model_cfg = model_cfg.with_vocab(tok.get_vocab_size(), f"tokenizer {tok_path}")
    check_pooling(model_cfg.arch, ft.pooling)  # before any output is claimed
    texts, raw, _ = read_rows(local_file(ft.train_file, scratch), ft.format, ft.header, ft.columns, ft.text_column,
                              ft.label_column, ft.max_train_examples)
    labels = label_list(raw, ft.label_map, ft.labels)
    if len(labels) < 2:
        raise ValueError(f"{ft.train_file}: need at least 2 classes, found {labels}")
    if ft.class_weights and len(ft.class_weights) != len(labels):
        raise ValueError(f"finetune.class_weights has {len(ft.class_weights)} values for labels {labels}")
    weights = list(ft.class_weights) or (
        balanced_weights(to_indices(texts, raw, ft.label_map, labels, {}).labels, len(labels))
        if ft.balanced_class_weights else [])
    eos = tok.token_to_id(EOS)
    run = ClassifyRun(finetune=ft, train=cfg, model=model_cfg, labels=labels, class_weights=weights,
                      tokenizer_json=tok.to_str(), pad_id=eos if eos is not None else 0, out=local_path(str(out)),
                      seed=seed, init_from=init_from, init_task=init_task, scratch=scratch,
                      lora=ckpt.lora_record(ft.lora, init_from) if ft.lora.on else None)
    return run, tok_path


def run(ft: FinetuneConfig, cfg: TrainConfig, out: str, seed: int, init_from: str | None,
        model_cfg: GPTConfig | None = None, storage_path: str | None = None, data_dir: str | None = None) -> dict:
    """Fine-tune (on Ray Train; train.num_workers 0: in this process), write <out>/report.{json,md}
    and <out>/result.json; returns the report."""
    job, tok_path = prepare(ft, cfg, out, seed, init_from, model_cfg, data_dir)
    return execute(job, tok_path, storage_path)


def execute(job: ClassifyRun, tok_path: str, storage_path: str | None = None) -> dict:
    """Run a prepared fine-tuning job (`prepare`), then write its report and result.json."""
    t0, cfg = time.time(), job.train
    if cfg.num_workers == 0 and storage.is_remote(job.out):
        raise ValueError(f"out={job.out}: train.num_workers 0 keeps checkpoints on this machine's disk; with out "
                         f"on an object store use train.num_workers >= 1 (Ray Train stores checkpoints there)")
    if cfg.num_workers == 0:
        session = LocalSession(dir=job.out, keep=cfg.keep_checkpoints, keep_by=cfg.keep_by)
        with interrupt.graceful():
            metrics = classify_worker(job, session)
        ck = str(session.latest_checkpoint())
        result = {"metrics": metrics, "checkpoint": ck}
    else:
        done = launch(classify_worker, job, cfg, storage_path=storage_path or job.out, name=RUN_NAME)
        metrics, ck, result = done.metrics, done.checkpoint, done.as_dict()
    result["provenance"] = provenance.record()
    atomic.write_text(storage.join(job.out, "result.json"), json.dumps(result, indent=2, default=str))
    raise_if_stopped(metrics)  # a Ctrl-C: the checkpoint is saved, the test evaluation waits for the rerun
    if not ck:
        raise RuntimeError("classification fine-tuning reported no checkpoint")
    test = _read_test(ck)
    report = {"task": "classify", "checkpoint": ck, "init_from": job.init_from, "tokenizer": tok_path,
              "labels": job.labels, "class_weights": job.class_weights, "final": metrics, "test": test,
              "config": {"finetune": asdict(job.finetune), "train": asdict(cfg), "model": asdict(job.model)},
              "seconds": round(time.time() - t0, 2)}
    write_report(report, job.out)
    return report


def _read_test(checkpoint: str) -> dict | None:
    """test.json of the final checkpoint, local or on an object store."""
    from raylm.storage import resolve

    fs, path = resolve(checkpoint)
    with fs.open_input_stream(f"{path.rstrip('/')}/test.json") as f:
        return json.loads(f.read())


def evaluate_checkpoint(checkpoint: str, ft: FinetuneConfig, out: str, scratch: str | None = None,
                        source: str | None = None) -> dict:
    """In-process evaluation of a saved classifier on ft.test_file (else ft.val_file; an object
    store's is copied to `scratch`)."""
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
    te = load_split(test_file, ft, labels, ft.max_eval_examples, scratch)
    cm, loss = evaluate(model, encode(tok, te.texts, meta["max_len"]), te.labels, len(labels), ft.eval_batch_size,
                        0, 1, torch.device("cpu"), meta["pad_id"])
    pos = labels.index(ft.positive_label) if ft.positive_label else None
    test = {"file": test_file, "loss": loss, "skipped": te.skipped, **metrics_from_confusion(cm, labels, pos)}
    report = {"task": "classify", "checkpoint": source or str(checkpoint), "init_from": meta.get("init_from"),
              "labels": labels, "test": test, "config": {"finetune": asdict(ft)},
              "seconds": round(time.time() - t0, 2)}
    write_report(report, Path(out))
    return report
