"""Fault injection on `raylm data` (issue 27).

- a byte flipped in a finished shard: the rerun with the same config, which used to say "already
  complete", is a one-line error naming the shard and the command that rebuilds it.

Runs `pipeline.run` on configs/tiny.yaml's data section in the session Ray.
"""

from __future__ import annotations

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

