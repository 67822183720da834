import pytest

from raylm.data import schema
from raylm.data.langid import LangId, LangIdConfig

EN = "The committee met on Tuesday to discuss the budget for the coming year and the plans that go with it."
FR = "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et des projets qui l'accompagnent."
DE = ("Der Ausschuss traf sich am Dienstag, um den Haushalt für das kommende Jahr und die dazugehörigen "
      "Pläne zu besprechen.")


@pytest.fixture(scope="module")
def en_only():
    return LangId(LangIdConfig(allowed=["en"]))


def test_columns_and_drops(en_only):
    t = schema.make_docs([{"id": "a", "text": EN}, {"id": "b", "text": FR}, {"id": "c", "text": DE, "drop": "x:y"},
                          {"id": "d", "text": ""}])
    out = en_only(t)
    assert out["lang"].to_pylist() == ["en", "fr", None, None]
    s = out["lang_score"].to_pylist()
    assert s[0] > 0.9 and s[1] > 0.9 and s[2] is None
    assert out["drop"].to_pylist() == [None, "langid:not_allowed", "x:y", "langid:empty"]


def test_min_score_and_allow_all():
    lid = LangId(LangIdConfig(allowed=[], min_score=0.99))
    out = lid(schema.make_docs([{"id": "a", "text": DE}, {"id": "b", "text": "ok"}]))
    assert out["drop"].to_pylist() == [None, "langid:low_score"]


def test_config_checks():
    with pytest.raises(ValueError, match="subset"):
        LangIdConfig(allowed=["en"], candidates=["fr", "de"])
    with pytest.raises(ValueError, match="model has no"):
        LangId(LangIdConfig(allowed=[], candidates=["xx"]))


def test_agnews_is_english(shared_data, en_only):
    lines = (shared_data / "agnews" / "test.tsv").read_text().splitlines()[:300]
    out = en_only(schema.make_docs([{"id": str(i), "text": ln.split("\t")[0]} for i, ln in enumerate(lines)]))
    assert out["lang"].to_pylist().count("en") / len(lines) >= 0.97
