"""Fine-tuning from a pretrained checkpoint: continued pretraining and classification heads.

Continued pretraining (task "lm") is the pretraining loop started from a checkpoint on new
shards (raylm/commands.py). Classification (task "classify") is here: a `SequenceClassifier`
(a linear head on the pooled final hidden states of the GPT), trained by `classify_worker`
(raylm/train/classify_loop.py, launched by classify_driver.py) on Ray Train, evaluated on the
test file with confusion matrices summed across workers (raylm/eval/classify.py).

Classifier checkpoint directory: model.safetensors (GPT weights under `gpt.`, the head under
`head.`), model.json (GPT config + {"task": "classify", labels, pooling, tokenizer, ...}),
state.pt (optimizer, step, early-stopping state), and after the final evaluation test.json.

`finetune.lora` (lora.py) trains low-rank adapters on the blocks' Linear layers instead of every
weight, in both tasks: the base stays frozen, and checkpoints hold the adapters (and the head)
with a reference to the base checkpoint; loading one for eval or export merges them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from raylm import atomic
from raylm.model.gpt import GPT, GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train import lora
from raylm.train.lora import LoraConfig


@dataclass
class FinetuneConfig:
    init_from: str | None = None  # checkpoint dir to start from; None = this run's pretraining checkpoint
    data_dir: str | None = None   # continued pretraining: shards of the new (domain) text; None = this run's
    task: Literal["lm", "classify"] = "lm"  # lm = continued pretraining on shards; classify = head + labels
    random_init: bool = False      # classify: ignore init_from, start from random weights of `model` (baseline)
    train_file: str | None = None  # classify: labelled training file (.tsv / .csv / .jsonl)
    val_file: str | None = None    # classify: validation file for early stopping; None = no validation
    test_file: str | None = None   # classify: file the final report is computed on; None = val_file
    format: Literal["auto", "tsv", "csv", "jsonl"] = "auto"  # auto = from the file suffix
    header: bool = True            # tsv/csv: first line names the columns (SST-2 yes, AG News no)
    columns: list[str] = field(default_factory=lambda: ["text", "label"])  # column names when header is false
    text_column: str = "text"      # column / jsonl key holding the text (SST-2: sentence)
    label_column: str = "label"    # column / jsonl key holding the label
    labels: list[str] = field(default_factory=list)  # class names in index order; [] = sorted values in train
    label_map: dict[str, str] = field(default_factory=dict)  # raw file value -> class name (rename / merge)
    positive_label: str | None = None  # binary tasks: class whose precision/recall/F1 is reported; None = 2nd
    tokenizer: str | None = None   # tokenizer.json; None = the one of the checkpoint's pretraining data
    lowercase: bool = False        # lowercase every text before tokenizing (a model pretrained on lowercased text)
    max_len: int = 0               # tokens kept per text (the first ones); 0 = model block_size
    pooling: Literal["last", "mean", "first"] = "last"  # last real token's state (a decoder), the mean over
                                   # real tokens, or the first token's (an encoder: first or mean)
    head_dropout: float = 0.1      # dropout on the pooled vector before the head
    lm_loss_weight: float = 0.0    # + this x next-token loss on the training texts (GPT-1's auxiliary LM objective)
    class_weights: list[float] = field(default_factory=list)  # loss weight per class; [] = equal
    balanced_class_weights: bool = False  # weights n / (k * count) from the train labels
    freeze_embeddings: bool = False  # token and position embeddings stay fixed
    freeze_layers: int = 0         # the lowest N transformer blocks stay fixed
    head_lr_mult: float = 1.0      # head learning rate = train.optim.lr * this
    layer_decay: float = 1.0       # block i from the top gets lr * layer_decay**i (embeddings one more); 1 = off
    metric: Literal["accuracy", "macro_f1", "loss"] = "accuracy"  # validation metric for early stopping / best
    max_train_examples: int = 0    # use the first N training rows; 0 = all
    max_eval_examples: int = 0     # use the first N validation / test rows; 0 = all
    eval_batch_size: int = 64      # texts per forward pass in evaluation, per worker
    lora: LoraConfig = field(default_factory=LoraConfig)  # low-rank adapters instead of full fine-tuning (r 0 = off)

    def __post_init__(self):
        if self.lora.on and self.random_init:
            raise ValueError("finetune.lora adapts a pretrained checkpoint; finetune.random_init has none to adapt "
                             "(set finetune.lora.r: 0, or start from a checkpoint)")
        if self.task == "classify" and not self.train_file:
            raise ValueError("finetune.task=classify needs finetune.train_file")
        if self.freeze_layers < 0 or self.max_len < 0 or self.max_train_examples < 0 or self.max_eval_examples < 0:
            raise ValueError("freeze_layers, max_len, max_train_examples, max_eval_examples must be >= 0")
        if self.head_lr_mult <= 0 or not 0 < self.layer_decay <= 1:
            raise ValueError("head_lr_mult must be > 0 and layer_decay in (0, 1]")
        if self.lm_loss_weight < 0:
            raise ValueError("finetune.lm_loss_weight must be >= 0")
        if not 0 <= self.head_dropout < 1 or self.eval_batch_size < 1:
            raise ValueError("head_dropout must be in [0, 1) and eval_batch_size >= 1")
        if self.class_weights and self.balanced_class_weights:
            raise ValueError("set either finetune.class_weights or finetune.balanced_class_weights, not both")
        if any(w < 0 for w in self.class_weights):
            raise ValueError("finetune.class_weights must be >= 0")
        if self.labels and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"finetune.labels has duplicates: {self.labels}")
        if self.class_weights and self.labels and len(self.class_weights) != len(self.labels):
            raise ValueError(f"finetune.class_weights has {len(self.class_weights)} values for "
                             f"{len(self.labels)} labels")
        if self.positive_label is not None and self.labels and self.positive_label not in self.labels:
            raise ValueError(f"finetune.positive_label {self.positive_label!r} is not one of {self.labels}")


def check_pooling(arch: str, pooling: str) -> None:
    """The pooling fits the architecture (ValueError naming the fix)."""
    if arch == "encoder" and pooling == "last":
        raise ValueError("finetune.pooling last is a decoder's (its last token has read the whole text); an "
                         "encoder pools the first token or the mean: set finetune.pooling: first or mean")
    if arch == "decoder" and pooling == "first":
        raise ValueError("finetune.pooling first: a decoder's first token has read only itself; use last or mean")


class SequenceClassifier(nn.Module):
    """GPT body -> pooled (B, C) -> dropout -> linear head -> logits (B, K)."""

    def __init__(self, cfg: GPTConfig, num_classes: int, pooling: str = "last", head_dropout: float = 0.0):
        super().__init__()
        check_pooling(cfg.arch, pooling)
        self.gpt = GPT(cfg)
        self.pooling = pooling
        self.drop = nn.Dropout(head_dropout)
        self.head = nn.Linear(cfg.n_embd, num_classes)
        nn.init.normal_(self.head.weight, 0.0, cfg.init_std)
        nn.init.zeros_(self.head.bias)

    def pool(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, C) states, (B,) real lengths -> (B, C), ignoring right padding."""
        if self.pooling == "last":
            return h[torch.arange(h.size(0), device=h.device), lengths - 1]
        if self.pooling == "first":
            return h[:, 0]
        mask = (torch.arange(h.size(1), device=h.device)[None, :] < lengths[:, None]).to(h.dtype)  # (B, T)
        return (h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor, lm_loss: bool = False):
        """Class logits (B, K); with lm_loss, (logits, mean next-token cross-entropy over the
        real tokens) from the same forward pass, for GPT-1's auxiliary objective."""
        mask = None
        if self.gpt.cfg.arch == "encoder":  # attends both ways: right padding must not be attended to
            mask = (torch.arange(idx.size(1), device=idx.device)[None, :] < lengths[:, None])[:, None, None, :]
        h = self.gpt.hidden(idx, mask)
        logits = self.head(self.drop(self.pool(h, lengths)))
        if not lm_loss:
            return logits
        targets = idx[:, 1:].masked_fill(
            torch.arange(1, idx.size(1), device=idx.device)[None, :] >= lengths[:, None], -1)
        lm_logits = self.gpt.lm_head(h[:, :-1]).float()
        if not (targets >= 0).any():  # every text one token long: nothing to predict
            return logits, lm_logits.sum() * 0.0
        return logits, F.cross_entropy(lm_logits.reshape(-1, lm_logits.size(-1)), targets.reshape(-1),
                                       ignore_index=-1)


