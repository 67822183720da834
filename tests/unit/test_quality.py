import random

import pytest

from raylm.data import schema
from raylm.data.quality import (C4Config, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig,
                                QualityConfig, apply, check)

GOOD = "\n".join([
    "The committee met on Tuesday to discuss the budget for the coming year and the plans that go with it.",
    "Members agreed that spending on schools should rise, and that the roads program would have to wait.",
    "Several speakers asked whether the city could afford both projects at the same time.",
    "The mayor said she would publish a detailed proposal with new figures before the next meeting.",
    "Residents who want to comment can attend the hearing or write to the council office directly.",
    "A final vote is expected at the end of the month, after the public consultation has closed.",
])


def test_good_document_passes_all_rules():
    assert check(GOOD, QualityConfig()) == (GOOD, None)


def _words(n, seed=0, vocab=None):
    rng = random.Random(seed)
    vocab = vocab or sorted(set(GOOD.lower().replace(".", "").replace(",", "").split()))
    return [rng.choice(vocab) for _ in range(n)]


@pytest.mark.parametrize("text,rule", [
    ("too short to keep.", "gopher_short_doc"),
    (" ".join(w + " #x" for w in _words(60)), "gopher_symbol_word_ratio"),
    (" ".join(w + " 1234" for w in _words(60)), "gopher_alpha_words_ratio"),
    (" ".join(_words(80, vocab=["lorem", "dolor", "amet", "consectetur", "adipiscing", "elit"])), "gopher_stop_words"),
    ("\n".join(f"- {w} and the rest" for w in _words(60)), "gopher_bullet_lines"),
    (" ".join(_words(80, vocab=["a", "of", "to", "be", "it", "the"])), "gopher_below_avg_word_length"),
])
def test_gopher_quality_rules_tag_reason(text, rule):
    assert check(text, QualityConfig())[1] == rule


@pytest.mark.parametrize("text,rule", [
    ("\n\n".join([GOOD.splitlines()[0]] * 3 + GOOD.splitlines()[1:]), "gopher_dup_para_char_frac"),
    ("\n".join([GOOD] + [GOOD.splitlines()[2]] * 4), "gopher_dup_line_frac"),
    (GOOD + " " + " ".join(["the committee met"] * 20), "gopher_top_2_gram"),
])
def test_gopher_repetition_rules_tag_reason(text, rule):
    assert check(text, QualityConfig())[1] == rule


def test_c4_rules_and_line_editing():
    cfg = QualityConfig(gopher=GopherQualityConfig(enabled=False), gopher_rep=GopherRepetitionConfig(enabled=False),
                        fineweb=FineWebConfig(enabled=False))
    assert check(GOOD + "\nfunction f() { return 1; }", cfg)[1] == "c4_curly_bracket"
    assert check(GOOD + "\nLorem ipsum dolor sit amet.", cfg)[1] == "c4_lorem_ipsum"
    assert check("One short sentence here.", cfg)[1] == "c4_too_few_sentences"
    noisy = ("Home | About | Contact\n" + GOOD + "\nThis site uses cookies to improve your experience.\n"
             "Please enable JavaScript to view this page.")
    text, rule = check(noisy, cfg)
    assert rule is None and text == GOOD  # nav, cookie and javascript lines removed
    off = QualityConfig(c4=C4Config(edit_lines=False), gopher=cfg.gopher, gopher_rep=cfg.gopher_rep,
                        fineweb=cfg.fineweb)
    assert check(noisy, off) == (noisy, None)


def test_fineweb_rules():
    cfg = QualityConfig(gopher=GopherQualityConfig(enabled=False), gopher_rep=GopherRepetitionConfig(enabled=False),
                        c4=C4Config(enabled=False))
    listy = "\n".join(f"item number {i} in the list" for i in range(30))
    assert check(listy, cfg)[1] == "fineweb_line_punct_ratio"
    shorty = "\n".join(f"Item {i} is here." for i in range(30))
    assert check(shorty, cfg)[1] == "fineweb_short_line_ratio"
    assert check(GOOD + "\n" + GOOD.splitlines()[0], cfg)[1] == "fineweb_char_dup_ratio"


def test_config_checks():
    with pytest.raises(ValueError):
        GopherQualityConfig(min_doc_words=10, max_doc_words=5)
    with pytest.raises(ValueError):
        GopherRepetitionConfig(top_ngram_max_frac={"two": 0.2})


def test_apply_tags_rows_and_skips_dropped():
    t = schema.make_docs([{"id": "a", "text": GOOD}, {"id": "b", "text": "tiny."},
                          {"id": "c", "text": "tiny.", "drop": "lang:xx"}, {"id": "d", "text": None}])
    out = apply(t)
    assert out["drop"].to_pylist() == [None, "quality:gopher_short_doc", "lang:xx", "quality:empty"]
    assert out["text"].to_pylist()[:3] == [GOOD, "tiny.", "tiny."]
