"""KV-cache generation and the Hugging Face export (no Ray): the cached decoder gives the tokens
the uncached reference gives, at any length; an exported model gives raylm's logits in
`transformers`, and greedy decoding there gives the same tokens."""

from __future__ import annotations

import json

import pytest
import torch

from raylm.eval.generate import Generator, Sampling, interactive, read_prompts, run_file, stream
from raylm.eval.safeguard import SafeguardConfig
from raylm.model.gpt import GPT, GPTConfig


def _model(vocab: int, block: int = 32, **kw) -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=block, vocab_size=vocab, **kw)).eval()
    with torch.no_grad():  # away from the init's near-uniform outputs: greedy paths differ per prompt
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def tok(tiny_shards):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny_shards / "tokenizer.json"))


def test_cached_logits_equal_the_full_forward():
    m = _model(50)
    x = torch.randint(0, 50, (2, 20))
    full = m(x)[0]
    logits, cache = m.cached(x[:, :12])
    assert torch.allclose(logits, full[:, :12], atol=1e-5) and cache.length == 12
    for t in range(12, 20):  # one position at a time
        step, cache = m.cached(x[:, t:t + 1], cache)
        assert torch.allclose(step[:, 0], full[:, t], atol=1e-5)
    three, _ = m.cached(x[:, 17:20], m.cached(x[:, :17])[1])  # several positions after a cache
    assert torch.allclose(three, full[:, 17:20], atol=1e-5)
    last, _ = m.cached(x[:, :9], last_only=True)
    assert last.shape == (2, 1, 50) and torch.allclose(last[:, 0], full[:, 8], atol=1e-5)
    with pytest.raises(ValueError, match="exceed block_size"):
        m.cached(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_cached_decoding_gives_the_reference_tokens_past_the_window(temperature):
    m = _model(50, block=16)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    s = Sampling(max_new_tokens=40, temperature=temperature, top_k=10, top_p=0.9)  # 48 tokens > 16
    cached = list(stream(m, prompt, s, eos_id=None, generator=torch.Generator().manual_seed(7)))
    ref = m.generate(torch.tensor([prompt]), 40, temperature=temperature, top_k=10, top_p=0.9,
                     generator=torch.Generator().manual_seed(7))[0, len(prompt):].tolist()
    assert cached == ref


def test_generation_stops_at_end_of_text_and_refuses_bad_prompts(tok):
    from raylm.data.tokenize import EOS

    eos = tok.token_to_id(EOS)
    m = _model(tok.get_vocab_size())
    v = tok.get_vocab_size()

    class EndOfText(torch.nn.Module):  # an output layer that always prefers end of text
        def forward(self, h):
            return torch.nn.functional.one_hot(torch.full(h.shape[:-1], eos), v).float()

    m.lm_head = EndOfText()
    gen = Generator(m, tok, eos, Sampling(max_new_tokens=20, temperature=0), SafeguardConfig())
    r = gen.complete("ROMEO:")
    assert r == {"prompt": "ROMEO:", "completion": "", "tokens": 0, "stopped": "eos", "withheld": None}
    with pytest.raises(ValueError, match="the prompt is empty"):
        gen.complete("   ")
    with pytest.raises(ValueError, match=r"the prompt is 40 tokens; this model reads 32 at most"):
        gen.complete("x" * 40)


def test_streamed_text_is_the_completion_and_the_safeguard_withholds(tok, tmp_path):
    m = _model(tok.get_vocab_size())
    gen = Generator(m, tok, None, Sampling(max_new_tokens=12, temperature=0), SafeguardConfig())
    pieces: list[str] = []
    r = gen.complete("JULIET:", on_text=pieces.append)
    assert "".join(pieces) == r["completion"] and r["tokens"] == 12 and r["stopped"] == "length"
    words = tmp_path / "words.txt"
    words.write_text(r["completion"].split()[0] if r["completion"].split() else r["completion"][:2])
    guarded = Generator(m, tok, None, Sampling(max_new_tokens=12, temperature=0),
                        SafeguardConfig(enabled=True, word_list_path=str(words), check_urls=False))
    shown: list[str] = []
    w = guarded.complete("JULIET:", on_text=shown.append)
    assert w["withheld"] == "words" and w["completion"] is None and shown == []


def test_prompts_file_and_interactive_session(tok, tmp_path):
    m = _model(tok.get_vocab_size())
    gen = Generator(m, tok, None, Sampling(max_new_tokens=5, temperature=0), SafeguardConfig())
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "ROMEO:"}\n{"prompt": ""}\n{"prompt": "KING:"}\n')
    assert read_prompts(str(f)) == ["ROMEO:", "", "KING:"]
    counts = run_file(gen, read_prompts(str(f)), tmp_path / "out.jsonl")
    rows = [json.loads(ln) for ln in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert counts == {"prompts": 3, "written": 3, "errors": 1, "withheld": 0}
    assert rows[0]["tokens"] == 5 and "error" in rows[1] and rows[2]["prompt"] == "KING:"
    with pytest.raises(ValueError, match=r"p2.jsonl:1: expected a JSON object"):
        (tmp_path / "p2.jsonl").write_text('"ROMEO"\n')
        read_prompts(str(tmp_path / "p2.jsonl"))

    answers = iter(["ROMEO:", "", "KING:"])
    out: list[str] = []
    calls = {"n": 0}
    real = gen.complete

    def complete(prompt, on_text=None):  # the second generation is interrupted by Ctrl-C
        calls["n"] += 1
        if prompt == "KING:":
            raise KeyboardInterrupt
        return real(prompt, on_text)

    gen.complete = complete

    def read(_):
        try:
            return next(answers)
        except StopIteration:
            raise EOFError from None

    interactive(gen, read=read, write=out.append)
    text = "".join(out)
    assert "the prompt is empty" in text and "[stopped]" in text and calls["n"] == 3


def test_export_gives_raylm_logits_and_greedy_tokens_in_transformers(tok, tiny_shards, tmp_path):
    transformers = pytest.importorskip("transformers")
    from raylm.data.tokenize import EOS
    from raylm.export import export_lm

    m = _model(tok.get_vocab_size())
    out = export_lm(m, tok.to_str(), tmp_path / "hf", {"do_sample": False})
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    htok = transformers.AutoTokenizer.from_pretrained(out)
    text = "ROMEO: But soft, what light"
    ids = htok(text)["input_ids"]
    assert ids == tok.encode(text, add_special_tokens=False).ids
    x = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, m(x)[0], atol=1e-4)
        ours = m.generate(x, 5, temperature=0)  # 27 + 5 tokens: inside both models' 32 positions
        theirs = hf.generate(x, max_new_tokens=5, do_sample=False, eos_token_id=None)
    assert theirs.tolist() == ours.tolist()
    eos = tok.token_to_id(EOS)
    assert (htok.eos_token, htok.pad_token, htok.unk_token) == (EOS, EOS, "<unk>")
    assert hf.config.eos_token_id == hf.config.pad_token_id == eos
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == eos
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "generation_config.json", "model.safetensors",
                                                     "special_tokens_map.json", "tokenizer.json",
                                                     "tokenizer_config.json"]