def freeze(model: SequenceClassifier, embeddings: bool, layers: int) -> int:
    """Stop gradients to the embeddings and/or the lowest `layers` blocks; returns frozen params."""
    if layers > len(model.gpt.blocks):
        raise ValueError(f"finetune.freeze_layers={layers} but the model has {len(model.gpt.blocks)} blocks")
    frozen = ([model.gpt.wte, model.gpt.wpe] if embeddings else []) + list(model.gpt.blocks[:layers])
    n = 0
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
            n += p.numel()
    return n


def param_groups(model: SequenceClassifier, weight_decay: float, head_lr_mult: float,
                 layer_decay: float) -> list[dict]:
    """Optimizer groups with `lr_scale` (loop convention: step lr * lr_scale).

    Depth d: embeddings 0, block i -> i + 1, final norm L + 1; scale layer_decay**(L+1-d),
    so the top of the body trains at the base lr and each block below at `layer_decay`
    times the one above. The head gets head_lr_mult. Weight decay on matrices only."""
    L = len(model.gpt.blocks)
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("head."):
            scale = head_lr_mult
        else:
            if name.startswith(("gpt.wte.", "gpt.wpe.")):
                depth = 0
            elif name.startswith("gpt.blocks."):
                depth = int(name.split(".")[2]) + 1
            else:  # gpt.ln_f
                depth = L + 1
            scale = layer_decay ** (L + 1 - depth)
        groups.setdefault((scale, p.dim() >= 2), []).append(p)
    return [{"params": ps, "lr_scale": s, "weight_decay": weight_decay if decay else 0.0}
            for (s, decay), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))]


