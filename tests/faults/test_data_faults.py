"""Fault injection on `raylm data` (issue 27): damaged shards and binary input.

- a byte flipped in a finished shard: the rerun with the same config, which used to say "already
  complete", is a one-line error naming the shard and the command that rebuilds it;
- a binary file among text inputs is dropped as `ingest:binary` and counted, and adds nothing to
  a character vocabulary.

Both run `pipeline.run` on configs/tiny.yaml's data section in the session Ray.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from raylm import config as C
from raylm.data import pipeline, shards
from raylm.root import RootConfig

REPO = Path(__file__).resolve().parents[2]
TEXT = REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt"


def _tiny(**files) -> tuple:
    cfg = C.load(RootConfig, REPO / "configs" / "tiny.yaml")
    f = replace(cfg.data.ingest.files, **{"paths": [str(TEXT)], **files})
    return replace(cfg.data, ingest=replace(cfg.data.ingest, files=f)), cfg.seed


def test_flipped_byte_in_a_finished_shard_fails_the_rerun(ray_session, tmp_path):
    data, seed = _tiny()
    m = pipeline.run(data, tmp_path, seed)
    victim = m["splits"]["train"]["shards"][-1]
    path = tmp_path / "shards" / victim["file"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))

    with pytest.raises(ValueError) as e:
        pipeline.run(data, tmp_path, seed)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"shard {victim['name']} does not match its checksum" in msg
    assert "rebuild it with `raylm data <config> --overwrite`" in msg
    with pytest.raises(ValueError, match=victim["name"]):  # what training checks before it starts
        shards.check(tmp_path / "shards")


def test_binary_file_among_text_inputs_is_dropped_and_counted(ray_session, tmp_path):
    """The reproduction: a binary file read as txt grew a char vocabulary from 65 to 474."""
    import gzip

    binary = tmp_path / "in" / "blob.txt"
    binary.parent.mkdir()
    binary.write_bytes(gzip.compress(TEXT.read_bytes()[:200_000], mtime=0))
    data, seed = _tiny(paths=[str(TEXT), str(binary)])
    data = replace(data, tokenizer=replace(data.tokenizer, kind="char"))
    m = pipeline.run(data, tmp_path / "run", seed)
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["drop_reasons"].get("ingest:binary") == 1, stats["drop_reasons"]
    assert m["vocab_size"] <= len(set(TEXT.read_text())) + 2  # the text's characters, <unk>, EOS
