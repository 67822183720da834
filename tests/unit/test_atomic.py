"""raylm.atomic: whole content or none, directory replacement, and the sweep of stale temps."""

from __future__ import annotations

import threading

import pytest

from raylm import atomic


def test_text_and_bytes_replace_whole(tmp_path):
    p = tmp_path / "stats.json"
    atomic.write_text(p, "old")
    atomic.write_text(p, "new")
    assert p.read_text() == "new"
    atomic.write_bytes(tmp_path / "x.bin", b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["stats.json", "x.bin"]  # no temp left


def test_a_writer_that_raises_leaves_the_old_file_and_no_temp(tmp_path):
    p = tmp_path / "manifest.json"
    p.write_text("old")

    def half(tmp):
        tmp.write_text("half of the ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(p, half)
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["manifest.json"]


def test_temp_names_are_hidden_unique_and_recognised(tmp_path):
    names = set()

    def grab():
        for _ in range(50):
            names.add(atomic.temp_path(tmp_path / "a.bin").name)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == 200
    assert all(n.startswith(".a.bin.tmp-") and atomic.is_temp(n) for n in names)


def test_directory_appears_or_replaces_in_one_piece(tmp_path):
    d = tmp_path / "step-10"
    with atomic.directory(d) as tmp:
        assert tmp.parent == tmp_path and atomic.is_temp(tmp.name)
        (tmp / "model.bin").write_bytes(b"v1")
    with atomic.directory(d) as tmp:
        (tmp / "model.bin").write_bytes(b"v2")
        assert (d / "model.bin").read_bytes() == b"v1"  # the old tree is whole until the rename
    assert [p.name for p in d.iterdir()] == ["model.bin"] and (d / "model.bin").read_bytes() == b"v2"
    assert [p.name for p in tmp_path.iterdir()] == ["step-10"]


def test_directory_block_that_raises_keeps_the_old_tree(tmp_path):
    d = tmp_path / "signatures"
    d.mkdir()
    (d / "part-0.parquet").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.directory(d) as tmp:
        (tmp / "part-0.parquet").write_bytes(b"new")
        raise RuntimeError("worker died")
    assert (d / "part-0.parquet").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["signatures"]


def test_sweep_removes_only_the_schemes_temps(tmp_path):
    stale_file = atomic.temp_path(tmp_path / "config.yaml")
    stale_file.write_text("half")
    stale_dir = atomic.temp_path(tmp_path / "components")
    (stale_dir / "sub").mkdir(parents=True)
    keep = [".hidden", "config.yaml.tmp", "report.tmp-12", ".x.tmp-12", ".x.tmp-12-abc", "train-00000.bin",
            ".x.tmp-12-0123456Z"]
    for name in keep:
        (tmp_path / name).write_text("keep")
    gone = atomic.sweep(tmp_path)
    assert sorted(gone) == sorted([stale_file, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert atomic.sweep(tmp_path / "missing") == []
