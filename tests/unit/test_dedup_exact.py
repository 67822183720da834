"""Exact dedup pure parts: keys, survivors by rank, drop marking, survivor ranks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.dedup.exact import (
    REASON_TEXT,
    ExactDedupConfig,
    apply_reasons,
    duplicates_in,
    key_table,
    normalize_url,
    text_key,
)
from raylm.data.dedup.survivor import id_from_rank, rank_keys


def _docs():
    return schema.make_docs([
        {"id": "c", "text": "Hello   World", "url": "HTTP://Example.com:80/a/#x"},
        {"id": "a", "text": "hello world", "url": "http://example.com/a"},
        {"id": "b", "text": "hello world!", "url": "https://example.com/a"},
        {"id": "d", "text": "hello world", "drop": "lang:other"},
        {"id": "e", "text": None},
    ])


def test_text_key_normalises():
    assert text_key("Hello \n World ") == text_key("hello world")
    assert text_key("hello world") != text_key("hello  world", collapse_whitespace=False)
    assert text_key("Hello", lowercase=False) != text_key("hello", lowercase=False)
    assert text_key(None) is None


def test_normalize_url():
    assert normalize_url("HTTP://Example.com:80/a/#x") == normalize_url("http://example.com/a")
    assert normalize_url("https://example.com/a") != normalize_url("http://example.com/a")
    assert normalize_url("http://x.org:8080/") == "http://x.org:8080"
    assert normalize_url("  ") is None and normalize_url(None) is None
    assert normalize_url("http://x.org:99999999/") == "http://x.org:99999999/"  # bad port: kept as is


def test_key_table_skips_dropped_and_null():
    cfg = ExactDedupConfig(num_partitions=4)
    kt = key_table(_docs(), "text", cfg)
    assert sorted(kt["id"].to_pylist()) == ["a", "b", "c"]  # d dropped earlier, e null text
    assert all(0 <= p < 4 for p in kt["part"].to_pylist())
    ut = key_table(_docs(), "url", cfg)
    assert sorted(ut["id"].to_pylist()) == ["a", "b", "c"]


def test_smallest_rank_survives_and_marks_apply():
    cfg = ExactDedupConfig()
    docs = _docs()
    dups = duplicates_in(key_table(docs, "text", cfg), REASON_TEXT)
    assert dups.to_pylist() == [{"id": "c", "reason": REASON_TEXT}]
    url_dups = duplicates_in(key_table(docs, "url", cfg), "dedup:url")
    assert url_dups["id"].to_pylist() == ["c"]
    marked = apply_reasons(docs.append_column("_dedup_reason", pa.array([REASON_TEXT, None, None, "x", None])))
    assert marked["drop"].to_pylist() == [REASON_TEXT, None, None, "lang:other", None]
    assert "_dedup_reason" not in marked.column_names


def test_duplicates_in_empty():
    assert duplicates_in(key_table(schema.make_docs([]), "text", ExactDedupConfig()), REASON_TEXT).num_rows == 0


def test_survivor_ranks():
    t = pa.table({"id": ["a", "b", "c"], "text": ["x", "xyz", "xy"], "q": [0.5, None, 0.9]})
    longest = rank_keys(t, "longest")
    assert sorted(zip(longest.to_pylist(), "abc"))[0][1] == "b"
    assert id_from_rank(longest, "longest").to_pylist() == ["a", "b", "c"]
    score = rank_keys(t, "score", "q")
    assert [i for _, i in sorted(zip(score.to_pylist(), "abc"))] == ["c", "a", "b"]
    neg = rank_keys(pa.table({"id": ["a", "b"], "q": [-2.0, -1.0]}), "score", "q")
    assert neg.to_pylist()[1] < neg.to_pylist()[0]
    with pytest.raises(ValueError):
        rank_keys(t, "score", "missing")


def test_config_checks():
    with pytest.raises(ValueError, match="score_column"):
        ExactDedupConfig(survivor="score")
    with pytest.raises(ValueError, match="survivor"):
        ExactDedupConfig(survivor="oldest")
