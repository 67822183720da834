r"""Tokenizer training (HF tokenizers) and document encoding.

Three kinds, all saved in the standard `tokenizer.json` form that `tokenizers.Tokenizer.from_file`
and `transformers.PreTrainedTokenizerFast(tokenizer_file=...)` read:
- `bpe`: byte-level BPE (GPT-2 style): every byte is in the alphabet, so nothing is unknown;
- `word`: HF tokenizers' WordLevel: text split into words (`\w+`), single punctuation marks and
  whitespace runs (so decoding gives the text back, spaces and newlines included), the
  `vocab_size` most frequent pieces seen at least `min_frequency` times, `<unk>` for the rest;
- `char`: one token per Unicode character seen in the kept documents (both splits), plus `<unk>`.

Bits per byte stays comparable across the three: eval divides by the UTF-8 bytes of the text
(from the manifest), not by tokens. A word vocabulary maps unseen words to one `<unk>`, whose
probability then covers many strings: its bits per byte flatters it where `<unk>` is frequent
(keep vocab_size high enough that it is rare).

Training a BPE or word vocabulary needs the text in one process: at most `sample_bytes` of
training-split text (streamed to the driver, the one single-machine step of `raylm data`;
the default 200 MB keeps the driver under ~2 GB). The char vocabulary is gathered
distributedly (per-batch character sets, unioned).
"""

from __future__ import annotations

import hashlib

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"
UNK = "<unk>"


@dataclass
class TokenizerConfig:
    kind: Literal["bpe", "word", "char"] = "bpe"  # byte-level BPE, whole words, or one token per character
    vocab_size: int = 4096                # BPE: target vocabulary incl. 256 bytes + specials; word: at most
                                          # this many (the most frequent, + <unk>, EOS); ignored for char
    min_frequency: int = 2                # BPE: a pair must occur this often to merge; word: a word to be kept
    sample_bytes: int = 200_000_000       # max training-split bytes sent to the driver to train BPE
    path: str | None = None               # use this tokenizer.json (or a checkpoint folder's) instead of training one

    def __post_init__(self):
        if self.kind not in ("bpe", "word", "char"):
            raise ValueError(f"data.tokenizer.kind must be bpe, word or char, got {self.kind!r}")
        if self.kind == "word" and self.path is None and self.vocab_size < 3:
            raise ValueError(f"vocab_size {self.vocab_size}: a word vocabulary needs <unk>, {EOS} and a word")
        if self.kind == "bpe" and self.path is None and self.vocab_size < 256 + 1:
            raise ValueError(f"vocab_size {self.vocab_size} is below the 256 byte tokens + "
                             f"{EOS}: byte-level BPE needs at least 257")
        if self.sample_bytes < 1:
            raise ValueError("sample_bytes must be >= 1")


def load_tokenizer(path: str) -> Tokenizer:
    """data.tokenizer.path's tokenizer.json (or a checkpoint folder holding one: continued
    pretraining tokenizes new text with its checkpoint's tokenizer); one-line errors when it is
    missing, is not one, or has no EOS token."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "tokenizer.json")):
        path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data.tokenizer.path: {path} does not exist")
    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
        raise ValueError(f"data.tokenizer.path: {path} is not a tokenizer.json "
                         f"({' '.join(str(e).split())})") from None
    if tok.token_to_id(EOS) is None:
        raise ValueError(f"data.tokenizer.path: {path} has no {EOS} token")
    return tok


def build_tokenizer(docs, cfg: TokenizerConfig) -> Tokenizer:
    """The tokenizer of a run: read from cfg.path, or built from `docs` (a Ray Dataset of kept
    documents with their `split`): a char vocabulary of every split, unioned from per-batch
    character sets, or BPE trained on at most cfg.sample_bytes of the train split, streamed to
    the driver (the one single-machine step; see the module docstring)."""
    if cfg.path:
        return load_tokenizer(cfg.path)
    if cfg.kind == "char":
        rows = docs.map_batches(char_set, batch_format="pyarrow").take_all()
        return char_tokenizer("".join(r["chars"] for r in rows))
    train = docs.map_batches(_train_texts, batch_format="pyarrow")
    if cfg.kind == "word":
        return train_word(_sample_texts(train, cfg.sample_bytes), cfg)
    return train_bpe(_sample_texts(train, cfg.sample_bytes), cfg)


def _train_texts(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.equal(batch["split"], "train")).select(["text"])


def _sample_texts(ds, limit: int) -> Iterator[str]:
    """Stream texts to the driver until `limit` UTF-8 bytes (the BPE training sample)."""
    seen = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=1024):
        for t in batch["text"].to_pylist():
            yield t
            seen += len(t.encode("utf-8"))
            if seen >= limit:
                return


def train_bpe(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train byte-level BPE on `texts`; error if the corpus cannot reach vocab_size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                  special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    got = tok.get_vocab_size()
    if got < cfg.vocab_size:
        raise ValueError(f"data.tokenizer.vocab_size={cfg.vocab_size} cannot be reached: the training "
                         f"text only supports {got} tokens (min_frequency={cfg.min_frequency}); "
                         f"lower vocab_size, lower min_frequency or add text")
    return tok


# Words, single punctuation marks and whitespace runs: every character belongs to a piece, so the
# Fuse decoder (concatenation) gives the text back exactly for in-vocabulary pieces.
WORD_PIECES = r"\w+|[^\w\s]|\s+"


def train_word(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """A word-level tokenizer (HF WordLevel) of the `cfg.vocab_size` most frequent pieces of
    `texts` seen at least `cfg.min_frequency` times, with `<unk>` and the EOS token."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PIECES), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                        special_tokens=[UNK, EOS], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() <= 2:
        raise ValueError(f"data.tokenizer: no word occurs {cfg.min_frequency} times in the training text; "
                         f"lower min_frequency or add text")
    return tok


