import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from raylm.data import pii, schema
from raylm.data.pii import PiiConfig, apply, find_spans, redact
from raylm.data.pii_phone import phone_spans

REPO = Path(__file__).resolve().parents[2]
DENSE = REPO / "tests" / "data" / "pii_dense.jsonl"


def types_in(text, **kw):
    return [t for _, _, t in find_spans(text, PiiConfig(**kw))]


def test_each_type_redacted_with_placeholder():
    text = ("Mail jane.doe+x@example.co.uk or call +44 20 7946 0958. Server 192.168.10.4 and "
            "2001:db8::8a2e:370:7334. Card 4111 1111 1111 1111, SSN 123-45-6789, "
            "IBAN GB82 WEST 1234 5698 7654 32.")
    out, counts = redact(text)
    for ph in ("<EMAIL>", "<PHONE>", "<IP>", "<CREDIT_CARD>", "<SSN>", "<IBAN>"):
        assert ph in out
    assert counts == {"email": 1, "phone": 1, "ip": 2, "credit_card": 1, "ssn": 1, "iban": 1}
    for secret in ("jane.doe", "7946", "192.168", "8a2e", "4111", "6789", "WEST"):
        assert secret not in out


def test_checksums_reject_lookalikes():
    assert types_in("card 4111 1111 1111 1112") == []        # Luhn fails
    assert types_in("iban GB82 WEST 1234 5698 7654 33") == []  # mod-97 fails
    assert types_in("ssn 000-12-3456 and 666-12-3456 and 912-12-3456") == []  # never issued
    assert types_in("ip 999.1.1.1") == []
    assert types_in("use std::vector and a::b") == []           # not IPv6


def test_phone_needs_context_when_weak_and_rejects_dates_and_streets():
    assert types_in("Call me on 9472 7916 today") == ["phone"]
    assert types_in("In 9472 7916 cases") == []                # no phone word nearby
    assert types_in("Phone: released 2021-03-04 12:00") == []   # a date, not a phone
    assert types_in("Our office is at 6556 106 Rue Ettat") == []  # street address
    assert types_in("San Francisco, CA 94129-0244, phone") == []  # ZIP+4
    assert types_in("+1-984-182-0190") == ["phone"]
    assert types_in("+447700677662 mobile") == ["phone"]        # not a card


def spans_in(text, **kw):
    return [(text[a:b], t) for a, b, t in find_spans(text, PiiConfig(**kw))]


@pytest.mark.parametrize("text, number", [
    # Formats seen in the wild (issue 24): 2-5 digit area codes in brackets, ")-", dots, slashes,
    # trunk "(0)", extensions, and a capitalised word right after the number.
    ("Call (01623) 099386 Monday to Friday.", "(01623) 099386"),
    ("Ring (061)-3900301 Thanks.", "(061)-3900301"),
    ("Phone 0161 496 0066 Team Leader", "0161 496 0066"),
    ("Tel. +44 (0) 20 7946 0958 ext. 204", "+44 (0) 20 7946 0958 ext. 204"),
    ("+44(0)115 4960914 Sales", "+44(0)115 4960914"),
    ("Fax 206.269.0743x9150.", "206.269.0743x9150"),
    ("(591)341-7776 Office", "(591)341-7776"),
    ("Telefon: 02124/15868344", "02124/15868344"),
    ("06/ 834 49 78 Bel ons", "06/ 834 49 78"),
    ("(+358) 083778353", "(+358) 083778353"),
    ("+33 (0)1 41 63 60 83", "+33 (0)1 41 63 60 83"),
    ("Reservations 04 91 00 47 43 Monday", "04 91 00 47 43"),    # 2-digit groups: a phone without a word
    ("Bookings: 0121 496 0026 North", "0121 496 0026"),           # trunk 0 + area code: likewise
    ("Zadzwoń pod numer 609 141 777.", "609 141 777"),            # 3-3-3 needs its phone word
    ("Ligue para 11 7280-3852 hoje", "11 7280-3852"),
    ("Text or call 9933 3431 The office", "9933 3431"),           # a word just before beats "street number"
])
def test_phone_formats(text, number):
    assert spans_in(text) == [(number, "phone")]


@pytest.mark.parametrize("text", [
    "ISBN 978-3-16-148410-0, call us", "Call about 978-1-62328-601-9 today", "ISBN 0-306-40615-2, phone",  # ISBNs
    "Released 2021-03-04 12:00, call", "call 12/31/2024 10:30", "phone on 04.03.2021 14:00",              # dates
    "Phone: 1810-1880 Kendrick",                                                                          # years
    "Version 16.11.120 phone support", "Build 10.0.19045.2965, call", "call: v3.30.57",                    # versions
    "costs EUR 1.234.567, call", "call, $1,299.99", "Call 1 234 567 € now", "tel price 12 345 678 euros",  # prices
    "call: 48.856613, 2.352222", "Call 7.167375 120.484501 now", "tel -33.8688197, 151.2092955",          # coords
    "The town has 1 234 567 inhabitants. Call us", "Call: population (2011) 1 234 567",                   # population
    "Call us: 3 205 699 people live here", "Phone the 8.217.981 residents",
    "Our office is at 6556 106 Rue Ettat", "Tel 02 12-28-99 03",  # a street number; a track list
    "ssn 000-12-3456 and 666-12-3456 and 912-12-3456",            # not issued; not a phone either
])
def test_numbers_that_are_not_pii(text):
    assert spans_in(text) == []


