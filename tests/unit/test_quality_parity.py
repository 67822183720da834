"""Parity of raylm's quality rules with datatrove 0.10.1's filters of the same name (issue 24).

Texts: every HTML or plain-text response in the shared WARCs (error pages too: they are real
pages), read by raylm's WARC reader and extracted by raylm's extractor three ways (main content,
whole page, tag strip), exact duplicates removed: 373 texts of 2 to 52,000 words; py3langid calls
322 English, 31 Chinese, the rest German, Dutch, Russian and others.

Each rule runs alone on both sides (the other rules of its filter switched off), so a difference in
one rule can neither hide nor cause one in another. Then each filter runs whole with its defaults,
then the whole stage against datatrove's FineWeb order. The bar is >= 99% agreement per rule. The
one difference by design (raylm drops a page with "{" or "lorem ipsum" anywhere, datatrove only
when it is on a line C4 keeps) is checked page by page below.

Measured (n=373): each of the 34 rules alone 100%; each filter whole 100% except C4, 98.4%,
whose 6 differences are all the designed "{" one; the whole stage 100% (275 dropped by each). The
word split (quality.split_words vs datatrove's spaCy) is identical on 269 of 373 texts and differs
in 0.2% of words; test_words_match_datatrove_spacy_split bounds it.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import pytest

from raylm.data import extract, quality
from raylm.data.ingest import warc

pytest.importorskip("datatrove")  # dev extra, with spaCy (datatrove's English word tokenizer)
pytest.importorskip("spacy")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,  # noqa: E402
                                        GopherRepetitionFilter)

MIN_AGREEMENT = 0.99
INF = math.inf


@pytest.fixture(scope="module")
def texts(shared_data) -> list[str]:
    cfg = warc.WarcConfig(paths=[str(shared_data / "warc")], keep_http_errors=True)
    rows = [r for uri, name in warc.expand(cfg.paths) for r in warc.read_warc(uri, cfg, name=name)]
    out: dict[str, None] = {}  # an ordered set
    for ecfg in (extract.ExtractConfig(), extract.ExtractConfig(main_content=False),
                 extract.ExtractConfig(extractor="strip")):
        for r in rows:
            if r["drop"] is None:
                html = extract.is_html(r["text"], r["content_type"])
                t = extract.extract_html(r["text"], ecfg) if html else r["text"]
                if t.strip():
                    out[t] = None
    assert len(out) >= 350, f"expected >= 350 distinct texts from the shared WARCs, got {len(out)}"
    return list(out)


@pytest.fixture(scope="module")
def words(texts) -> dict[str, list[str]]:
    return {t: quality.split_words(t) for t in texts}


@pytest.fixture(scope="module")
def datatrove():
    """datatrove with its spaCy word and sentence splits memoised per text (each rule below re-runs
    a filter on the same texts, and spaCy is most of the time); yields its word split."""
    from datatrove.pipeline.filters import (c4_filters, fineweb_quality_filter, gopher_quality_filter,
                                            gopher_repetition_filter)
    from datatrove.utils.text import split_into_sentences, split_into_words
    from datatrove.utils.typeshelper import Languages

    def memo(fn):
        cache: dict[tuple[str, str], list[str]] = {}

        def cached(text, language=Languages.english):  # the filters' default language
            if (text, language) not in cache:
                cache[text, language] = fn(text, language)
            return cache[text, language]
        return cached

    split = memo(split_into_words)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # np.mean of no words, when a rule is off
        for mod in (gopher_quality_filter, gopher_repetition_filter, fineweb_quality_filter):
            mp.setattr(mod, "split_into_words", split)
        mp.setattr(c4_filters, "split_into_sentences", memo(split_into_sentences))
        yield split


def dt_run(flt, text: str) -> tuple[bool, str]:
    """(kept, text after the filter) for one datatrove filter."""
    doc = Document(text=text, id="x")
    return flt.filter(doc) is True, doc.text


# --- one rule at a time: each rule's raylm config and datatrove filter, the other rules off ----

GOPHER_OFF = dict(min_doc_words=0, max_doc_words=10**12, min_avg_word_length=0.0, max_avg_word_length=INF,
                  max_symbol_word_ratio=INF, max_bullet_lines_ratio=INF, max_ellipsis_lines_ratio=INF,
                  min_alpha_words_ratio=0.0, min_stop_words=0)
DT_GOPHER_OFF = dict(min_doc_words=None, max_doc_words=None, min_avg_word_length=None, max_avg_word_length=None,
                     max_symbol_word_ratio=None, max_bullet_lines_ratio=None, max_ellipsis_lines_ratio=None,
                     max_non_alpha_words_ratio=None, min_stop_words=None)
GOPHER_RULES = {  # raylm reason -> (raylm field, datatrove argument)
    "gopher_short_doc": ("min_doc_words", "min_doc_words"),
    "gopher_long_doc": ("max_doc_words", "max_doc_words"),
    "gopher_below_avg_word_length": ("min_avg_word_length", "min_avg_word_length"),
    "gopher_above_avg_word_length": ("max_avg_word_length", "max_avg_word_length"),
    "gopher_symbol_word_ratio": ("max_symbol_word_ratio", "max_symbol_word_ratio"),  # '#' and ellipsis
    "gopher_bullet_lines": ("max_bullet_lines_ratio", "max_bullet_lines_ratio"),
    "gopher_ellipsis_lines": ("max_ellipsis_lines_ratio", "max_ellipsis_lines_ratio"),
    "gopher_alpha_words_ratio": ("min_alpha_words_ratio", "max_non_alpha_words_ratio"),
    "gopher_stop_words": ("min_stop_words", "min_stop_words"),
}

REP_OFF = dict(dup_line_frac=INF, dup_para_frac=INF, dup_line_char_frac=INF, dup_para_char_frac=INF,
               top_ngram_max_frac={}, dup_ngram_max_frac={})
DT_REP_OFF = dict(dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None, dup_para_char_frac=None,
                  top_n_grams=(), dup_n_grams=())
REP_RULES = {f"gopher_{f}": (f, None) for f in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac",
                                               "dup_line_char_frac")}
REP_RULES |= {f"gopher_top_{n}_gram": ("top_ngram_max_frac", n) for n in (2, 3, 4)}
REP_RULES |= {f"gopher_dup_{n}_grams": ("dup_ngram_max_frac", n) for n in range(5, 11)}

C4_OFF = dict(min_words_per_line=0, max_word_length=10**9, min_num_sentences=0, filter_lorem_ipsum=False,
              filter_curly_bracket=False, filter_javascript=False, filter_policy=False, filter_no_terminal_punct=False)
DT_C4_OFF = dict(min_words_per_line=-1, max_word_length=-1, min_num_sentences=-1, filter_lorem_ipsum=False,
                 filter_curly_bracket=False, filter_javascript=False, filter_policy=False,
                 filter_no_terminal_punct=False)
# Line rules remove lines: compared by the text each side keeps. Page rules drop the page; alone
# (every line kept) "{" and "lorem ipsum" anywhere is the same on both sides. The sentence count
# runs on the lines the (default) line rules keep, which is what it sees in use.
C4_LINE_RULES = {"c4_lines_no_terminal_punct": "filter_no_terminal_punct", "c4_lines_min_words": "min_words_per_line",
                 "c4_lines_max_word_length": "max_word_length", "c4_lines_javascript": "filter_javascript",
                 "c4_lines_policy": "filter_policy"}
C4_PAGE_RULES = {"c4_too_few_sentences": "min_num_sentences", "c4_lorem_ipsum": "filter_lorem_ipsum",
                 "c4_curly_bracket": "filter_curly_bracket"}

FW_OFF = dict(line_punct_thr=0.0, short_line_thr=INF, char_duplicates_ratio=INF, new_line_ratio=INF)
FW_RULES = {"fineweb_line_punct_ratio": "line_punct_thr", "fineweb_short_line_ratio": "short_line_thr",
            "fineweb_char_dup_ratio": "char_duplicates_ratio", "fineweb_list_ratio": "new_line_ratio"}

ALL_RULES = [*GOPHER_RULES, *REP_RULES, *C4_LINE_RULES, *C4_PAGE_RULES, *FW_RULES]


def rule_pair(rule: str, words: dict[str, list[str]]):
    """(raylm: text -> (kept, text), datatrove filter) for one rule, its filter's other rules off.
    Each side keeps its own default threshold (test_defaults_are_datatrove_s checks they match)."""
    if rule in GOPHER_RULES:
        ours, theirs = GOPHER_RULES[rule]
        cfg = quality.GopherQualityConfig(**{**GOPHER_OFF, ours: getattr(quality.GopherQualityConfig(), ours)})
        flt = GopherQualityFilter(**{**DT_GOPHER_OFF, theirs: getattr(GopherQualityFilter(), theirs)})
        return (lambda t: (quality.gopher_quality(t, words[t], cfg) is None, t)), flt
    if rule in REP_RULES:
        field, n = REP_RULES[rule]
        value = getattr(quality.GopherRepetitionConfig(), field)
        if n is None:
            cfg = quality.GopherRepetitionConfig(**{**REP_OFF, field: value})
            flt = GopherRepetitionFilter(**{**DT_REP_OFF, field: getattr(GopherRepetitionFilter(), field)})
        else:
            cfg = quality.GopherRepetitionConfig(**{**REP_OFF, field: {str(n): value[str(n)]}})
            theirs = "top_n_grams" if field == "top_ngram_max_frac" else "dup_n_grams"
            flt = GopherRepetitionFilter(**{**DT_REP_OFF, theirs: tuple(
                (k, f) for k, f in getattr(GopherRepetitionFilter(), theirs) if k == n)})
        return (lambda t: (quality.gopher_repetition(t, words[t], cfg) is None, t)), flt
    if rule in C4_LINE_RULES or rule in C4_PAGE_RULES:
        f = C4_LINE_RULES.get(rule) or C4_PAGE_RULES[rule]
        line_rules = {k: v for k, v in quality.C4Config().__dict__.items() if k in C4_LINE_RULES.values()}
        ours_off, theirs_off = (C4_OFF, DT_C4_OFF) if f != "min_num_sentences" else (
            {**C4_OFF, **line_rules}, {**DT_C4_OFF, **line_rules})
        cfg = quality.C4Config(**{**ours_off, f: getattr(quality.C4Config(), f)})
        flt = C4QualityFilter(**{**theirs_off, f: getattr(C4QualityFilter(), f)})

        def c4(t):
            out, r = quality.c4(t, cfg)
            return r is None, out
        return c4, flt
    f = FW_RULES[rule]
    cfg = quality.FineWebConfig(**{**FW_OFF, f: getattr(quality.FineWebConfig(), f)})
    theirs = {"short_line_thr": "short_line_threshold"}.get(f, f)  # stored under another name
    flt = FineWebQualityFilter(**{**FW_OFF, f: getattr(FineWebQualityFilter(), theirs)})
    return (lambda t: (quality.fineweb(t, words[t], cfg) is None, t)), flt


def compare(ours, theirs, texts: list[str], by_text: bool = False):
    """(agreement, differences, (dropped by raylm, dropped by datatrove)); a difference is (text,
    raylm's (kept, text or drop reason), datatrove's (kept, text)); by_text: a page both keep must
    come out with the same text (C4 edits it)."""
    diffs, drops = [], [0, 0]
    for t in texts:
        a, b = ours(t), theirs(t)
        drops[0] += not a[0]
        drops[1] += not b[0]
        if a[0] != b[0] or (by_text and a[0] and a[1] != b[1]):
            diffs.append((t, a, b))
    return 1 - len(diffs) / len(texts), diffs, tuple(drops)


def report(name: str, texts, agreement, diffs, drops) -> str:
    shown = "".join(f"\n  raylm kept={a[0]} datatrove kept={b[0]}: {t[:100]!r}" for t, a, b in diffs[:3])
    return (f"{name}: n={len(texts)} agreement={agreement:.4f} differences={len(diffs)} "
            f"dropped raylm={drops[0]} datatrove={drops[1]}{shown}")


@pytest.mark.parametrize("rule", ALL_RULES)
def test_each_rule_agrees_with_datatrove(rule, texts, words, datatrove):
    ours, flt = rule_pair(rule, words)
    agreement, diffs, drops = compare(ours, lambda t: dt_run(flt, t), texts, by_text=rule in C4_LINE_RULES)
    print(report(rule, texts, agreement, diffs, drops))
    assert agreement >= MIN_AGREEMENT, report(rule, texts, agreement, diffs, drops)


# --- whole filters and the whole stage --------------------------------------------------------

def _brace_or_lorem_only_on_removed_lines(text: str) -> bool:
    """The designed difference: raylm drops a page with "{" / "lorem ipsum" anywhere (the C4
    paper's rule); datatrove (C4's code) looks only at the lines its line rules keep."""
    flagged = "{" in text or "lorem ipsum" in text.lower()
    _, out = dt_run(C4QualityFilter(filter_curly_bracket=False, filter_lorem_ipsum=False), text)
    return flagged and "{" not in out and "lorem ipsum" not in out.lower()


def _unexplained(diffs, tags: tuple[str, ...]) -> list:
    """The differences not explained by the designed "{" / lorem ipsum difference."""
    return [(t, a, b) for t, a, b in diffs
            if not (not a[0] and b[0] and a[1] in tags and _brace_or_lorem_only_on_removed_lines(t))]


def whole_filter(name: str, words: dict[str, list[str]]):
    """(raylm: text -> (kept, text or drop reason), datatrove filter), each with its defaults."""
    if name == "c4":
        cfg = quality.C4Config()

        def c4(t):  # a dropped page carries its reason, for _unexplained
            out, r = quality.c4(t, cfg)
            return r is None, out if r is None else r
        return c4, C4QualityFilter()
    fn, cfg, flt = {"gopher": (quality.gopher_quality, quality.GopherQualityConfig(), GopherQualityFilter()),
                    "gopher_rep": (quality.gopher_repetition, quality.GopherRepetitionConfig(),
                                   GopherRepetitionFilter()),
                    "fineweb": (quality.fineweb, quality.FineWebConfig(), FineWebQualityFilter())}[name]
    return (lambda t: (fn(t, words[t], cfg) is None, t)), flt


@pytest.mark.parametrize("name", ["gopher", "gopher_rep", "c4", "fineweb"])
def test_each_filter_agrees_with_datatrove(name, texts, words, datatrove):
    ours, flt = whole_filter(name, words)
    agreement, diffs, drops = compare(ours, lambda t: dt_run(flt, t), texts, by_text=name == "c4")
    unexplained = _unexplained(diffs, ("c4_curly_bracket", "c4_lorem_ipsum"))
    print(report(name, texts, agreement, diffs, drops), f"unexplained={len(unexplained)}")
    assert 1 - len(unexplained) / len(texts) >= MIN_AGREEMENT, report(name, texts, agreement, unexplained, drops)


def test_stage_agrees_with_datatrove_fineweb_order(texts, datatrove):
    """quality.check with its defaults against datatrove's FineWeb pipeline order: Gopher repetition,
    Gopher quality, C4 (editing the text), FineWeb; the kept texts must match too."""
    chain = (GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter())

    def theirs(t):
        for flt in chain:
            kept, t = dt_run(flt, t)
            if not kept:
                return False, t
        return True, t

    def ours(t):
        out, r = quality.check(t, quality.QualityConfig())
        return r is None, out if r is None else r.removeprefix("quality:")

    agreement, diffs, drops = compare(ours, theirs, texts, by_text=True)
    unexplained = _unexplained(diffs, ("c4_curly_bracket", "c4_lorem_ipsum"))
    print(report("stage", texts, agreement, diffs, drops), f"unexplained={len(unexplained)}")
    assert 1 - len(unexplained) / len(texts) >= MIN_AGREEMENT, report("stage", texts, agreement, unexplained, drops)


def test_words_match_datatrove_spacy_split(texts, words, datatrove):
    """Bound on the one inherent difference: raylm's regex word split vs datatrove's spaCy split.
    Measured: 269 of 373 texts identical; 798 spaCy words missing and 853 extra of 737,927 (0.2%):
    spaCy special cases the regex leaves out ("cannot" -> "can", "not"; "gonna"; "Ph.D."), URLs
    glued to XML tags. No rule decision changes (the tests above)."""
    missing = extra = total = same = 0
    for t in texts:
        s, r = datatrove(t), words[t]
        total += len(s)
        same += s == r
        a, b = Counter(s), Counter(r)
        missing += sum((a - b).values())
        extra += sum((b - a).values())
    print(f"words: n={len(texts)} identical={same} spacy={total} missing={missing} extra={extra}")
    assert (missing + extra) / total < 0.005
    assert same / len(texts) > 0.6


def test_defaults_are_datatrove_s():
    """Thresholds and character classes are datatrove's own (each side's default, not copied here)."""
    from datatrove.pipeline.filters.c4_filters import POLICY_SUBSTRINGS
    from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION
    from spacy.pipeline.sentencizer import Sentencizer

    g, dg = quality.GopherQualityConfig(), GopherQualityFilter()
    for ours, theirs in GOPHER_RULES.values():
        assert getattr(g, ours) == getattr(dg, theirs), ours
    assert set(g.stop_words) == dg.stop_words
    r, dr = quality.GopherRepetitionConfig(), GopherRepetitionFilter()
    for f in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac"):
        assert getattr(r, f) == getattr(dr, f), f
    assert {int(k): v for k, v in r.top_ngram_max_frac.items()} == dict(dr.top_n_grams)
    assert {int(k): v for k, v in r.dup_ngram_max_frac.items()} == dict(dr.dup_n_grams)
    c, dc = quality.C4Config(), C4QualityFilter()
    for f in (*C4_LINE_RULES.values(), *C4_PAGE_RULES.values()):
        assert getattr(c, f) == getattr(dc, f), f
    f, df = quality.FineWebConfig(), FineWebQualityFilter()
    assert (f.line_punct_thr, f.short_line_thr, f.short_line_length, f.char_duplicates_ratio, f.new_line_ratio) == (
        df.line_punct_thr, df.short_line_threshold, df.short_line_length, df.char_duplicates_ratio, df.new_line_ratio)
    assert set(quality._TERMINAL) == TERMINAL_PUNCTUATION == set(df.stop_chars)
    assert quality._PUNCT == PUNCTUATION_SET
    assert quality._SENT_END <= set(Sentencizer.default_punct_chars)
    assert quality._POLICY == tuple(POLICY_SUBSTRINGS)
