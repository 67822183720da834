import json

import pytest

from raylm.data import schema
from raylm.data.decontam import (REASON, DecontamConfig, apply, build_index, contaminated, load, read_items, run,
                                 words)
from raylm.data.config import DataConfig


def test_words_undo_treebank_tokenisation():
    assert words("it 's a film that does n't -lrb- ca n't -rrb- work .") == \
        words("It's a film that doesn't (can't) work.") == \
        ["it", "s", "a", "film", "that", "doesn", "t", "can", "t", "work"]
    assert words("don\u2019t") == words("do n't")
    assert words("I cannot, we're gonna") == words("i can not , we 're gon na")
    assert words("Cafe\u0301 \ufb01lm") == words("caf\u00e9 film")  # NFKC: combining accent, ligature


def test_long_items_match_on_any_shared_ngram_short_items_whole():
    long_item = "one two three four five six seven eight nine ten"
    idx = build_index([long_item, "a short item of six words", "tiny"], ngram=5, min_words=3)
    assert idx.lengths == (5,)  # the six-word item is long here: its 5-grams are indexed
    assert contaminated("prefix THREE four five six seven suffix", idx)  # one shared 5-gram
    assert not contaminated("three four five six", idx)  # only 4 words shared
    assert not contaminated("tiny tiny tiny", idx)  # below min_words: ignored

    idx = build_index(["the cast is wonderful", "two words"], ngram=13, min_words=3)
    assert idx.lengths == (4,)
    assert contaminated("Honestly, the cast is wonderful!", idx)
    assert not contaminated("the cast is not wonderful", idx)  # the whole item, contiguous
    assert not contaminated("two words", idx)
    # Sequences of different lengths never share a hash by construction (the length is hashed).
    assert not contaminated("the cast is", build_index(["the cast is wonderful"], 13, 3))


def test_read_items_by_file_type(tmp_path):
    (tmp_path / "b.tsv").write_text('sentence\tlabel\nit \'s "quoted" here\t1\n\t0\n')
    (tmp_path / "b.csv").write_text('text,label\n"a, b",1\n')
    (tmp_path / "b.jsonl").write_text(json.dumps({"q": "question one"}) + "\n\n")
    (tmp_path / "b.txt").write_text("line one\n\nline two\n")
    assert read_items(str(tmp_path / "b.tsv"), "sentence") == ['it \'s "quoted" here']  # tsv: quotes are text
    assert read_items(str(tmp_path / "b.csv"), "text") == ["a, b"]
    assert read_items(str(tmp_path / "b.jsonl"), "q") == ["question one"]
    assert read_items(str(tmp_path / "b.txt"), "ignored") == ["line one", "line two"]
    with pytest.raises(ValueError, match="has no 'text' field .*sentence"):
        read_items(str(tmp_path / "b.tsv"), "text")
    (tmp_path / "bom.TSV").write_bytes("\ufeffsentence\tlabel\r\nfirst item\t1\r\n".encode())
    assert read_items(str(tmp_path / "bom.TSV"), "sentence") == ["first item"]  # BOM, CRLF, upper-case suffix
    (tmp_path / "list.jsonl").write_text(json.dumps({"text": ["a", "b"]}) + "\n")
    with pytest.raises(ValueError, match="holds a list, not text"):
        read_items(str(tmp_path / "list.jsonl"), "text")


def test_apply_tags_only_kept_contaminated_rows(tmp_path):
    bench = tmp_path / "test.tsv"
    bench.write_text("sentence\tlabel\nan utterly charming and hilarious film about nothing\t1\n")
    idx = load(DecontamConfig(paths=[str(bench)], text_field="sentence"))
    t = schema.make_docs([
        {"id": "a", "text": "Review: An utterly charming, and hilarious film about nothing. Loved it."},
        {"id": "b", "text": "An utterly charming and hilarious film about everything."},
        {"id": "c", "text": "an utterly charming and hilarious film about nothing", "drop": "quality:x"},
        {"id": "d", "text": None},
    ])
    assert apply(t, idx)["drop"].to_pylist() == [REASON, None, "quality:x", None]


def test_an_index_of_only_short_items_matches_nothing_and_says_so(tmp_path, caplog):
    bench = tmp_path / "short.txt"
    bench.write_text("a good film\nbad\n")
    cfg = DecontamConfig(paths=[str(bench)])
    assert len(load(cfg).hashes) == 0 and not contaminated("a good film", load(cfg))

    class FakeDataset:  # run() only plans: it needs map_batches
        def map_batches(self, fn, **kw):
            return kw["fn_kwargs"]["index"]

    with caplog.at_level("WARNING"):
        run(FakeDataset(), cfg)
    assert "drops nothing" in caplog.text


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: .*missing.tsv"):
        load(DecontamConfig(paths=[str(tmp_path / "missing.tsv")]))
    with pytest.raises(ValueError, match="unknown file type"):
        DecontamConfig(paths=[str(tmp_path / "bench.parquet")])
    with pytest.raises(ValueError, match="min_words"):
        DecontamConfig(ngram=5, min_words=6)
    with pytest.raises(ValueError, match="decontam is listed but data.decontam.paths is empty"):
        DataConfig(steps=["decontam"])
