"""Generation speed: raylm's KV-cache decoder against `transformers` and against no cache.

Two claims, one run, same model and prompts (a GPT of the `small` size, 6 layers x 384 wide,
context 512, BPE-sized vocabulary 4096; random weights: speed does not depend on them):

- `generate_tokens_per_s`: new tokens per second of raylm's decoder (raylm/eval/generate.py)
  over `transformers` `generate()` on the same model exported with `raylm export`
  (GPT2LMHeadModel, its own KV cache), same prompts, same sampling settings (temperature 0.8,
  top-k 50), each forced to the same number of new tokens (no end-of-text stop). Target >= 1.0.
- `kv_cache_speedup`: the same decoder over decoding without a cache (GPT.generate re-reads the
  whole window every token), 256 new tokens. Target >= 5.

Each figure is the best of --rounds alternating rounds (ABBA), torch threads = --threads.

    python -m benchmarks.generate_speed            # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import write_result
from raylm.eval.generate import Sampling, stream
from raylm.export import export_lm
from raylm.model.gpt import GPT, GPTConfig


def tokenizer_json(vocab: int) -> str:
    """A byte-level BPE with `vocab` tokens trained on the bundled text (the export needs one)."""
    from raylm.data.tokenize import TokenizerConfig, train_bpe

    text = (Path(__file__).resolve().parents[1] / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text()
    return train_bpe(text.split("\n\n") * 4, TokenizerConfig(vocab_size=vocab, min_frequency=1)).to_str()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per round, 32 tokens each")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import transformers

    vocab = 4096
    torch.manual_seed(0)
    model = GPT(GPTConfig(size="small", block_size=512, vocab_size=vocab)).eval()
    out = Path(tempfile.mkdtemp()) / "hf"
    export_lm(model, tokenizer_json(vocab), out)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, vocab - 1, (32,), generator=g).tolist() for _ in range(a.prompts)]
    s = Sampling(max_new_tokens=a.new_tokens, temperature=0.8, top_k=50, top_p=1.0)
    n_new = a.new_tokens * len(prompts)

    def raylm_cached():
        rng = torch.Generator().manual_seed(2)
        for p in prompts:
            assert len(list(stream(model, p, s, eos_id=None, generator=rng))) == a.new_tokens

    def raylm_uncached():
        rng = torch.Generator().manual_seed(2)
        for p in prompts:
            model.generate(torch.tensor([p]), a.new_tokens, temperature=0.8, top_k=50, generator=rng)

    def hf_generate():
        torch.manual_seed(2)
        with torch.no_grad():
            for p in prompts:
                y = hf.generate(torch.tensor([p]), max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                                do_sample=True, temperature=0.8, top_k=50, top_p=1.0, eos_token_id=None,
                                pad_token_id=vocab - 1)
                assert y.shape[1] == len(p) + a.new_tokens

    raylm_cached()
    hf_generate()  # warm-up: first-call allocations, HF's lazy setup
    times: dict[str, list[float]] = {"raylm": [], "transformers": [], "no_cache": []}
    for r in range(a.rounds):
        order = ["raylm", "transformers"] if r % 2 == 0 else ["transformers", "raylm"]
        for name in order:
            times[name].append(timed(raylm_cached if name == "raylm" else hf_generate))
        times["no_cache"].append(timed(raylm_uncached))
    best = {k: min(v) for k, v in times.items()}
    tps = {k: n_new / v for k, v in best.items()}
    for k, v in tps.items():
        print(f"{k:13s} {v:8.1f} new tokens/s (rounds {[round(t, 2) for t in times[k]]} s)")
    setup = {"model": "GPT small: 6 layers, 6 heads, 384 wide, context 512, vocab 4096, fp32, random weights",
             "prompts": f"{len(prompts)} x 32 tokens", "new_tokens": a.new_tokens,
             "sampling": "temperature 0.8, top-k 50, no end-of-text stop", "threads": a.threads,
             "rounds_s": {k: [round(t, 3) for t in v] for k, v in times.items()}}
    write_result("generate_speed", [
        {"metric": "generate_tokens_per_s", "value": round(tps["raylm"], 1), "unit": "new tokens/s",
         "baseline": {"name": f"transformers {transformers.__version__} GPT2LMHeadModel.generate() on the "
                              f"model exported by raylm export, same prompts and sampling",
                      "value": round(tps["transformers"], 1)},
         "target": ">= 1.0 (ratio)", **setup},
        {"metric": "kv_cache_speedup", "value": round(tps["raylm"], 1), "unit": "new tokens/s",
         "baseline": {"name": "the same model without a KV cache (GPT.generate: the window re-read every token)",
                      "value": round(tps["no_cache"], 1)},
         "target": ">= 5 (ratio) at 256 new tokens", **setup},
    ], extra_versions=("transformers",))


if __name__ == "__main__":
    main()
