"""Labelled text for classification fine-tuning: reading TSV / CSV / jsonl, labels, batches.

Pure functions, no Ray. A labelled set is small (SST-2 train: 60k lines, 4 MB), so every
worker reads the whole file and takes its own shard of it by index; the driver only reads the
train file once, to fix the label order that all workers share.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from raylm.data.shards import read_manifest
from raylm.train.data import stable_hash

csv.field_size_limit(2**31 - 1)  # AG News / web text lines can be long


@dataclass
class Labelled:
    texts: list[str]
    labels: list[int]                                   # class indices into the label list
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows not used


def file_format(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".csv", ".jsonl"):
        return suffix[1:]
    if suffix == ".json":
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path} from its suffix; set finetune.format")


def read_rows(path: str, fmt: str, header: bool, columns: list[str], text_column: str, label_column: str,
              limit: int = 0) -> tuple[list[str], list[str], dict[str, int]]:
    """(texts, raw label strings, skipped counts) from one file; bad rows are counted, not fatal.

    TSV is read GLUE style (no quoting: SST-2 sentences contain bare quotes); CSV with
    standard quoting. Without a header the columns are named by `columns`."""
    fmt = file_format(path, fmt)
    texts, labels, skipped = [], [], {}

    def skip(reason):
        skipped[reason] = skipped.get(reason, 0) + 1

    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            rows = _jsonl_rows(f, skip)
        else:
            reader = (csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(f))
            names = next(reader, []) if header else columns
            if text_column not in names or label_column not in names:
                raise ValueError(f"{path}: columns {names} lack text column {text_column!r} or label column "
                                 f"{label_column!r} (set finetune.header / columns / text_column / label_column)")
            rows = (dict(zip(names, r)) if len(r) == len(names) else skip("wrong_column_count") for r in reader)
        for row in rows:
            if row is None:
                continue
            text, label = row.get(text_column), row.get(label_column)
            if not isinstance(text, str) or not text.strip() or label is None or str(label).strip() == "":
                skip("missing_text_or_label")
                continue
            texts.append(text.strip())
            labels.append(str(label).strip())
            if limit and len(texts) >= limit:
                break
    return texts, labels, skipped


def _jsonl_rows(f, skip):
    for line in f:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skip("bad_json")
            continue
        yield row if isinstance(row, dict) else skip("bad_json")


def label_list(raw: list[str], label_map: dict[str, str], labels: list[str]) -> list[str]:
    """Class names in index order: `labels` if given, else the sorted mapped values seen
    (numeric order when all are integers, so "0", "1", ..., "10")."""
    if labels:
        return list(labels)
    seen = {label_map.get(r, r) for r in raw}
    return sorted(seen, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))


def to_indices(texts: list[str], raw: list[str], label_map: dict[str, str], labels: list[str],
               skipped: dict[str, int]) -> Labelled:
    index = {lab: i for i, lab in enumerate(labels)}
    keep_t, keep_y, skipped = [], [], dict(skipped)
    for t, r in zip(texts, raw):
        i = index.get(label_map.get(r, r))
        if i is None:
            skipped["unknown_label"] = skipped.get("unknown_label", 0) + 1
            continue
        keep_t.append(t)
        keep_y.append(i)
    return Labelled(keep_t, keep_y, skipped)


def balanced_weights(labels: list[int], num_classes: int) -> list[float]:
    """n / (k * count_c) per class (scikit-learn's "balanced"); a class absent from train gets 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    n = counts.sum()
    return [float(n / (num_classes * c)) if c else 0.0 for c in counts]


def tokenizer_path(init_from: str | None, explicit: str | None, data_dir: str | None = None) -> str:
    """The pretraining run's tokenizer (a local path or a URI): an explicit path, else the
    checkpoint's own tokenizer.json, else the manifest of the checkpoint's data_dir (model.json
    records it; older checkpoints), else the manifest of `data_dir`."""
    from raylm import storage

    if explicit:
        return explicit
    src = None
    if init_from:
        if (Path(init_from) / "tokenizer.json").is_file():
            return str(Path(init_from) / "tokenizer.json")
        src = json.loads((Path(init_from) / "model.json").read_text()).get("data_dir")
    src = src or data_dir
    if not src:
        raise ValueError("no tokenizer: set finetune.tokenizer, or start from a checkpoint whose model.json "
                         "names its data_dir")
    return storage.join(src, read_manifest(src)["tokenizer"])


def encode(tok, texts: list[str], max_len: int) -> list[list[int]]:
    """Token ids per text, truncated to the first max_len tokens (never empty: a text that
    encodes to nothing keeps one pad id so pooling has a position to read)."""
    enc = tok.encode_batch(texts, add_special_tokens=False)
    return [e.ids[:max_len] or [0] for e in enc]


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and lengths (B,). Right padding is invisible to a causal model:
    no real token attends to a later position, so no attention mask is needed."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)


def batch_indices(n: int, step: int, batch_size: int, rank: int, world: int, seed: int) -> np.ndarray:
    """Example indices for `rank` at optimizer step `step`: a function of the step only, so a
    resumed run draws exactly what the uninterrupted run drew.

    The global stream is epoch after epoch of seeded permutations; step s takes positions
    [s*B*W, (s+1)*B*W) of it and rank r every W-th of those (disjoint across ranks)."""
    gb = batch_size * world
    pos = np.arange(step * gb + rank, (step + 1) * gb, world, dtype=np.int64)
    out = np.empty(len(pos), dtype=np.int64)
    for epoch in np.unique(pos // n):
        perm = np.random.default_rng(stable_hash(seed, "classify", int(epoch)) & 0xFFFFFFFF).permutation(n)
        sel = pos // n == epoch
        out[sel] = perm[pos[sel] % n]
    return out
