"""`raylm generate`: text from a checkpoint, one prompt, a file of prompts, or interactively.

Decoding keeps a KV cache (GPT.cached): each new token costs one position's work instead of the
whole window's. Past `block_size` tokens the window slides, and every step re-reads the last
`block_size` tokens (what GPT.generate, the no-cache reference, does at every step), so cached
and uncached decoding give the same tokens at any length. Generation stops at the end-of-text
token or after `max_new_tokens`; sampling is greedy at temperature 0, else temperature, top-k
and top-p with a seeded generator. The content safeguard (eval.safeguard) judges each
completion before it is shown: with it on, a completion is printed whole once it has passed,
not streamed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from raylm.eval import safeguard
from raylm.model.gpt import GPT, sample


@dataclass
class Sampling:
    """How to pick tokens (defaults from the eval section; the CLI flags override)."""

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 200             # 0 = off
    top_p: float = 1.0           # 1 = off
    seed: int = 1337


@torch.inference_mode()
def stream(model: GPT, prompt: list[int], s: Sampling, eos_id: int | None,
           generator: torch.Generator | None = None) -> Iterator[int]:
    """New token ids, one at a time, for one prompt (KV-cache decoding; see the module docs)."""
    T = model.cfg.block_size
    device = next(model.parameters()).device
    ids = list(prompt)

    def window() -> torch.Tensor:
        return torch.tensor([ids[-T:]], dtype=torch.long, device=device)

    logits, cache = model.cached(window(), last_only=True)
    for _ in range(s.max_new_tokens):
        nxt = int(sample(logits[:, -1, :], s.temperature, s.top_k or None, s.top_p, generator).item())
        yield nxt
        if nxt == eos_id:
            return
        ids.append(nxt)
        if cache.length < T:  # room in the cache: one position's work
            logits, cache = model.cached(torch.tensor([[nxt]], device=device), cache)
        else:  # the window slides: re-read its last T tokens into the same buffers
            cache.length = 0
            logits, cache = model.cached(window(), cache, last_only=True)


class Generator:
    """A loaded model and tokenizer, ready for prompts."""

    def __init__(self, model: GPT, tokenizer, eos_id: int | None, s: Sampling, guard: safeguard.SafeguardConfig):
        self.model, self.tok, self.eos_id, self.s, self.guard = model.eval(), tokenizer, eos_id, s, guard
        self.rng = torch.Generator(device=next(model.parameters()).device).manual_seed(s.seed)

    def encode(self, prompt: str) -> list[int]:
        """Prompt ids; an empty prompt or one longer than the context is a ValueError saying so."""
        if not prompt.strip():
            raise ValueError("the prompt is empty: give some text to continue")
        ids = self.tok.encode(prompt, add_special_tokens=False).ids
        if len(ids) >= self.model.cfg.block_size:
            raise ValueError(f"the prompt is {len(ids)} tokens; this model reads {self.model.cfg.block_size} "
                             f"at most and needs room for one new token: shorten it")
        return ids

    def complete(self, prompt: str, on_text=None) -> dict:
        """Generate for one prompt. `on_text(piece)` receives the text as it is decoded (not with
        the safeguard on). Returns {"prompt", "completion", "tokens", "stopped": eos|length,
        "withheld": reason or None}."""
        ids, new = self.encode(prompt), []
        shown = ""
        stream_out = on_text if not self.guard.enabled else None
        for t in stream(self.model, ids, self.s, self.eos_id, self.rng):
            if t == self.eos_id:
                break
            new.append(t)
            if stream_out is not None:
                text = self.tok.decode(new, skip_special_tokens=False)
                if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                    stream_out(text[len(shown):])
                    shown = text
        completion = self.tok.decode(new, skip_special_tokens=False)
        if stream_out is not None and completion[len(shown):]:
            stream_out(completion[len(shown):])
        reason = safeguard.flag(completion, self.guard) if self.guard.enabled else None
        if reason is None and on_text is not None and self.guard.enabled:
            on_text(completion)
        return {"prompt": prompt, "completion": None if reason else completion, "tokens": len(new),
                "stopped": "eos" if len(new) < self.s.max_new_tokens else "length", "withheld": reason}


def read_prompts(path: str) -> list[str]:
    """Prompts from a file: jsonl with a "prompt" field per line, or plain text, one per line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--prompts {path}: no such file")
    lines = [ln for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if p.suffix in (".jsonl", ".json"):
        out = []
        for i, ln in enumerate(lines, 1):
            try:
                out.append(json.loads(ln)["prompt"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}:{i}: expected a JSON object with a \"prompt\" field") from None
        return out
    return lines


def run_file(gen: Generator, prompts: list[str], out: Path) -> dict:
    """Every prompt of a file, one after another; one jsonl line each (an error line for a prompt
    that is empty or too long, which does not stop the others). Returns counts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"prompts": len(prompts), "written": 0, "errors": 0, "withheld": 0}
    with open(out, "w", encoding="utf-8") as f:
        for i, prompt in enumerate(prompts):
            try:
                row = {"index": i, **gen.complete(prompt)}
            except ValueError as e:
                row = {"index": i, "prompt": prompt, "error": str(e)}
                counts["errors"] += 1
            counts["withheld"] += bool(row.get("withheld"))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts["written"] += 1
    return counts


def interactive(gen: Generator, read=input, write=sys.stdout.write) -> None:
    """Prompt, generate, repeat. Ctrl-C during generation returns to the prompt; Ctrl-C or
    Ctrl-D at the prompt ends the session."""
    write("Type a prompt and press Enter; Ctrl-C stops a generation, Ctrl-D quits.\n")
    while True:
        try:
            prompt = read("prompt> ")
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return
        try:
            r = gen.complete(prompt, on_text=lambda piece: (write(piece), sys.stdout.flush()))
            write(f"\n[withheld: {r['withheld']}]\n" if r["withheld"] else "\n")
        except ValueError as e:
            write(f"{e}\n")
        except KeyboardInterrupt:
            write("\n[stopped]\n")
