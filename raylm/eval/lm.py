"""Language-model evaluation: loss, perplexity and bits per byte with a sliding window, and samples.

Sliding window: windows of T = block_size tokens start every `stride` tokens; each window
scores only the targets not scored by an earlier window, so every token after the first is
scored exactly once, with up to T - stride tokens of context. stride = T is plain
non-overlapping evaluation (the cheapest, the least context).

Bits per byte = total nats / ln 2 / UTF-8 bytes of the scored text. The byte count comes from
the manifest (bytes per token of the split), exact when the whole split is scored.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from raylm.data.shards import open_split, read_manifest
from raylm.eval import human, safeguard
from raylm.train import checkpoint as ckpt


@dataclass
class EvalConfig:
    checkpoint: str | None = None  # checkpoint dir; default = the one `raylm train` wrote for this out
    split: str = "val"             # shard split to score
    stride: int = 0                # sliding-window stride in tokens; 0 = block_size (no overlap)
    max_tokens: int = 0            # score at most this many tokens; 0 = the whole split
    batch_size: int = 32           # windows per forward pass
    threads: int = 0               # torch threads; 0 = eval.cpus
    cpus: float = 1                # CPUs the evaluation task reserves (it runs as a Ray task)
    use_gpu: bool = False          # the task takes a GPU (and runs the model there)
    resources: dict[str, float] = field(default_factory=dict)  # extra Ray resources, e.g. {trainer: 1}
    label_selector: dict[str, str] = field(default_factory=dict)  # node labels the task needs
    samples: int = 3               # generated samples written to the report
    sample_tokens: int = 200       # tokens per sample
    prompts: list[str] = field(default_factory=lambda: [""])  # cycled over samples; "" = start from EOS
    temperature: float = 0.8       # sampling temperature; 0 = greedy
    top_k: int = 200               # keep the k most likely tokens; 0 = off
    top_p: float = 1.0             # nucleus sampling mass; 1 = off
    safeguard: safeguard.SafeguardConfig = field(default_factory=safeguard.SafeguardConfig)  # withhold flagged samples
    human: human.HumanEvalConfig = field(default_factory=human.HumanEvalConfig)  # rating-sheet export

    def __post_init__(self):
        if self.stride < 0 or self.max_tokens < 0 or self.batch_size < 1 or self.samples < 0:
            raise ValueError("stride, max_tokens, samples must be >= 0 and batch_size >= 1")
        if self.cpus <= 0 or set(self.resources) & {"CPU", "GPU"}:
            raise ValueError("eval.cpus must be > 0; set CPUs with eval.cpus and a GPU with eval.use_gpu, "
                             "not in eval.resources")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError("top_p must be in (0, 1] and temperature >= 0")


@torch.no_grad()
def sliding_window_nll(model, tokens: np.ndarray, block_size: int, stride: int, batch_size: int,
                       max_tokens: int = 0) -> tuple[float, int]:
    """(sum of NLL in nats, tokens scored) over a 1-D token array with a sliding window."""
    stride = stride or block_size
    if stride > block_size:
        raise ValueError(f"stride {stride} > block_size {block_size}")
    n = len(tokens) if not max_tokens else min(len(tokens), max_tokens + 1)
    starts = list(range(0, max(1, n - block_size), stride)) if n > block_size + 1 else [0]
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        chunk = starts[b: b + batch_size]
        L = min(block_size, n - 1 - chunk[0])
        if L <= 0:
            break
        rows = [s for s in chunk if s + L + 1 <= n]
        win = torch.from_numpy(np.stack([np.asarray(tokens[s: s + L + 1], dtype=np.int64) for s in rows]))
        win = win.to(next(model.parameters()).device)
        logits, _ = model(win[:, :-1])
        nll = F.cross_entropy(logits.float().transpose(1, 2), win[:, 1:], reduction="none")  # (B, L)
        for i, s in enumerate(rows):
            first = 0 if s == 0 else L - stride  # targets before this were scored by the previous window
            total += nll[i, first:].sum().item()
            count += L - first
    return total, count


def evaluate_split(model, data_dir: str, cfg: EvalConfig) -> dict:
    m = read_manifest(data_dir)
    split = m["splits"][cfg.split]
    T = model.cfg.block_size
    total, count = 0.0, 0
    budget = cfg.max_tokens
    for arr in open_split(data_dir, cfg.split):
        if cfg.max_tokens and budget <= 0:
            break
        t, c = sliding_window_nll(model, arr, T, cfg.stride, cfg.batch_size, budget if cfg.max_tokens else 0)
        total, count, budget = total + t, count + c, budget - c
    if count == 0:
        raise ValueError(f"split {cfg.split!r} has too few tokens to evaluate with block_size {T}")
    loss = total / count
    bytes_per_token = split["bytes"] / max(1, split["tokens"])
    return {"split": cfg.split, "loss": loss, "perplexity": math.exp(min(loss, 50)),
            "bits_per_byte": total / math.log(2) / (count * bytes_per_token), "tokens_scored": count,
            "stride": cfg.stride or T}


@torch.no_grad()
def evaluate_masked(model, data_dir: str, cfg: EvalConfig, seed: int) -> dict:
    """An encoder's masked-token loss and accuracy on a split: its windows in order (non-
    overlapping, block_size tokens), masked as in training (raylm/train/mlm.py, epoch 0 and
    this seed, so two checkpoints are scored on the same masks). Perplexity is a decoder's
    measure and is not reported."""
    from raylm.train.data import TokenWindows, masked

    m = read_manifest(data_dir)
    T = model.cfg.block_size
    w = TokenWindows(data_dir, cfg.split, T, seed)
    n = w.num_windows(0)
    if cfg.max_tokens:
        n = min(n, max(1, cfg.max_tokens // T))
    settings = {"seed": seed, "vocab": m["vocab_size"], "eos_id": m["eos_id"]}
    device = next(model.parameters()).device
    total, correct, count = 0.0, 0, 0
    for b in range(0, n, cfg.batch_size):
        pos = np.arange(b, min(n, b + cfg.batch_size), dtype=np.int64)
        shard, start = w.places(0, pos, shuffle=False)
        x, y = masked(w.windows(0, pos, shuffle=False)[:, :-1], shard, start, 0, settings)
        logits, _ = model(x.to(device))
        y = y.to(device)
        chosen = y >= 0
        if not chosen.any():
            continue
        lg, tg = logits[chosen].float(), y[chosen]
        total += F.cross_entropy(lg, tg, reduction="sum").item()
        correct += (lg.argmax(-1) == tg).sum().item()
        count += int(chosen.sum().item())
    if count == 0:
        raise ValueError(f"split {cfg.split!r} has too few tokens to evaluate with block_size {T}")
    return {"split": cfg.split, "objective": "mlm", "masked_loss": total / count, "masked_accuracy": correct / count,
            "tokens_masked": count, "tokens_seen": n * T}


def generate_samples(model, tokenizer_path: str, eos_id: int, cfg: EvalConfig, seed: int) -> list[dict]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(cfg.samples):
        prompt = cfg.prompts[i % len(cfg.prompts)] if cfg.prompts else ""
        ids = tok.encode(prompt, add_special_tokens=False).ids if prompt else [eos_id]
        x = torch.tensor([ids[-model.cfg.block_size:]], dtype=torch.long, device=device)
        y = model.generate(x, cfg.sample_tokens, temperature=cfg.temperature, top_k=cfg.top_k or None,
                           top_p=cfg.top_p, generator=gen)
        out.append({"prompt": prompt, "text": tok.decode(y[0, len(ids):].tolist(), skip_special_tokens=False)})
    return out


def run(cfg: EvalConfig, checkpoint: str, data_dir: str, out: str | Path, seed: int = 1337,
        device: str = "cpu", source: str | None = None, data_source: str | None = None) -> dict:
    """Evaluate `checkpoint` on `data_dir` (local) on `device`; write <out>/report.json and
    report.md (a local folder: raylm/eval/task.py returns its files to the driver). `source`:
    where the checkpoint lives, for the report, when `checkpoint` is a local copy (`data_source`
    likewise for `data_dir`)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.time()
    model = ckpt.load_model(checkpoint, device).eval()
    m = read_manifest(data_dir)
    model.cfg.with_vocab(m["vocab_size"], f"the tokenizer of {data_dir} (checkpoint {checkpoint})")
    report = {"checkpoint": source or str(checkpoint), "data_dir": data_source or str(data_dir)}
    if getattr(model.cfg, "arch", "decoder") == "encoder":  # masked-token measures; nothing to generate
        report["mlm"] = evaluate_masked(model, data_dir, cfg, seed)
        report["samples"], report["safeguard"] = [], safeguard.apply([], cfg.safeguard)[1]
    else:
        report["lm"] = evaluate_split(model, data_dir, cfg)
        samples = generate_samples(model, str(Path(data_dir) / m["tokenizer"]), m["eos_id"], cfg, seed)
        report["samples"], report["safeguard"] = safeguard.apply(samples, cfg.safeguard)
    report["seconds"] = round(time.time() - t0, 2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.human.export:
        report["rating_sheets"] = human.export_sheet(
            {Path(str(checkpoint)).name: report["samples"]}, out / "human", raters=cfg.human.raters or None,
            blind=cfg.human.blind, seed=cfg.human.seed)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(to_markdown(report))
    return report


def to_markdown(report: dict) -> str:
    lines = ["# raylm evaluation", "", f"- checkpoint: `{report['checkpoint']}`", f"- data: `{report['data_dir']}`", ""]
    if "mlm" in report:
        r = report["mlm"]
        lines += ["| split | masked-token loss (nats) | masked-token accuracy | tokens masked |", "|---|---|---|---|",
                  f"| {r['split']} | {r['masked_loss']:.4f} | {r['masked_accuracy']:.4f} | {r['tokens_masked']:,} |",
                  ""]
        return "\n".join(lines)
    lm = report["lm"]
    lines += ["| split | loss (nats/token) | perplexity | bits per byte | tokens scored | stride |",
              "|---|---|---|---|---|---|",
              f"| {lm['split']} | {lm['loss']:.4f} | {lm['perplexity']:.2f} | {lm['bits_per_byte']:.4f} | "
              f"{lm['tokens_scored']:,} | {lm['stride']} |", "", "## Samples", ""]
    for s in report["samples"]:
        lines += [f"**prompt:** `{s['prompt']!r}`", "", "```", s["text"], "```", ""]
    return "\n".join(lines)