def classifier_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for safetensors: DDP/compile prefixes off, the tied lm_head stored once (as wte).
    With LoRA adapters: the adapters and the head only (what trains)."""
    sd = ckpt.model_state(model, tied="gpt." + ckpt.TIED)
    if lora.has_adapters(model):
        return {**lora.adapter_state(sd), **{k: v for k, v in sd.items() if k.startswith("head.")}}
    return sd


def save_classifier(path: str | Path, model: nn.Module, model_cfg: GPTConfig, meta: dict,
                    state: dict | None = None, weights: dict | None = None,
                    files: dict[str, str] | None = None, tensors: dict[str, dict] | None = None) -> Path:
    """Write a classifier checkpoint directory atomically (temp dir, then rename); `files` are
    extra text files (name -> content), e.g. the tokenizer, so the directory is self-contained;
    `tensors` extra safetensors files (name -> state dict)."""
    path = Path(path)
    with atomic.directory(path) as tmp:
        save_file(weights if weights is not None else classifier_state(model), tmp / "model.safetensors")
        (tmp / "model.json").write_text(json.dumps({"model": asdict(model_cfg), "task": "classify", **meta},
                                                   indent=2))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        for name, sd in (tensors or {}).items():  # e.g. best.safetensors: the best-validation weights
            save_file(sd, tmp / name)
        if state is not None:
            torch.save(state, tmp / "state.pt")
        ckpt.write_checksums(tmp)
    return path


def load_classifier_weights(model: SequenceClassifier, path: str | Path) -> None:
    """A classifier checkpoint into `model`: its full weights (a LoRA one's merged into its base)
    into a plain classifier, or adapters and head alone into one with adapters (a LoRA run resuming)."""
    target = getattr(model, "module", model)
    adapted = lora.has_adapters(target)
    sd = load_file(str(Path(path) / "model.safetensors")) if adapted else ckpt.read_weights(path)
    missing, unexpected = target.load_state_dict(sd, strict=False)
    keep = classifier_state(target) if adapted else None  # with adapters the base comes from init_from
    missing = [k for k in missing if k != "gpt.lm_head.weight" and (keep is None or k in keep)]
    if missing or unexpected:
        raise ckpt.CheckpointMismatch(f"{path} is not a checkpoint of this classifier: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def load_classifier(path: str | Path) -> tuple[SequenceClassifier, dict]:
    """Rebuild a saved classifier; returns (model in eval mode, model.json contents)."""
    from raylm.train.checkpoint import read_model_config

    meta = json.loads((Path(path) / "model.json").read_text())
    if meta.get("task") != "classify":
        raise ValueError(f"{path} is not a classifier checkpoint (model.json has no task=classify); "
                         f"use `raylm eval` language-model evaluation for it")
    model = SequenceClassifier(read_model_config(path), len(meta["labels"]), meta["pooling"])
    load_classifier_weights(model, path)
    return model.eval(), meta


def run_classify(cfg: FinetuneConfig, train, out: str, seed: int, init_from: str | None,
                 model_cfg: GPTConfig | None = None, storage_path: str | None = None,
                 data_dir: str | None = None) -> dict:
    """Fine-tune a classifier on Ray Train (train.num_workers = 0: in this process) and write
    <out>/report.{json,md} and <out>/result.json ({"metrics", "checkpoint"}) from the
    test-set evaluation; returns the report.

    init_from None = random init of `model_cfg` (the baseline of the transfer benchmark); the
    tokenizer then comes from cfg.tokenizer, else the manifest in cfg.data_dir or `data_dir`."""
    from raylm.train.classify_driver import run

    return run(cfg, train, out, seed, init_from, model_cfg, storage_path, data_dir)


def evaluate_classifier(checkpoint: str, cfg: FinetuneConfig, out: str) -> dict:
    """Evaluate a classifier checkpoint on cfg.test_file (cfg.val_file if unset) in this process;
    writes <out>/report.{json,md} and returns the report."""
    from raylm.train.classify_driver import evaluate_checkpoint

    return evaluate_checkpoint(checkpoint, cfg, out)
