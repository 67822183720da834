"""Heuristic quality filters: Gopher (quality + repetition), C4 and FineWeb.

Thresholds default to the published values, as implemented in datatrove 0.10
(GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter, FineWebQualityFilter),
which follow Rae et al. 2021 (Gopher, table A1), Raffel et al. 2020 (C4) and Penedo et
al. 2024 (FineWeb). A rejected row gets `drop = "quality:<rule>"`, e.g.
"quality:gopher_short_doc"; the first failing rule wins, in the order gopher, gopher_rep,
c4, fineweb. C4 is also a line filter: with `c4.edit_lines` (the published behaviour) its
removed lines (no terminal punctuation, < 3 words, "javascript", cookie/policy notices) are
deleted from `text` of kept rows.

Words are whitespace-separated tokens (datatrove uses a language tokenizer; for English the
counts differ by punctuation tokens only).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from raylm.data import schema


@dataclass
class GopherRepetitionConfig:
    enabled: bool = True  # run the Gopher repetition rules
    dup_line_frac: float = 0.3  # max fraction of lines that are duplicates
    dup_para_frac: float = 0.3  # max fraction of paragraphs that are duplicates
    dup_line_char_frac: float = 0.2  # max fraction of chars in duplicate lines
    dup_para_char_frac: float = 0.2  # max fraction of chars in duplicate paragraphs
    # n -> max fraction of chars covered by the most common n-gram
    top_ngram_max_frac: dict[str, float] = field(default_factory=lambda: {"2": 0.2, "3": 0.18, "4": 0.16})
    dup_ngram_max_frac: dict[str, float] = field(default_factory=lambda: {
        "5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10})  # n -> max char frac in repeated n-grams

    def __post_init__(self):
        for k in (*self.top_ngram_max_frac, *self.dup_ngram_max_frac):
            if not k.isdigit() or int(k) < 1:
                raise ValueError(f"quality.gopher_rep n-gram keys must be positive integers, got {k!r}")


@dataclass
class GopherQualityConfig:
    enabled: bool = True  # run the Gopher quality rules
    min_doc_words: int = 50  # words
    max_doc_words: int = 100_000  # words
    min_avg_word_length: float = 3.0  # chars, over non-punctuation words
    max_avg_word_length: float = 10.0  # chars
    max_symbol_word_ratio: float = 0.1  # ('#' + ellipsis count) / words
    max_bullet_lines_ratio: float = 0.9  # lines starting with a bullet / lines
    max_ellipsis_lines_ratio: float = 0.3  # lines ending with an ellipsis / lines
    min_alpha_words_ratio: float = 0.8  # words with at least one letter / words
    min_stop_words: int = 2  # occurrences of the stop words below
    stop_words: list[str] = field(default_factory=lambda: [
        "the", "be", "to", "of", "and", "that", "have", "with"])  # Gopher's English stop words

    def __post_init__(self):
        if self.min_doc_words > self.max_doc_words or self.min_avg_word_length > self.max_avg_word_length:
            raise ValueError("quality.gopher: min_* must be <= max_*")


@dataclass
class C4Config:
    enabled: bool = True  # run the C4 rules
    edit_lines: bool = True  # delete the lines C4 rejects from kept documents (C4's own behaviour)
    min_words_per_line: int = 3  # lines with fewer words are removed
    max_word_length: int = 1000  # chars; lines with a longer word are removed
    min_num_sentences: int = 5  # after line removal; fewer -> drop
    filter_lorem_ipsum: bool = True  # "lorem ipsum" anywhere -> drop
    filter_curly_bracket: bool = True  # "{" anywhere -> drop (C4 removes code this way)
    filter_javascript: bool = True  # lines mentioning javascript are removed
    filter_policy: bool = True  # cookie / terms-of-use lines are removed
    filter_no_terminal_punct: bool = True  # lines not ending in . ? ! " ' are removed


@dataclass
class FineWebConfig:
    enabled: bool = True  # run the FineWeb rules
    line_punct_thr: float = 0.12  # min fraction of lines ending in terminal punctuation
    short_line_thr: float = 0.67  # max fraction of lines with <= short_line_length chars
    short_line_length: int = 30  # chars
    char_duplicates_ratio: float = 0.01  # max fraction of chars in duplicate lines
    new_line_ratio: float = 0.3  # max newlines / words (list-like pages)


@dataclass
class QualityConfig:
    gopher_rep: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)  # Gopher repetition rules
    gopher: GopherQualityConfig = field(default_factory=GopherQualityConfig)  # Gopher quality rules
    c4: C4Config = field(default_factory=C4Config)  # C4 rules
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)  # FineWeb rules


def _dups(items: list[str]) -> tuple[int, int]:
    """(duplicate elements, chars in duplicates), counting every occurrence after the first."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def gopher_repetition(text: str, words: list[str], cfg: GopherRepetitionConfig) -> str | None:
    paras = re.split(r"\n{2,}", text.strip())
    n, chars = _dups(paras)
    if n / len(paras) > cfg.dup_para_frac:
        return "gopher_dup_para_frac"
    if chars / len(text) > cfg.dup_para_char_frac:
        return "gopher_dup_para_char_frac"
    lines = re.split(r"\n+", text)
    n, chars = _dups(lines)
    if n / len(lines) > cfg.dup_line_frac:
        return "gopher_dup_line_frac"
    if chars / len(text) > cfg.dup_line_char_frac:
        return "gopher_dup_line_char_frac"
    for k, frac in cfg.top_ngram_max_frac.items():
        n = int(k)
        grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
        if grams:
            g, c = Counter(grams).most_common(1)[0]
            if len(g) * c / len(text) > frac:
                return f"gopher_top_{n}_gram"
    for k, frac in cfg.dup_ngram_max_frac.items():
        n = int(k)
        seen: set[str] = set()
        i, rep = 0, 0
        while i < len(words) - n + 1:  # repeated n-grams are skipped whole, so chars count once
            g = "".join(words[i:i + n])
            if g in seen:
                rep += len(g)
                i += n
            else:
                seen.add(g)
                i += 1
        if rep / len(text) > frac:
            return f"gopher_dup_{n}_grams"
    return None