def char_tokenizer(chars: Iterable[str]) -> Tokenizer:
    """A character-level tokenizer over `chars` (sorted), with `<unk>` and the EOS token."""
    vocab = {c: i for i, c in enumerate(sorted(set(chars) - {UNK, EOS}))}
    vocab[UNK] = len(vocab)
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    # Lines as pre-tokens keep BPE's per-word work small; no merges means one token per char.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n|[^\n]+"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([EOS])
    return tok


def char_set(batch: pa.Table) -> pa.Table:
    """Distinct characters of a batch's `text` column, as a one-row table (for the union)."""
    seen: set[str] = set()
    for t in batch["text"].to_pylist():
        seen.update(t)
    return pa.table({"chars": ["".join(sorted(seen))]})


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


_ENCODERS: dict = {}  # Encoder.cached


def encode(batch: pa.Table, tokenizer_json, keep: tuple[str, ...]) -> pa.Table:
    """`Encoder(tokenizer_json, keep)(batch)` through this process's cached Encoder (map_batches);
    `tokenizer_json` may be a Ray object reference to it (put once by the driver)."""
    if not isinstance(tokenizer_json, str):
        import ray

        tokenizer_json = ray.get(tokenizer_json)
    return Encoder.cached(tokenizer_json, keep)(batch)


class Encoder:
    """Callable for `map_batches`: text -> token ids with EOS appended per document.

    Output columns: id, split, tokens (list<uint32>), n_tokens, n_bytes (UTF-8 bytes of text),
    plus the provenance columns passed through.
    """

    def __init__(self, tokenizer_json: str, keep: tuple[str, ...] = ()):
        self.tok = Tokenizer.from_str(tokenizer_json)
        self.eos = self.tok.token_to_id(EOS)
        self.keep = keep

    @classmethod
    def cached(cls, tokenizer_json: str, keep: tuple[str, ...]) -> Encoder:
        """One Encoder per tokenizer content and columns in this process: Ray Data tasks reuse
        their worker processes, so a tokenizer is parsed once per worker, as in an actor pool,
        without an actor's restart caveats."""
        key = (hashlib.sha1(tokenizer_json.encode()).hexdigest(), keep)
        if key not in _ENCODERS:
            _ENCODERS.clear()  # one run's tokenizer at a time
            _ENCODERS[key] = cls(tokenizer_json, keep)
        return _ENCODERS[key]

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch["text"].to_pylist()
        encs = self.tok.encode_batch(texts, add_special_tokens=False)
        ids = [e.ids + [self.eos] for e in encs]
        cols = {k: batch[k] for k in self.keep if k in batch.column_names}
        cols["tokens"] = pa.array(ids, type=pa.list_(pa.uint32()))
        cols["n_tokens"] = pa.array([len(x) for x in ids], type=pa.int64())
        cols["n_bytes"] = pa.array([len(t.encode("utf-8")) for t in texts], type=pa.int64())
        return pa.table(cols)