def _classifier(vocab: int, pooling: str, eos: int):
    from raylm.train.finetune import SequenceClassifier

    torch.manual_seed(1)
    c = SequenceClassifier(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=vocab), 3, pooling)
    with torch.no_grad():
        for p in c.parameters():
            p.add_(0.05 * torch.randn_like(p))
        c.head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    return c.eval(), {"labels": ["a", "b", "c"], "pooling": pooling, "lowercase": True, "max_len": 32,
                      "pad_id": eos}


def test_classifier_exports_as_gpt2_sequence_classification(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    from raylm.data.tokenize import EOS
    from raylm.export import export_classifier
    from raylm.train.classify_data import encode, pad_batch

    eos = tok.token_to_id(EOS)
    model, meta = _classifier(tok.get_vocab_size(), "last", eos)
    out = export_classifier(model, meta, tok.to_str(), tmp_path / "cls")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    htok = transformers.AutoTokenizer.from_pretrained(out)
    texts = ["Thou Art A VILLAIN", "no", "What light through yonder window breaks"]
    ids, lengths = pad_batch(encode(tok, [t.lower() for t in texts], 32), eos)  # raylm lowercases first
    batch = htok(texts, padding=True, truncation=True, return_tensors="pt")  # it lowercases itself
    assert torch.equal(batch["input_ids"], ids)
    with torch.no_grad():
        assert torch.allclose(hf(input_ids=batch["input_ids"]).logits, model(ids, lengths), atol=1e-4)
    assert hf.config.id2label == {0: "a", 1: "b", 2: "c"}
    mean, meta = _classifier(tok.get_vocab_size(), "mean", eos)
    with pytest.raises(ValueError, match="pools by 'mean'.*cannot be exported"):
        export_classifier(mean, meta, tok.to_str(), tmp_path / "mean")
    assert not (tmp_path / "mean").exists()
