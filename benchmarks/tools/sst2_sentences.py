"""A sentence-level model-selection split for SST-2.

SST-2's train.tsv and dev.tsv here are both *phrases* of the same parse trees (GLUE's train set
split 90/10), while test.tsv holds whole sentences of other trees. A dev phrase usually has its
own sentence, or a longer phrase around it, in train.tsv, so dev accuracy is inflated (0.93 for
bag-of-words against 0.81 on test) and picks learning rates and steps that do not carry over.

`sentence_split` rebuilds the test conditions inside the labelled data: the *maximal* phrases of
train + dev (those contained in no longer phrase: the whole sentences, 6,885 of them, mean 19.4
words like test's 19.5) are the sentences; a seeded sample of them is held out for validation,
and every phrase that occurs *only* inside held-out sentences leaves the training set with
them. A phrase that also occurs in a kept sentence ("the film") stays, as it would for a test
sentence. Nothing of test.tsv is read.
"""

from __future__ import annotations

import random
from pathlib import Path


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """(sentence, label) rows of an SST-2 tsv with `sentence` and `label` header columns; text
    stripped. Read by the fine-tuning reader; a malformed row is an error here, not a skip."""
    from raylm.train.classify_data import read_rows

    texts, labels, skipped = read_rows(str(path), "tsv", True, [], "sentence", "label")
    if skipped:
        raise ValueError(f"{path}: malformed rows {skipped}")
    return list(zip(texts, labels))


def sentence_split(rows: list[tuple[str, str]], n_val: int, seed: int) -> tuple[list, list]:
    """(train rows, validation sentences) as described in the module docstring.

    Duplicate phrases (same text) are kept once, with their first label."""
    label: dict[str, str] = {}
    for text, y in rows:
        label.setdefault(text, y)
    contained = set()  # phrases inside a longer phrase; the rest are the sentences
    for text in label:
        w = text.split()
        for i in range(len(w)):
            for j in range(i + 1, len(w) + 1):
                if j - i < len(w):
                    sub = " ".join(w[i:j])
                    if sub in label:
                        contained.add(sub)
    sentences = sorted(t for t in label if t not in contained)
    if not 0 < n_val < len(sentences):
        raise ValueError(f"n_val must be in (0, {len(sentences)}), got {n_val}")
    inside: dict[str, list[str]] = {}  # phrase -> the sentences containing it, by word spans
    for s in sentences:
        w = s.split()
        spans = {" ".join(w[i:j]) for i in range(len(w)) for j in range(i + 1, len(w) + 1)}
        for sub in spans:
            if sub in label:
                inside.setdefault(sub, []).append(s)
    held = set(random.Random(seed).sample(sentences, n_val))
    train = [(t, y) for t, y in label.items() if not all(s in held for s in inside[t])]
    val = [(s, label[s]) for s in sentences if s in held]
    return train, val


def write_tsv(rows: list[tuple[str, str]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


def write_split(sst2_dir: str | Path, out: str | Path, n_val: int = 1000, seed: int = 0) -> dict:
    """train.tsv + dev.tsv of `sst2_dir` -> <out>/train_sent.tsv and <out>/val_sent.tsv; counts."""
    rows = read_tsv(Path(sst2_dir) / "train.tsv") + read_tsv(Path(sst2_dir) / "dev.tsv")
    train, val = sentence_split(rows, n_val, seed)
    write_tsv(train, Path(out) / "train_sent.tsv")
    write_tsv(val, Path(out) / "val_sent.tsv")
    return {"rows_in": len(rows), "train_phrases": len(train), "val_sentences": len(val), "seed": seed}
