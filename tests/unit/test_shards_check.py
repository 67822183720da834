"""shards.check and open_split: a damaged shard is a one-line error naming it and the command
that rebuilds it; the sha256 of a file state is computed once (cached by size and mtime_ns)."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

from raylm.data import shards
from raylm.data.tokenize import char_tokenizer

HOUR_NS = 3600 * 10**9


@pytest.fixture
def shard_dir(tmp_path):
    """Two train and two val shards, their files dated an hour back (older than the racy window)."""
    texts = [f"document {i} " + "abcdefg"[: 1 + i % 7] * (1 + i % 5) for i in range(40)]
    docs = pa.table({"id": [f"d{i:03d}" for i in range(40)], "text": texts,
                     "split": ["val" if i % 4 == 0 else "train" for i in range(40)]})
    shards.write_local(docs, char_tokenizer("".join(texts)), tmp_path, shards.ShardConfig(num_shards=2))
    _age(tmp_path, *tmp_path.glob("*.bin"))
    return tmp_path


def _age(d, *paths, by_ns: int = HOUR_NS):
    for p in paths:
        t = p.stat().st_mtime_ns - by_ns
        os.utime(p, ns=(t, t))


def _count_hashes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = shards.sha256_file

    def counting(path, *a, **k):
        calls.append(os.path.basename(path))
        return real(path, *a, **k)

    monkeypatch.setattr(shards, "sha256_file", counting)
    return calls


def _flip(path, at: int = 3):
    """Flip one byte in place (same size); the mtime moves on as with any write."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    with open(path, "r+b") as f:
        f.write(data)


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and "raylm data <config> --overwrite" in msg
    return msg


def test_whole_shards_pass_and_are_hashed_once(shard_dir, monkeypatch):
    calls = _count_hashes(monkeypatch)
    shards.check(shard_dir)
    assert sorted(calls) == ["train-00000.bin", "train-00001.bin", "val-00000.bin", "val-00001.bin"]
    cache = json.loads((shard_dir / shards.VERIFIED).read_text())
    m = shards.read_manifest(shard_dir)
    assert {k: v["sha256"] for k, v in cache.items()} == {s["file"]: s["sha256"] for s in shards.all_shards(m)}
    calls.clear()
    shards.check(shard_dir)  # cache hit: nothing is read again
    shards.check(shard_dir, full=False)
    assert calls == []


def test_flipped_byte_is_named_even_after_it_was_cached(shard_dir, monkeypatch):
    calls = _count_hashes(monkeypatch)
    shards.check(shard_dir)
    calls.clear()
    bad = shard_dir / "train-00001.bin"
    _flip(bad)
    _age(shard_dir, bad, by_ns=HOUR_NS // 2)  # a new mtime, still outside the racy window
    msg = _one_line_error(shards.check, shard_dir)
    assert "shard train-00001 does not match its checksum" in msg and str(bad) in msg
    assert calls == ["train-00001.bin"]  # only the changed file is read again
    cache = json.loads((shard_dir / shards.VERIFIED).read_text())
    assert "train-00001.bin" not in cache and "train-00000.bin" in cache  # the good entries stay
    assert shards.check(shard_dir, full=False) is None  # same size: the cheap check cannot see it
    assert shards.verify(shard_dir) == ["train-00001"]


def test_modified_file_with_new_mtime_is_rehashed(shard_dir, monkeypatch):
    calls = _count_hashes(monkeypatch)
    shards.check(shard_dir)
    calls.clear()
    f = shard_dir / "val-00000.bin"
    f.write_bytes(f.read_bytes())  # same content, new mtime
    _age(shard_dir, f, by_ns=HOUR_NS // 2)
    shards.check(shard_dir)
    assert calls == ["val-00000.bin"]
    calls.clear()
    shards.check(shard_dir)
    assert calls == []


def test_cache_entry_of_another_checksum_does_not_count(shard_dir, monkeypatch):
    """An entry counts only with the manifest's sha256: a rebuilt manifest is checked afresh."""
    shards.check(shard_dir)
    cache = json.loads((shard_dir / shards.VERIFIED).read_text())
    cache["train-00000.bin"]["sha256"] = "0" * 64
    (shard_dir / shards.VERIFIED).write_text(json.dumps(cache))
    calls = _count_hashes(monkeypatch)
    shards.check(shard_dir)
    assert calls == ["train-00000.bin"]
    (shard_dir / shards.VERIFIED).write_text("{not json")  # a damaged cache is an empty one
    calls.clear()
    shards.check(shard_dir)
    assert len(calls) == 4


def test_a_file_written_just_now_is_not_cached(shard_dir, monkeypatch):
    """A write in the same file-system clock tick as the hash would keep size and mtime."""
    f = shard_dir / "train-00000.bin"
    f.write_bytes(f.read_bytes())
    calls = _count_hashes(monkeypatch)
    shards.check(shard_dir)
    shards.check(shard_dir)
    assert calls.count("train-00000.bin") == 2 and calls.count("val-00000.bin") == 1


def test_truncated_shard_is_named_by_check_and_open_split(shard_dir):
    bad = shard_dir / "val-00001.bin"
    bad.write_bytes(bad.read_bytes()[:-2])
    for full in (True, False):
        msg = _one_line_error(shards.check, shard_dir, full=full)
        assert "shard val-00001 has the wrong size" in msg and "uint16 tokens" in msg
    assert "shard val-00001 has the wrong size" in _one_line_error(shards.open_split, shard_dir, "val")
    arrs = shards.open_split(shard_dir, "train")  # the other split is whole
    assert [len(a) for a in arrs] == [s["tokens"] for s in shards.read_manifest(shard_dir)["splits"]["train"]["shards"]]


def test_missing_or_empty_shard(shard_dir):
    (shard_dir / "train-00000.bin").unlink()
    assert "shard train-00000 is missing" in _one_line_error(shards.check, shard_dir, full=False)
    assert "shard train-00000 is missing" in _one_line_error(shards.open_split, shard_dir, "train")
    (shard_dir / "train-00000.bin").write_bytes(b"")
    assert "shard train-00000 has the wrong size" in _one_line_error(shards.open_split, shard_dir, "train")


def test_missing_index_and_tokenizer(shard_dir):
    (shard_dir / "val-00001.idx.parquet").unlink()
    assert "shard val-00001 has no index" in _one_line_error(shards.check, shard_dir)
    (shard_dir / shards.TOKENIZER).unlink()
    assert "tokenizer.json is missing" in _one_line_error(shards.check, shard_dir)


def test_read_only_shards_are_checked_without_a_cache(shard_dir, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(shards.atomic, "write_text", refuse)
    shards.check(shard_dir)
    assert not (shard_dir / shards.VERIFIED).exists()
