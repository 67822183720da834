
import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.augment import OPS, AugmentConfig, augment, augment_text, load_synonyms, n_copies

TEXT = ("The big company said the new plan would help many people. Prices rose quickly last year.\n"
        "Some children were happy about the change. Others thought it was a bad idea.")


def test_synonyms_load():
    assert "large" in load_synonyms(None)["big"]


@pytest.mark.parametrize("op", OPS)
def test_each_op_changes_text_deterministically(op):
    cfg = AugmentConfig(ops=[op], alpha=0.2, char_noise_rate=0.1)
    a = augment_text(TEXT, "doc1", 0, cfg)
    assert a is not None and a[1] == op and a[0] != TEXT
    assert augment_text(TEXT, "doc1", 0, cfg) == a           # same seed+id+k -> same text
    other_seed = AugmentConfig(ops=[op], alpha=0.2, char_noise_rate=0.1, seed=1)
    assert augment_text(TEXT, "doc1", 0, other_seed) != a or op == "reorder"  # 2-sentence paras: few orders


def test_synonym_keeps_capitalisation_and_punctuation():
    new, _ = augment_text("Big, big news.", "x", 0, AugmentConfig(ops=["synonym"], alpha=1.0))
    words = new.split()
    assert words[0][0].isupper() and words[0].endswith(",") and new.endswith("news.")


def test_ratio_copies_on_average():
    cfg = AugmentConfig(ratio=0.3)
    got = sum(n_copies(f"id{i}", cfg) for i in range(2000)) / 2000
    assert 0.25 < got < 0.35
    assert all(n_copies(f"id{i}", AugmentConfig(ratio=2.0)) == 2 for i in range(20))


def test_table_train_only_provenance_and_stable_ids():
    t = schema.make_docs([{"id": f"d{i}", "text": TEXT, "source": "file"} for i in range(4)])
    t = schema.set_drop(t, [None, None, None, "quality:x"])
    t = t.append_column("split", pa.array(["train", "train", "val", "train"]))
    out = augment(t, AugmentConfig(ratio=1.0))
    assert out.num_rows == 6  # 4 originals + copies of d0, d1 (d2 is val, d3 dropped)
    rows = out.to_pylist()
    assert [r["augmented_from"] for r in rows] == [None] * 4 + ["d0", "d1"]
    assert all(r["augment_op"] in OPS and r["source"] == "file" and r["split"] == "train" for r in rows[4:])
    assert len({r["id"] for r in rows}) == 6
    # Same ids and texts when rows arrive in another order or batch (retry-safe).
    again = augment(t.slice(1, 1), AugmentConfig(ratio=1.0)).to_pylist()
    assert again[1]["id"] == rows[5]["id"] and again[1]["text"] == rows[5]["text"]


def test_zero_ratio_and_bad_config():
    t = schema.make_docs([{"id": "a", "text": TEXT}])
    out = augment(t, AugmentConfig(ratio=0.0))
    assert out.num_rows == 1 and out["augmented_from"].to_pylist() == [None]
    with pytest.raises(ValueError, match="unknown"):
        AugmentConfig(ops=["backtranslate"])
