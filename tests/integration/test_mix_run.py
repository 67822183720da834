"""`raylm data` with two named sources and data.mix (issue 24 item 6): training documents of one
source repeated, of the other halved, validation untouched; the manifest counts documents and
tokens per source, the shard index tells repeats apart, stats.json has the mix stage."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq

from raylm.cli import main

CONFIG = """\
out: {out}
data:
  ingest:
    sources:
      news: {{paths: ["{a}"], txt_unit: paragraph}}
      forum: {{paths: ["{b}"], txt_unit: paragraph}}
  steps: [dedup]
  mix: {mix}
  tokenizer: {{kind: char}}
  split: {{val_fraction: 0.2}}
"""


WORDS = ("river stone light market winter garden letter signal harbour engine valley paper orbit "
         "candle mirror forest thunder silver ladder basket window meadow copper lantern").split()


def _corpus(root, name, n_files):
    d = root / name
    d.mkdir()
    rng = random.Random(name)
    for f in range(n_files):  # the same file names in both sources: ids must still differ
        paras = [f"{name} {f}.{i}: " + " ".join(rng.choice(WORDS) for _ in range(30)) for i in range(25)]
        (d / f"{f}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    return d


def test_mix_weights_sources_in_manifest(ray_session, tmp_path, capsys):
    a, b = _corpus(tmp_path, "news", 4), _corpus(tmp_path, "forum", 4)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(out=tmp_path / "plain", a=a, b=b, mix="{}"))
    assert main(["data", str(cfg)]) == 0
    cfg.write_text(CONFIG.format(out=tmp_path / "mixed", a=a, b=b, mix="{news: 2, forum: 0.5}"))
    assert main(["data", str(cfg)]) == 0
    assert "mix " in capsys.readouterr().out  # the stage's row in the printed table

    plain = json.loads((tmp_path / "plain" / "data" / "shards" / "manifest.json").read_text())
    mixed = json.loads((tmp_path / "mixed" / "data" / "shards" / "manifest.json").read_text())
    assert plain["sources"]["news"]["documents"] == plain["sources"]["forum"]["documents"] == 100
    p_train, m_train = plain["splits"]["train"]["sources"], mixed["splits"]["train"]["sources"]
    assert m_train["news"] == {k: 2 * v for k, v in p_train["news"].items() if k != "repeats"} | \
        {"repeats": p_train["news"]["documents"]}
    kept = m_train["forum"]["documents"] / p_train["forum"]["documents"]
    assert 0.3 < kept < 0.7 and m_train["forum"]["repeats"] == 0
    assert mixed["splits"]["val"]["sources"] == plain["splits"]["val"]["sources"]  # validation untouched

    stats = json.loads((tmp_path / "mixed" / "data" / "stats.json").read_text())
    (mix_row,) = [s for s in stats["stages"] if s["stage"] == "mix"]
    assert mix_row["added"] == p_train["news"]["documents"]
    assert mix_row["dropped"] == stats["drop_reasons"]["mix:downsampled"] == \
        p_train["forum"]["documents"] - m_train["forum"]["documents"]
    assert stats["documents_read"] == 200

    shards = tmp_path / "mixed" / "data" / "shards"
    index = pq.read_table([shards / s["index"] for s in mixed["splits"]["train"]["shards"]][0])
    repeats = [r for r in index.to_pylist() if r["repeat_of"]]
    assert repeats and all(r["source"] == "news" for r in repeats)
    ids = index["id"].to_pylist()
    assert len(ids) == len(set(ids))