@pytest.mark.parametrize("text, iban", [
    # Spanish (24) and Austrian (20) IBANs: lengths after the prefix are multiples of 4, so the
    # old pattern ran on into the next word and the checksum then failed.
    ("Please transfer to ES91 2100 0418 4502 0005 1332 Thanks you", "ES91 2100 0418 4502 0005 1332"),
    ("IBAN: AT61 1904 3002 3457 3201 Ms Lee", "AT61 1904 3002 3457 3201"),
    ("Pay to AT611904300234573201 Ms Lee", "AT611904300234573201"),
    ("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "DE89 3704 0044 0532 0130 00"),
    ("Konto NO93 8601 1117 947 Oslo", "NO93 8601 1117 947"),       # 15: the shortest
    ("my iban is gb42nawi04454264788619", "gb42nawi04454264788619"),
])
def test_iban_by_registered_length(text, iban):
    assert spans_in(text) == [(iban, "iban")]


def test_iban_lengths_and_checks():
    assert {c: pii.IBAN_LENGTHS[c] for c in ("NO", "BE", "DE", "GB", "ES", "FR", "MT", "LC", "RU")} == {
        "NO": 15, "BE": 16, "DE": 22, "GB": 22, "ES": 24, "FR": 27, "MT": 31, "LC": 32, "RU": 33}
    assert pii.iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not pii.iban_ok("GB82 WEST 1234 5698 7654 3")        # one short of GB's 22
    assert not pii.iban_ok("ZZ82WEST12345698765432")            # no such country
    assert spans_in("code XX12 3456 7890 1234 5678 here") == []  # not a registry country


def test_card_digits_after_a_country_code_are_a_phone():
    assert spans_in("Handy: +43 223795481900\nGlas") == [("+43 223795481900", "phone")]


def test_phone_skips_what_earlier_detectors_took():
    text = "IBAN AT61 1904 3002 3457 3201, call 0161 496 0066"
    iban = (5, 29, "iban")
    assert phone_spans(text, 40, [iban]) == [(36, 49)]
    assert (10, 29) in phone_spans(text, 40)  # the IBAN's digit groups, judged as a phone on their own


def test_types_subset_and_validation():
    assert types_in("a@b.com 123-45-6789", types=["ssn"]) == ["ssn"]
    with pytest.raises(ValueError, match="unknown"):
        PiiConfig(types=["name"])


def test_apply_table_counts_and_leaves_dropped_rows():
    t = schema.make_docs([
        {"id": "a", "text": "write to a@b.org please"},
        {"id": "b", "text": "nothing here"},
        {"id": "c", "text": "x@y.org", "drop": "lang:en"},
    ])
    out = apply(t)
    assert out["text"].to_pylist() == ["write to <EMAIL> please", "nothing here", "x@y.org"]
    assert out["pii_email"].to_pylist() == [1, 0, 0]
    assert out.column_names[: len(schema.DOC_COLUMNS)] == list(schema.DOC_COLUMNS)
    assert out["pii_ssn"].type == pa.int32()
    # Running twice replaces the count columns instead of duplicating them.
    assert apply(out).column_names == out.column_names


def test_null_text_passes():
    t = schema.make_docs([{"id": "a", "text": None}])
    assert apply(t)["text"].to_pylist() == [None]


_MAP = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "IP_ADDRESS": "ip",
        "CREDIT_CARD": "credit_card", "US_SSN": "ssn", "IBAN_CODE": "iban"}


def test_presidio_synth_recall_precision(shared_data):
    rows = json.loads((shared_data / "pii" / "presidio_synth_dataset_v2.json").read_text())
    texts = [r["full_text"] for r in rows]
    gold = [[(s["start_position"], s["end_position"], _MAP[s["entity_type"]])
             for s in r["spans"] if s["entity_type"] in _MAP] for r in rows]
    scores = pii.score_spans(texts, gold)
    for typ, c in scores.items():
        assert c["tp"] + c["fn"] > 0, typ
        recall = c["tp"] / (c["tp"] + c["fn"])
        precision = c["tp"] / max(1, c["tp"] + c["fp"])
        assert recall >= 0.97, (typ, c)        # issue 4 targets; issue 24: precision 0.98
        assert precision >= 0.98, (typ, c)


def _check_targets(scores):
    """Issue 24: recall >= 0.97 micro and >= 0.95 per type, precision >= 0.98."""
    tp = sum(c["tp"] for c in scores.values())
    fp = sum(c["fp"] for c in scores.values())
    fn = sum(c["fn"] for c in scores.values())
    assert tp / (tp + fn) >= 0.97 and tp / (tp + fp) >= 0.98, scores
    for typ, c in scores.items():
        assert c["tp"] + c["fn"] > 0, typ
        assert c["tp"] / (c["tp"] + c["fn"]) >= 0.95, (typ, c)


def test_dense_multilocale_recall_precision():
    # A slice of the dense set (benchmarks/tools/pii_dense.py): 14 Faker locales, about four values
    # per short document, beside ISBNs, dates, versions, prices, coordinates and population figures.
    rows = [json.loads(line) for line in DENSE.read_text(encoding="utf-8").splitlines()[:300]]
    scores = pii.score_spans([r["text"] for r in rows], [[tuple(s) for s in r["spans"]] for r in rows])
    _check_targets(scores)


def test_dense_set_is_what_the_script_writes(tmp_path):
    faker = pytest.importorskip("faker")
    if faker.VERSION != "40.63.0":
        pytest.skip(f"the set was written with Faker 40.63.0 (the bench extra's pin), not {faker.VERSION}")
    out = tmp_path / "dense.jsonl"
    subprocess.run([sys.executable, "-m", "benchmarks.tools.pii_dense", "--docs", "30", "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert out.read_text(encoding="utf-8").splitlines() == DENSE.read_text(encoding="utf-8").splitlines()[:30]
