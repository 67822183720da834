"""data.tokenizer.kind: word (issue 26): HF WordLevel, lossless on in-vocabulary text, the most
frequent pieces by min_frequency, <unk> for the rest, a standard tokenizer.json. No Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from raylm.data.tokenize import EOS, UNK, Encoder, TokenizerConfig, train_word

TEXT = (Path(__file__).resolve().parents[2] / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text()


def test_word_vocabulary_by_frequency_and_lossless_decoding(tmp_path):
    paras = TEXT.split("\n\n")
    tok = train_word(paras, TokenizerConfig(kind="word", vocab_size=2000, min_frequency=2))
    assert tok.get_vocab_size() == 2000 and tok.token_to_id(UNK) == 0 and tok.token_to_id(EOS) == 1
    para = next(p for p in paras if len(p) > 200)
    ids = tok.encode(para).ids
    assert len(ids) < len(para.split()) * 2.5  # words, punctuation and spaces: not characters
    if UNK not in tok.encode(para).tokens:
        assert tok.decode(ids) == para  # spaces and newlines come back
    assert tok.encode("the zyzzyvaqx king").tokens == ["the", " ", UNK, " ", "king"]
    # the saved file is a standard tokenizer.json, and the shard encoder appends EOS
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    again = Tokenizer.from_file(str(path))
    assert again.encode(para).ids == ids
    import pyarrow as pa

    enc = Encoder(tok.to_str())(pa.table({"id": ["a"], "text": ["the king"], "split": ["train"]}))
    assert enc["tokens"].to_pylist()[0][-1] == tok.token_to_id(EOS)


def test_min_frequency_and_config_checks():
    tok = train_word(["a a a b b c"], TokenizerConfig(kind="word", vocab_size=100, min_frequency=2))
    assert set(tok.get_vocab()) == {UNK, EOS, "a", "b", " "}
    with pytest.raises(ValueError, match="no word occurs 5 times"):
        train_word(["a b c"], TokenizerConfig(kind="word", vocab_size=100, min_frequency=5))
    with pytest.raises(ValueError, match="bpe, word or char"):
        TokenizerConfig(kind="sentencepiece")