_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~…–—«»“”‘’")
_ALPHA = re.compile(r"[^\W\d_]")


def gopher_quality(text: str, words: list[str], cfg: GopherQualityConfig) -> str | None:
    n = len(words)
    if n < cfg.min_doc_words:
        return "gopher_short_doc"
    if n > cfg.max_doc_words:
        return "gopher_long_doc"
    lens = [len(w) for w in words if not set(w) <= _PUNCT]
    avg = sum(lens) / len(lens) if lens else 0.0
    if avg < cfg.min_avg_word_length:
        return "gopher_below_avg_word_length"
    if avg > cfg.max_avg_word_length:
        return "gopher_above_avg_word_length"
    if (text.count("#") + text.count("...") + text.count("…")) / n > cfg.max_symbol_word_ratio:
        return "gopher_symbol_word_ratio"
    lines = text.splitlines() or [""]
    bullets = sum(ln.lstrip().startswith(("•", "-", "*", "‣", "◦")) for ln in lines)
    if bullets / len(lines) > cfg.max_bullet_lines_ratio:
        return "gopher_bullet_lines"
    if sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
        return "gopher_ellipsis_lines"
    if sum(1 for w in words if _ALPHA.search(w)) / n < cfg.min_alpha_words_ratio:
        return "gopher_alpha_words_ratio"
    stop = set(cfg.stop_words)
    if sum(1 for w in words if w.strip("".join(_PUNCT)).lower() in stop) < cfg.min_stop_words:
        return "gopher_stop_words"
    return None


_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_SENTENCE = re.compile(r"[.!?]+(?:\s|$)")


def c4(text: str, cfg: C4Config) -> tuple[str, str | None]:
    """(text with C4's rejected lines removed, drop rule or None)."""
    kept, sentences = [], 0
    for line in text.splitlines():
        line = _CITATION.sub("", line.strip())
        low = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in low:
            return text, "c4_lorem_ipsum"
        if cfg.filter_curly_bracket and "{" in line:
            return text, "c4_curly_bracket"
        words = line.split()
        if len(words) < cfg.min_words_per_line or any(len(w) > cfg.max_word_length for w in words):
            continue
        if cfg.filter_no_terminal_punct and (not line.endswith((".", "?", "!", '"', "'")) or line.endswith("...")):
            continue
        if cfg.filter_javascript and "javascript" in low:
            continue
        if cfg.filter_policy and any(p in low for p in _POLICY):
            continue
        sentences += max(1, len(_SENTENCE.findall(line)))
        kept.append(line)
    if sentences < cfg.min_num_sentences:
        return text, "c4_too_few_sentences"
    return "\n".join(kept), None


_TERMINAL = (".", "!", "?", '"', "'", ")", ":", "”", "’", "。", "！", "？", "…", "؟", "।")


def fineweb(text: str, words: list[str], cfg: FineWebConfig) -> str | None:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return "fineweb_empty"
    if sum(ln.rstrip().endswith(_TERMINAL) for ln in lines) / len(lines) < cfg.line_punct_thr:
        return "fineweb_line_punct_ratio"
    if sum(len(ln) <= cfg.short_line_length for ln in lines) / len(lines) > cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    if _dups(lines)[1] / max(1, len(text.replace("\n", ""))) > cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    if text.count("\n") / max(1, len(words)) > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None


def check(text: str, cfg: QualityConfig) -> tuple[str, str | None]:
    """(possibly C4-edited text, first failing rule or None) for one document."""
    if not text or not text.strip():
        return text, "empty"
    words = text.split()
    # Gopher quality before repetition (datatrove runs them the other way round): the same
    # documents go, but a 3-word page is tagged "short_doc" rather than "top_2_gram".
    if cfg.gopher.enabled and (r := gopher_quality(text, words, cfg.gopher)):
        return text, r
    if cfg.gopher_rep.enabled and (r := gopher_repetition(text, words, cfg.gopher_rep)):
        return text, r
    out = text
    if cfg.c4.enabled:
        edited, r = c4(text, cfg.c4)
        if r:
            return text, r
        if cfg.c4.edit_lines:
            out = edited
    # FineWeb sees the C4-edited text, as in the FineWeb pipeline (C4 runs first).
    if cfg.fineweb.enabled and (r := fineweb(out, out.split() if out is not text else words, cfg.fineweb)):
        return text, r
    return out, None


def apply(table: pa.Table, cfg: QualityConfig | None = None) -> pa.Table:
    """Tag rejected rows "quality:<rule>"; C4-edit `text` of kept rows when enabled."""
    cfg = cfg or QualityConfig()
    texts = table["text"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    out, reasons = [], []
    for t, k in zip(texts, keep):
        if not k:
            out.append(t)
            reasons.append(None)
            continue
        new, r = check(t or "", cfg)
        out.append(new if r is None else t)
        reasons.append(None if r is None else f"quality:{r}")
    idx = table.column_names.index("text")
    table = table.set_column(idx, pa.field("text", pa.string()), pa.array(out, type=pa.string()))
    return schema.set_drop(table, reasons)


def run(ds, cfg: QualityConfig, ctx=None):
    """Ray Data stage: quality rules on every batch (stateless tasks)."""
    return ds.map_batches(apply, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)
