"""Generation safeguard: flagged samples withheld and counted, with custom and shipped lists."""

import pytest

from raylm.eval.safeguard import SafeguardConfig, apply, flag


@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "w.txt").write_text("# words\nbadword\nvery bad phrase\n")
    (tmp_path / "d.txt").write_text("evil.example\n")
    return SafeguardConfig(enabled=True, word_list_path=str(tmp_path / "w.txt"),
                           domain_blocklist_path=str(tmp_path / "d.txt"))


def test_flag_reasons(cfg):
    assert flag("a perfectly fine sentence", cfg) is None
    assert flag("this has a BADWORD in it", cfg) == "words"
    assert flag("a very  bad\nphrase here", cfg) == "words"
    assert flag("badwordy is another word", cfg) is None  # word boundaries
    assert flag("visit https://cdn.evil.example/x?y=1 now", cfg) == "url"
    assert flag("see www.evil.example.", cfg) == "url"
    assert flag("go to evil.example/path, then", cfg) == "url"
    assert flag("notevil.example and good.example are fine", cfg) is None


def test_apply_withholds_and_counts(cfg):
    samples = [{"prompt": "badword", "text": "fine output"}, {"prompt": "", "text": "badword"},
               {"prompt": "", "text": "http://evil.example"}, {"prompt": "", "text": "ok"}]
    kept, s = apply(samples, cfg)
    assert [k["text"] for k in kept] == ["fine output", "ok"]  # the prompt is not judged
    assert s == {"enabled": True, "checked": 4, "withheld": 2, "reasons": {"words": 1, "url": 1},
                 "withheld_index": [1, 2]}
    kept, s = apply(samples, SafeguardConfig(enabled=False))
    assert len(kept) == 4 and s["withheld"] == 0


def test_hits_allowed_and_shipped_lists(cfg):
    cfg.max_word_hits = 1
    assert flag("one badword", cfg) is None and flag("badword badword", cfg) == "words"
    shipped = SafeguardConfig(enabled=True)
    assert flag("watch it on pornhub.com tonight", shipped) == "url"
    assert flag("the cat sat on the mat", shipped) is None
    with pytest.raises(ValueError):
        SafeguardConfig(word_list_path="/nonexistent/list.txt")
