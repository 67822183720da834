"""Human-evaluation kit: agreement statistics on hand-checked examples, sheet round trip."""

import csv
import math

import pytest

from raylm.eval.human import CRITERIA, export_sheet, fleiss_kappa, krippendorff_alpha, read_sheets, report, summarize

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units
# example with missing values; published: nominal .743, ordinal .815, interval .849.
OBS = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
       [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
       [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
       [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
UNITS = [[o[u] for o in OBS if o[u] is not None] for u in range(12)]


def test_krippendorff_published_example():
    assert krippendorff_alpha(UNITS, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(UNITS, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(UNITS, "interval") == pytest.approx(0.849, abs=5e-4)


def test_agreement_by_hand():
    # 2 raters, 3 items: (1,1), (1,2), (2,2). Coincidences o11=2, o12=o21=1, o22=2; n1=n2=3, n=6.
    # alpha = 1 - (n-1) * 2 / (2*3*3) = 1 - 10/18; Fleiss: P_bar = 2/3, P_e = 1/2 -> kappa 1/3.
    units = [[1, 1], [1, 2], [2, 2]]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(4 / 9)
    assert krippendorff_alpha(units, "interval") == pytest.approx(4 / 9)  # two values: same as nominal
    assert fleiss_kappa(units) == pytest.approx(1 / 3)
    assert krippendorff_alpha([[3, 3], [4, 4], [1, 1]], "ordinal") == pytest.approx(1.0)
    assert fleiss_kappa([[3, 3], [4, 4]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[2, 2], [2, 2]]))  # no variation: undefined
    assert math.isnan(krippendorff_alpha([[1], [2]]))        # nothing pairable


def test_sheet_round_trip_blinded(tmp_path):
    samples = {"pretrained": [{"prompt": "p1", "text": 'a "quoted", line\nwith newline'},
                              {"prompt": "p2", "text": "b"}],
               "random": [{"prompt": "p1", "text": "c <b>"}, {"prompt": "p2", "text": "d"}]}
    res = export_sheet(samples, tmp_path / "sheet", raters=["ann", "bob"], blind=True, seed=3)
    assert res["rows"] == 4 and len(res["files"]) == 4
    page = (tmp_path / "sheet" / "sheet-ann.html").read_text()
    assert "c &lt;b&gt;" in page and "pretrained" not in page and "random" not in page
    scores = {"ann": {"pretrained": 5, "random": 2}, "bob": {"pretrained": 4, "random": 2}}
    import json

    key = json.loads((tmp_path / "sheet" / "key.json").read_text())
    for rater in ("ann", "bob"):
        path = tmp_path / "sheet" / f"sheet-{rater}.csv"
        rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
        assert {r["model"] for r in rows} == {"S1", "S2"} and rows[0]["rater"] == rater
        for r in rows:
            s = scores[rater][key["codes"][r["model"]]]
            r.update(fluency=s, coherence=s, relevance="" if rater == "bob" else s)
        rows[0]["comment"] = "ok"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    paths = [tmp_path / "sheet" / "sheet-ann.csv", tmp_path / "sheet" / "sheet-bob.csv"]
    ratings, problems = read_sheets(paths, tmp_path / "sheet" / "key.json")
    assert len(ratings) == 8 and problems == {"invalid_score": 0, "unrated_rows": 0, "duplicate": 0}
    s = summarize(ratings)
    assert s["models"]["pretrained"]["fluency"] == {"mean": 4.5, "std": pytest.approx(0.57735, abs=1e-4), "n": 4}
    assert s["models"]["random"]["relevance"]["mean"] == 2.0 and s["models"]["random"]["relevance"]["n"] == 2
    assert s["raters"] == ["ann", "bob"] and s["items"] == 4
    assert s["agreement"]["relevance"]["items_with_2plus_ratings"] == 0
    assert 0 < s["agreement"]["fluency"]["krippendorff_alpha_ordinal"] < 1
    full = report(paths, tmp_path / "sheet" / "key.json", tmp_path / "rep")
    assert (tmp_path / "rep" / "human_report.md").read_text().count("| pretrained | 4.50") == 1
    assert full["sheets"] == [str(p) for p in paths]
    assert json.loads((tmp_path / "rep" / "human_report.json").read_text())["agreement"]["relevance"][
        "fleiss_kappa"] is None  # NaN (no item rated twice) is written as null


def test_bad_scores_counted(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("item_id,model,prompt,output,fluency,coherence,relevance,rater,comment\n"
                 "i0,A,p,o,7,3,x,r1,\ni1,A,p,o,,,,r1,\ni0,A,p,o,2,2,2,r1,\n")
    ratings, problems = read_sheets([p])
    assert problems == {"invalid_score": 2, "unrated_rows": 1, "duplicate": 1}
    assert ratings == [{"item_id": "i0", "model": "A", "rater": "r1", "fluency": None, "coherence": 3,
                        "relevance": None}]
    assert set(CRITERIA) == {"fluency", "coherence", "relevance"}
