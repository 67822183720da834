"""shards.write_local (one process, no Ray) writes the bytes shards.write_all writes on Ray Data."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from raylm.data import shards
from raylm.data.tokenize import char_tokenizer

TEXT = Path(__file__).resolve().parents[2] / "raylm" / "assets" / "tinyshakespeare-slice.txt"


def test_local_writer_matches_the_ray_writer(ray_session, tmp_path):
    ray = ray_session
    text = TEXT.read_text()[:80_000]
    paras = [p for p in text.split("\n\n") if p.strip()]
    n = len(paras)
    docs = pa.table({"id": [f"p{(i * 7919) % n:05d}" for i in range(n)], "text": paras,  # ids out of order
                     "split": ["val" if i % 7 == 0 else "train" for i in range(n)],
                     "source": ["file"] * n, "license": ["public-domain"] * n})
    tok = char_tokenizer(text)
    cfg = shards.ShardConfig(shard_tokens=20_000)  # several shards per split
    metas = shards.write_all(ray.data.from_arrow(docs).repartition(3), tok, tmp_path / "ray", cfg, seed=5)
    shards.write_manifest(tmp_path / "ray", metas, **shards.tokenizer_fields(tok))
    m = shards.write_local(docs, tok, tmp_path / "local", cfg, seed=5)

    assert len(m["splits"]["train"]["shards"]) > 1 and len(m["splits"]["val"]["shards"]) >= 1
    assert m["splits"]["train"]["documents"] + m["splits"]["val"]["documents"] == n
    files = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "local").iterdir())
    for name in files:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
