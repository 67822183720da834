"""A tiny labelled file, its char tokenizer and a random-init checkpoint for the classification
fine-tuning tests (tests/ is on sys.path: the root conftest)."""

from __future__ import annotations

import torch

POS = ["good fun", "great joy", "lovely day", "nice work"]
NEG = ["bad mess", "awful pain", "dull grey", "sad loss"]


def tiny_classify(tmp_path, n_layer: int = 1, n_embd: int = 16):
    """(d.tsv with 24 labelled rows, tokenizer.json, a GPT checkpoint of that vocabulary)."""
    from raylm.data.tokenize import EOS, char_tokenizer
    from raylm.model.gpt import GPT, GPTConfig
    from raylm.train import checkpoint as ckpt

    rows = [(t, 1) for t in POS] + [(t, 0) for t in NEG]
    data = tmp_path / "d.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows * 3))
    tok = char_tokenizer("".join(t for t, _ in rows) + EOS)
    tok_path = tmp_path / "tokenizer.json"
    tok_path.write_text(tok.to_str())
    cfg = GPTConfig(n_layer=n_layer, n_head=2, n_embd=n_embd, block_size=16, vocab_size=tok.get_vocab_size())
    torch.manual_seed(0)
    src = ckpt.save(tmp_path / "pre", GPT(cfg), cfg, extra={"data_dir": None})
    return data, tok_path, src


def rerun_without_last_checkpoint(ft, tc, out, init_from: str, seed: int = 3) -> dict:
    """Fine-tune into `out`, delete the final checkpoint (an interruption just before it), run
    again: the second run resumes from the last evaluation's checkpoint; returns its report."""
    import shutil

    from raylm.train.finetune import run_classify

    run_classify(ft, tc, str(out), seed, init_from)
    shutil.rmtree(out / "checkpoints" / f"step-{tc.max_steps}")
    return run_classify(ft, tc, str(out), seed, init_from)
