"""Bag-of-words logistic regression, the baseline of the transfer benchmark (no scikit-learn here).

Features as scikit-learn's CountVectorizer(ngram_range=(1, 2)) with its defaults: lowercase,
tokens `\\b\\w\\w+\\b`, unigram and bigram counts, vocabulary from the training split. The
model is multinomial logistic regression with scikit-learn's objective
  C * sum_i CE_i + 0.5 * ||W||^2  (bias not penalised),
minimised by full-batch L-BFGS; C is chosen on the dev split (accuracy), then test is scored.
"""

from __future__ import annotations

import re

import numpy as np
import torch

GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # C values tried
TOKEN = re.compile(r"(?u)\b\w\w+\b")


def ngrams(text: str) -> list[str]:
    toks = TOKEN.findall(text.lower())
    return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]


class Vectorizer:
    def __init__(self, texts: list[str]):
        vocab: dict[str, int] = {}
        for t in texts:
            for g in ngrams(t):
                vocab.setdefault(g, len(vocab))
        self.vocab = vocab

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat feature ids, offsets) for nn.EmbeddingBag; unseen n-grams are dropped."""
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            ids.extend(self.vocab[g] for g in ngrams(t) if g in self.vocab)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def fit(x, y: torch.Tensor, n_feat: int, k: int, C: float, max_iter: int = 200) -> torch.nn.Module:
    torch.manual_seed(0)
    bag = torch.nn.EmbeddingBag(n_feat, k, mode="sum")
    torch.nn.init.zeros_(bag.weight)
    bias = torch.nn.Parameter(torch.zeros(k))
    opt = torch.optim.LBFGS([bag.weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        # divided by C * n: same minimiser as C * sum CE + 0.5 ||W||^2, better scaled for L-BFGS
        loss = torch.nn.functional.cross_entropy(bag(*x) + bias, y) + 0.5 * bag.weight.pow(2).sum() / (C * len(y))
        loss.backward()
        return loss

    opt.step(closure)
    bag.bias_ = bias
    return bag


@torch.no_grad()
def predict(model, x) -> np.ndarray:
    return (model(*x) + model.bias_).argmax(-1).numpy()


def run(train: tuple[list[str], list[int]], dev: tuple[list[str], list[int]], test: tuple[list[str], list[int]],
        k: int, grid=GRID) -> dict:
    """Tune C on dev by accuracy; returns {"C", "dev_accuracy": {C: acc}, "test_pred", "features"}."""
    vec = Vectorizer(train[0])
    xtr, ytr = vec(train[0]), torch.tensor(train[1])
    xdev, xte = vec(dev[0]), vec(test[0])
    scores, models = {}, {}
    for C in grid:
        models[C] = fit(xtr, ytr, len(vec.vocab), k, C)
        scores[C] = float((predict(models[C], xdev) == np.asarray(dev[1])).mean())
        print(f"[bow] C={C}: dev accuracy {scores[C]:.4f}", flush=True)
    best = max(grid, key=lambda c: (scores[c], -abs(np.log(c))))
    return {"C": best, "dev_accuracy": scores, "test_pred": predict(models[best], xte), "features": len(vec.vocab)}
