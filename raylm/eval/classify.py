"""Classification metrics from a confusion matrix: accuracy, precision, recall, F1.

Everything is derived from counts. Each worker builds the confusion matrix of its own shard
of the evaluation set, the matrices are summed (`all_reduce_confusion`), and the metrics are
computed once from the sum: a sharded set is never double counted and a metric is never
averaged over workers (a mean of per-worker F1s is not the F1 of the set).

Conventions: `cm[i, j]` = examples whose true class is i and predicted class is j. A ratio
with a zero denominator (e.g. precision of a class never predicted) is 0.0, as scikit-learn's
`zero_division=0`; the report says how many such classes there were.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows true class, columns predicted class."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def all_reduce_confusion(cm: np.ndarray) -> np.ndarray:
    """Sum a confusion matrix over all workers of the torch.distributed group (no-op alone)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return cm
    t = torch.as_tensor(np.ascontiguousarray(cm), dtype=torch.float64)  # exact for counts < 2**53
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().numpy().round().astype(np.int64)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def metrics_from_confusion(cm: np.ndarray, labels: list[str] | None = None,
                           positive: int | None = None) -> dict:
    """All metrics from summed counts.

    Returns accuracy, macro precision/recall/F1 (unweighted mean over classes), weighted F1
    (by support), per-class precision/recall/F1/support, the matrix itself, and for two
    classes the binary precision/recall/F1 of class `positive` (default 1)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    if cm.ndim != 2 or cm.shape[1] != k:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    labels = labels or [str(i) for i in range(k)]
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for a {k}-class confusion matrix")
    tp = np.diag(cm)
    support = cm.sum(axis=1)       # true examples per class
    predicted = cm.sum(axis=0)     # predictions per class
    n = int(cm.sum())
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    out = {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "per_class": {lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])} for i, lab in enumerate(labels)},
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
        "undefined_precision_classes": int((predicted == 0).sum()),  # never predicted: precision set to 0
    }
    if k == 2:
        pos = 1 if positive is None else positive
        out["binary"] = {"positive": labels[pos], "precision": float(precision[pos]),
                         "recall": float(recall[pos]), "f1": float(f1[pos])}
    return out


def metrics_markdown(m: dict) -> str:
    """A Markdown section: headline numbers, per-class table and the confusion matrix."""
    lines = [f"- examples: {m['n']:,}", f"- accuracy: {m['accuracy']:.4f}",
             f"- macro precision / recall / F1: {m['macro_precision']:.4f} / {m['macro_recall']:.4f} / "
             f"{m['macro_f1']:.4f}", f"- weighted F1: {m['weighted_f1']:.4f}"]
    if "binary" in m:
        b = m["binary"]
        lines.append(f"- binary (positive = `{b['positive']}`) precision / recall / F1: {b['precision']:.4f} / "
                     f"{b['recall']:.4f} / {b['f1']:.4f}")
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, c in m["per_class"].items():
        lines.append(f"| {lab} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    labs = m["labels"]
    lines += ["", "Confusion matrix (rows true, columns predicted):", "",
              "| true \\ pred | " + " | ".join(labs) + " |", "|---" * (len(labs) + 1) + "|"]
    for lab, row in zip(labs, m["confusion_matrix"]):
        lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def write_report(report: dict, out) -> None:
    """<out>/report.json and report.md for a classification run (numbers, config, checkpoint);
    `out` local or on an object store."""
    import json

    from raylm import atomic, storage

    out = storage.location(out)
    storage.makedirs(out)
    atomic.write_text(storage.join(out, "report.json"), json.dumps(report, indent=2, default=str))
    lines = ["# raylm classification evaluation", "", f"- checkpoint: `{report['checkpoint']}`",
             f"- started from: `{report.get('init_from') or 'random initialisation'}`",
             f"- labels: {', '.join(report['labels'])}"]
    test = report.get("test")
    if test:
        lines += [f"- evaluated on: `{test['file']}` (loss {test['loss']:.4f}; skipped rows: "
                  f"{test.get('skipped') or 'none'})", "", "## Metrics", "", metrics_markdown(test)]
    else:
        lines += ["", "No test or validation file was given: no metrics."]
    if report.get("final"):
        lines += ["", f"Training: {report['final'].get('step')} steps, best validation at step "
                      f"{report['final'].get('best_step')}."]
    lines += ["", "## Config", "", "```json", json.dumps(report.get("config", {}), indent=2, default=str), "```", ""]
    atomic.write_text(storage.join(out, "report.md"), "\n".join(lines))
