"""pipeline.check_inputs: missing or unreadable inputs fail in one line before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raylm.data import pipeline
from raylm.data.config import DataConfig, IngestConfig
from raylm.data.decontam import DecontamConfig
from raylm.data.dedup.stage import DedupConfig
from raylm.data.ingest.files import FilesConfig
from raylm.data.ingest.warc import WarcConfig
from raylm.data.tokenize import TokenizerConfig, char_tokenizer

REPO = Path(__file__).resolve().parents[2]
TEXT = REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt"


def _cfg(paths=(str(TEXT),), **kw) -> DataConfig:
    return DataConfig(ingest=IngestConfig(files=FilesConfig(paths=list(paths))), **kw)


def _fails(cfg: DataConfig, kind: type, *parts: str) -> str:
    with pytest.raises(kind) as e:
        pipeline.check_inputs(cfg, Path("/nonexistent/out/data"))
    msg = str(e.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg
    return msg


def test_present_inputs_pass(tmp_path):
    tok = tmp_path / "tok.json"
    char_tokenizer("abc").save(str(tok))
    bench = tmp_path / "bench.txt"
    bench.write_text("an item of a benchmark\n")
    pipeline.check_inputs(_cfg([str(TEXT.parent / "*.txt")], tokenizer=TokenizerConfig(path=str(tok)),
                               steps=["decontam"], decontam=DecontamConfig(paths=[str(bench)])), tmp_path)


def test_missing_file_and_empty_glob(tmp_path):
    _fails(_cfg([str(TEXT), str(tmp_path / "nope.txt")]), FileNotFoundError,
           "data.ingest.files.paths", str(tmp_path / "nope.txt"), "does not exist")
    _fails(_cfg([str(tmp_path / "*.jsonl")]), FileNotFoundError,
           "data.ingest.files.paths", str(tmp_path / "*.jsonl"), "matches no files")
    warc = DataConfig(ingest=IngestConfig(warc=WarcConfig(paths=[str(tmp_path / "x.warc.gz")])))
    _fails(warc, FileNotFoundError, "data.ingest.warc.paths", str(tmp_path / "x.warc.gz"))


def test_tokenizer_path_missing_or_not_a_tokenizer(tmp_path):
    _fails(_cfg(tokenizer=TokenizerConfig(path=str(tmp_path / "tok.json"))), FileNotFoundError,
           "data.tokenizer.path", str(tmp_path / "tok.json"), "does not exist")
    (tmp_path / "tok.json").write_text('{"not": "a tokenizer"}')
    _fails(_cfg(tokenizer=TokenizerConfig(path=str(tmp_path / "tok.json"))), ValueError,
           "data.tokenizer.path", "is not a tokenizer.json")


def test_decontam_and_previous_dedup_checked_when_their_step_runs(tmp_path):
    bench = str(tmp_path / "sst2_test.tsv")
    _fails(_cfg(steps=["decontam"], decontam=DecontamConfig(paths=[bench])), FileNotFoundError,
           "data.decontam.paths", bench)
    pipeline.check_inputs(_cfg(decontam=DecontamConfig(paths=[bench])), tmp_path)  # not a step: unused
    prev = str(tmp_path / "old-dedup")
    _fails(_cfg(steps=["dedup"], dedup=DedupConfig(previous=[prev])), FileNotFoundError,
           "data.dedup.previous", prev)
    Path(prev).mkdir()
    _fails(_cfg(steps=["dedup"], dedup=DedupConfig(previous=[prev])), ValueError,
           "dedup.previous", "no finished signatures")


def test_unreadable_input(monkeypatch):
    monkeypatch.setattr(pipeline.os, "access", lambda path, mode: False)
    _fails(_cfg(), PermissionError, "data.ingest.files.paths", str(TEXT), "is not readable")


def test_check_inputs_imports_no_ray(tmp_path):
    code = ("import sys; from pathlib import Path; from raylm.data import pipeline; "
            "from raylm.data.ingest.files import FilesConfig; "
            f"pipeline.check_inputs(pipeline.DataConfig(ingest=pipeline.IngestConfig(files=FilesConfig("
            f"paths=[{str(TEXT)!r}]))), Path({str(tmp_path)!r})); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_a_data_run_lists_each_input_folder_once(tmp_path, monkeypatch):
    """Checks, the progress total and the read each expand the paths; inside `one_listing` (as
    `raylm data` runs them) a folder is listed once, and a file that appears in between is in
    none of them rather than in some."""
    import pyarrow.fs as pafs

    from raylm.data.ingest import files, objstore

    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha " * 20)
    (d / "sub" / "b.txt").write_text("beta " * 20)
    listed = []
    real = objstore.resolve

    class Counting:
        def __init__(self, fs):
            self.fs = fs

        def get_file_info(self, what):
            if isinstance(what, pafs.FileSelector):
                listed.append(what.base_dir)
            return self.fs.get_file_info(what)

    def counting(p):
        fs, path = real(p)
        return Counting(fs), path

    monkeypatch.setattr(objstore, "resolve", counting)
    cfg = DataConfig(ingest=IngestConfig(files=FilesConfig(paths=[str(d), str(d / "**" / "*.txt")])))
    with objstore.one_listing():
        pipeline.check_inputs(cfg, tmp_path / "out")
        (d / "late.txt").write_text("late " * 20)
        assert pipeline.input_count(cfg.ingest) == 2  # a dir and a glob naming the same two files
        assert [n for _, n in files.expand(cfg.ingest.files.paths)] == ["a.txt", "sub/b.txt"]
    assert len(listed) == 2  # the folder as a directory, and as the glob's base
    assert len(files.expand(cfg.ingest.files.paths)) == 3 and len(listed) == 4  # outside: listed afresh
