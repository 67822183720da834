import pytest

from raylm.data import schema
from raylm.data.content import ContentConfig, apply, domain_blocked, load_domains, load_words, word_hits


def test_shipped_lists_load():
    assert "xvideos.com" in load_domains(None)
    assert load_words(None).search("some PORN here")


def test_domain_match_includes_subdomains_only():
    d = frozenset({"bad.com"})
    assert domain_blocked("https://bad.com/x", d)
    assert domain_blocked("http://www.cdn.BAD.com:8080/x", d)
    assert not domain_blocked("https://notbad.com/", d)
    assert not domain_blocked("https://bad.com.example.org/", d)
    assert not domain_blocked(None, d)
    assert not domain_blocked("http://[bad", d)  # malformed: no crash


def test_words_on_boundaries_and_phrases():
    p = load_words(None)
    assert word_hits("An analysis of cocktail analytics.", p, 5) == 0  # no substring hits
    assert word_hits("sex  cam and porn", p, 5) == 2
    assert word_hits("porn porn porn porn", p, 1) == 2  # stops counting past the limit


def test_apply_with_custom_lists(tmp_path):
    dom = tmp_path / "d.txt"
    dom.write_text("# comment\nexample.org\n")
    words = tmp_path / "w.txt"
    words.write_text("spam\nbuy now\n")
    cfg = ContentConfig(domain_blocklist_path=str(dom), word_list_path=str(words), max_word_hits=1)
    t = schema.make_docs([
        {"id": "a", "text": "fine text", "url": "https://sub.example.org/p"},
        {"id": "b", "text": "spam and BUY   NOW", "url": "https://ok.net/"},
        {"id": "c", "text": "one spam only", "url": None},
        {"id": "d", "text": "spam spam", "url": "https://example.org", "drop": "quality:x"},
    ])
    assert apply(t, cfg)["drop"].to_pylist() == ["content:domain", "content:words", None, "quality:x"]
    with pytest.raises(ValueError, match="not found"):
        ContentConfig(word_list_path=str(tmp_path / "missing.txt"))
