import pyarrow as pa

from raylm.data import stats
from raylm.data.schema import make_docs


def test_stage_counts_bytes_and_reasons_without_text():
    t = make_docs([{"id": "a", "text": "hello"}, {"id": "b", "text": "secret@example.com"},
                   {"id": "c", "text": "", "drop": "ingest:too_short"}])
    t = stats.add_stage_bytes(t, "ingest")
    t = t.set_column(t.column_names.index("drop"), "drop", pa.array([None, "quality:gopher_short", "ingest:too_short"]))
    t = stats.add_stage_bytes(t, "quality")
    t = t.append_column("pii_email", pa.array([0, 1, 0]))
    row = stats.partial(t)["stats"][0].as_py()
    assert "secret" not in row and "hello" not in row  # only counts leave the workers
    rep = stats.merge([row, row], ["quality"])
    assert rep["documents_read"] == 6
    q = rep["stages"][0]
    assert (q["docs_in"], q["docs_out"], q["dropped"]) == (4, 2, 2)
    assert (q["bytes_in"], q["bytes_out"]) == (2 * (5 + 18), 2 * 5)
    assert rep["drop_reasons"] == {"ingest:too_short": 2, "quality:gopher_short": 2}
    assert rep["counts"] == {"pii_email": 2}
    assert "quality" in stats.table(rep)


def test_augment_adds_documents():
    t = make_docs([{"id": "a", "text": "one two"}, {"id": "a2", "text": "two one"}])
    t = t.append_column("augmented_from", pa.array([None, "a"]))
    t = stats.add_stage_bytes(stats.add_stage_bytes(t, "ingest"), "augment")
    rep = stats.merge([stats.partial(t)["stats"][0].as_py()], ["augment"])
    assert rep["documents_read"] == 1 and rep["stages"][0]["docs_out"] == 2 and rep["documents_kept"] == 2


def test_source_drops_happen_before_the_first_stage():
    t = make_docs([{"id": "a", "text": "x", "drop": "warc:http_404"}, {"id": "b", "text": "hello"}])
    t = stats.add_stage_bytes(stats.add_stage_bytes(t, "ingest"), "pii")
    rep = stats.merge([stats.partial(t)["stats"][0].as_py()], ["pii"])
    assert rep["stages"][0]["docs_in"] == 1 and rep["documents_kept"] == 1
