"""benchmarks/tools/sst2_sentences.py: the sentence-level selection split of the transfer benchmark."""

import pytest

from benchmarks.tools import sst2_sentences  # the repository root is on sys.path (pyproject pythonpath)

ROWS = [  # two parse trees' phrases (as SST-2 lists them) and a third tree
    ("the film is a charming delight", "1"), ("a charming delight", "1"), ("charming", "1"), ("the film", "1"),
    ("the film is a dull mess", "0"), ("a dull mess", "0"), ("dull", "0"),
    ("a quiet , lovely story", "1"), ("lovely", "1"), ("charming", "0"),  # a duplicate keeps its first label
]


@pytest.mark.parametrize("seed", range(6))
def test_held_out_sentences_take_their_own_phrases_only(seed):
    train, val = sst2_sentences.sentence_split(ROWS, 1, seed)
    assert len(val) == 1
    held = val[0][0]
    sentences = {"the film is a charming delight", "the film is a dull mess", "a quiet , lovely story"}
    assert held in sentences
    kept = {t for t, _ in train}
    assert held not in kept and kept | {held} >= sentences - {held}
    for text, _ in ROWS:  # a phrase leaves training iff every sentence containing it is held out
        inside = [s for s in sentences if f" {text} " in f" {s} "]
        assert (text in kept) == any(s != held for s in inside), text
    assert "the film" in kept  # shared by two sentences: stays whichever is held out
    assert dict(train).get("charming", "1") == "1" and len(kept) == len(train)


def test_split_files_and_errors(tmp_path):
    src = tmp_path / "sst2"
    src.mkdir()
    body = "".join(f"{t}\t{y}\n" for t, y in ROWS)
    (src / "train.tsv").write_text("sentence\tlabel\n" + body[: len(body) // 2].rsplit("\n", 1)[0] + "\n")
    (src / "dev.tsv").write_text("sentence\tlabel\n" + body[len(body) // 2:].split("\n", 1)[1])
    counts = sst2_sentences.write_split(src, tmp_path / "out", n_val=2, seed=3)
    assert counts["val_sentences"] == 2 and counts["rows_in"] == len(ROWS) - 1  # one row straddled the cut
    val = sst2_sentences.read_tsv(tmp_path / "out" / "val_sent.tsv")
    train = sst2_sentences.read_tsv(tmp_path / "out" / "train_sent.tsv")
    assert len(val) == 2 and not {t for t, _ in val} & {t for t, _ in train}
    with pytest.raises(ValueError, match="n_val"):
        sst2_sentences.sentence_split(ROWS, 3, 0)
    (src / "dev.tsv").write_text("text\tlabel\nx\t1\n")
    with pytest.raises(ValueError, match="header"):
        sst2_sentences.read_tsv(src / "dev.tsv")
