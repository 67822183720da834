"""Counts that tell the truth (issue 24): decode errors per file, files of unknown format, in
stats.json and the printed table. No Ray."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from raylm.data import stats
from raylm.data.ingest.files import (
    DECODE_ERRORS,
    FilesConfig,
    check_unknown,
    read_one,
    unknown_format,
    with_decode_errors,
)
from raylm.data.config import DataConfig, IngestConfig
from raylm.data.pipeline import check_inputs


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("plain text\n\nsecond paragraph\n", encoding="utf-8")
    (d / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e\n\nna\xefve\n".encode("latin-1"))  # 5 bad bytes
    (d / "copyright").write_text("Copyright notice\n")
    (d / "sub" / "words.cor").write_text("a corpus file\n")
    return d


def test_decode_errors_counted_on_the_files_first_document(corpus):
    cfg = FilesConfig(paths=[str(corpus)])
    docs, counts = read_one(str(corpus / "latin1.txt"), cfg, "latin1.txt")
    assert counts["decode_errors"] == 5 and docs.num_rows == 2
    marked = with_decode_errors(docs, counts["decode_errors"])
    assert marked[DECODE_ERRORS].to_pylist() == [5, 0]


def test_unknown_formats_are_an_error_naming_them_or_skipped(corpus):
    cfg = FilesConfig(paths=[str(corpus)])
    assert sorted(u.rsplit("/", 1)[1] for u in unknown_format(cfg)) == ["copyright", "words.cor"]
    with pytest.raises(ValueError, match=r"2 file\(s\) whose format.*copyright.*words.cor.*skip_unknown"):
        check_unknown(cfg)
    with pytest.raises(ValueError, match="copyright"):  # before Ray: `raylm data` checks inputs first
        check_inputs(DataConfig(ingest=IngestConfig(files=cfg)), corpus.parent / "out")
    assert len(check_unknown(FilesConfig(paths=[str(corpus)], skip_unknown=True))) == 2
    assert unknown_format(FilesConfig(paths=[str(corpus)], format="txt")) == []  # one format for all
    assert unknown_format(FilesConfig(paths=[str(corpus / "*.txt")])) == []


def test_stats_list_decode_errors_and_skipped_files_per_file():
    batch = pa.table({
        "uri": ["/in/latin1.txt", "/in/latin1.txt", "/in/a.txt", "/in/copyright", "/in/latin1.txt"],
        "drop": [None, None, None, "ingest:unknown_format", None],
        DECODE_ERRORS: [4, 0, 0, 0, 4],
        "augmented_from": [None, None, None, None, "x"],  # an augmented copy does not count again
    })
    report = stats.merge([stats.partial(batch)["stats"][0].as_py()], [])
    assert report["decode_errors"] == {"bytes": 4, "files": {"/in/latin1.txt": 4}}
    assert report["skipped_files"] == {"ingest:unknown_format": ["/in/copyright"]}
    text = stats.table(report)
    assert "undecodable bytes replaced by U+FFFD: 4 in 1 file(s)" in text
    assert "files skipped as ingest:unknown_format: /in/copyright" in text
    json.dumps(report)  # stats.json


def test_crlf_paragraphs_split_like_lf():
    from raylm.data.ingest.files import FilesConfig, parse_file

    text = "First paragraph,\r\nstill first.\r\n\r\nSecond one.\r\n \r\nThird.\r\n"
    crlf, _ = parse_file("a.txt", text.encode(), FilesConfig(paths=["a.txt"]))
    lf, _ = parse_file("a.txt", text.replace("\r\n", "\n").encode(), FilesConfig(paths=["a.txt"]))
    assert crlf.num_rows == lf.num_rows == 3
    assert [t.replace("\r", "") for t in crlf["text"].to_pylist()] == lf["text"].to_pylist()
