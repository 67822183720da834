"""The dense-PII set: short documents packed with synthetic PII from Faker in 14 locales, labelled.

Complements presidio's synthetic set (../shared/data/pii, US-centred, one value per sentence)
with what that set lacks: each locale's own phone formats (bracketed 2-5 digit area codes,
`)-`, dots, slashes, trunk `(0)`, extensions), each country's IBAN in compact and printed
(groups of 4) form, and values followed directly by a capitalised word. Beside them, in the
same documents, the numbers a detector must leave alone: ISBNs, dates, versions, prices,
coordinates, population figures, times, postcodes and street numbers; so the set measures
precision as well as recall.

Each document: 4-8 sentences of one locale, about 60% carrying PII (one or two values), 25%
the look-alikes above, the rest filler (Faker's sentences in the locale's words). Templates
put phone numbers after a phone word (tel, call, Telefon, appelez, ...) in about 80% of cases
and with no such word in the rest (a name and job before it, a "Bookings:" label), as pages do.

Output: one JSON object per line, {"id", "locale", "text", "spans": [[start, end, type], ...]},
types as in raylm.data.pii.TYPES. The file is committed (tests/data/pii_dense.jsonl), so tests
and benchmarks/pii.py read it without Faker; this script regenerates it byte for byte with the
Faker version pinned in the `bench` extra and the same --seed.

Usage: .venv/bin/python -m benchmarks.tools.pii_dense [--docs 600] [--seed 24] [--out tests/data/pii_dense.jsonl]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
from pathlib import Path

LOCALES = ("en_US", "en_GB", "en_AU", "en_CA", "en_IN", "de_DE", "de_AT", "de_CH", "fr_FR", "es_ES", "it_IT",
           "nl_NL", "pt_BR", "pl_PL")
# Faker's en_IN iban() gives GB numbers one character short of the registered 22: take en_GB's.
_IBAN_FROM = {"en_IN": "en_GB"}
_LABELLED = {"phone", "phone2", "email", "ipv4", "ipv6", "card", "ssn", "iban"}
_TYPE = {"phone": "phone", "phone2": "phone", "email": "email", "ipv4": "ip", "ipv6": "ip", "card": "credit_card",
         "ssn": "ssn", "iban": "iban"}

# Phone words in the locale's language, put before a number the way pages do.
_PHONE_INTRO = {
    "de": ["Telefon: {phone}", "Tel. {phone}", "Rufen Sie uns an unter {phone}.", "Handy: {phone}",
           "Telefonisch erreichbar unter {phone} {weekday} bis Freitag."],
    "fr": ["Téléphone : {phone}", "Tél. {phone}", "Appelez le {phone} Du lundi au vendredi.", "Portable : {phone}"],
    "es": ["Teléfono: {phone}", "Llame al {phone} De lunes a viernes.", "Móvil {phone}"],
    "it": ["Tel. {phone}", "Chiamare il {phone} Dal lunedì al venerdì.", "Cellulare: {phone}"],
    "nl": ["Bel {phone} voor een afspraak.", "Telefoon: {phone}", "Tel. {phone} Maandag tot vrijdag."],
    "pt": ["Ligue para {phone} De segunda a sexta.", "Telefone: {phone}", "Celular {phone}"],
    "pl": ["Zadzwoń pod numer {phone}.", "Tel. {phone}", "Telefon komórkowy: {phone}"],
}
PHONE_WITH_WORD = [
    "Call {name} on {phone} {Word} to Friday.",
    "For tickets call {phone} {Word} {word} {word}.",
    "Phone: {phone}, fax: {phone2}.",
    "Tel {phone} {Word} {city}.",
    "{name} can be reached by phone at {phone} or by e-mail at {email}.",
    "Mobile {phone} (WhatsApp too).",
    "Please call our office at {phone} for an appointment.",
    "Contact {company} on {phone} {Word}.",
    "If you have questions, call {phone}.",
    "Tel.: {phone} | {email}",
    "Text or call {phone} {Word} {word}.",
    "The hotline ({phone}) is open {weekday} to Friday.",
    "{company}, phone {phone} {Word} {word}.",
    "Ring {phone} after 6pm.",
]
PHONE_NO_WORD = [
    "{name}, {job}, {phone}",
    "Bookings: {phone} {Word} {word}.",
    "{name} ({phone}) handled the {word} {word}.",
    "Questions? {phone} {weekday} to Friday, 9am-5pm.",
    "{company} | {street} | {phone}",
]
EMAIL = [
    "Write to {email} {Word} {word}.", "Send your CV to {email} before {date_dmy}.", "E-mail: {email}",
    "{name} <{email}> wrote on {date_iso}:", "Contact {email} for details.", "Questions to {email}, {Word} {word}.",
]
IP = [
    "The attack came from {ipv4} {Word} {word}.", "Server {ipv4} stopped answering at {time}.",
    "The host {ipv6} was blocked.", "Login from {ipv4} at {time} on {date_iso}.", "Ping {ipv4}, then {ipv6}.",
]
CARD = [
    "Card number {card} expires {expiry}.", "Paid with {card} {Word} {word}.", "Charge it to {card}, {name}.",
    "The stolen card {card} was used in {city}.",
]
SSN = ["SSN {ssn}", "{name}'s social security number is {ssn}.", "Social Security No. {ssn} {Word} {word}."]
IBAN = [
    "IBAN {iban}", "Please transfer the amount to {iban} {Word} {word}.", "Account: {iban} ({company})",
    "Bank details: IBAN {iban}, {name}.", "Pay to {iban} {Word} you.", "IBAN: {iban} BIC {bic}",
]
# Look-alikes: numbers that are not PII.
DECOYS = [
    "The book (ISBN {isbn13}) sold out in {city}.", "ISBN {isbn10} {Word} {word}.", "See ISBN {isbn13} Chapter {n}.",
    "On {date_dmy} the council met.", "Released {date_iso} {time}.", "The deadline is {date_mdy} {Word} {word}.",
    "Due {date_slash} at {time}.", "Version {version} fixes {n} bugs.", "Upgrade to v{version} {Word} {word}.",
    "Build {build} shipped on {date_iso}.", "The flat sold for {price}.", "Tickets cost {price} {Word} {word}.",
    "The site lies at {lat}, {lng}.", "Coordinates: {lat} {lng} {Word}.", "{city} has {population} inhabitants.",
    "Population {population} ({year} census).", "The company employs {population} people {Word} {word}.",
    "Open {time}-{time2} daily.", "{name} lives at {street}, {postcode} {city}.", "Order {n} of {year}: {n} {word}.",
    "Call {city} town hall about the {year} budget of {price}.",
]
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def thousands(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


def population(f, rng: random.Random, lang: str) -> str:
    n = rng.choice([rng.randrange(1000, 99_999), rng.randrange(100_000, 9_999_999), rng.randrange(10**7, 10**9)])
    sep = {"en": ",", "de": ".", "fr": "\u202f", "pl": " ", "es": ".", "it": ".", "nl": ".", "pt": "."}[lang]
    return thousands(n, rng.choice([sep, sep, " "]) if lang != "en" else sep)


def grouped(s: str) -> str:
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def values(fakers: dict, rng: random.Random, locale: str) -> dict[str, str]:
    """One value per slot, drawn fresh for each sentence."""
    lang, f = locale[:2], fakers[locale]
    card = f.credit_card_number()
    if rng.random() < 0.4 and len(card) == 16:
        card = rng.choice([" ", "-"]).join(card[i:i + 4] for i in range(0, 16, 4))
    iban = fakers[_IBAN_FROM.get(locale, locale)].iban()
    if rng.random() < 0.5:
        iban = grouped(iban)
    d = f.date_between_dates(dt.date(1995, 1, 1), dt.date(2027, 12, 31))  # fixed bounds: no "today" inside
    n_ver = [rng.randrange(0, 20), rng.randrange(0, 40), rng.randrange(0, 200)]
    v = {
        "phone": f.phone_number(), "phone2": f.phone_number(), "email": f.email(),
        "ipv4": f.ipv4_public() if rng.random() < 0.7 else f.ipv4_private(),
        "ipv6": f.ipv6() if rng.random() < 0.6 else re.sub(r"(:0{1,4})+:", "::", f.ipv6(), count=1),
        "card": card, "ssn": f.ssn() if locale == "en_US" else "", "iban": iban, "bic": f.swift(length=8),
        "name": f.name(), "company": f.company(), "city": f.city(), "job": f.job(), "street": f.street_address(),
        "postcode": f.postcode(), "weekday": rng.choice(WEEKDAYS), "word": f.word(),
        "Word": rng.choice(WEEKDAYS[:5] + ("Thanks", "The", "Our", "Please", "Opening", "Best", "See", "Office",
                                           "Regards", "Mr", "New", "North", "Sales", "Ms", "Team")),
        "date_iso": d.isoformat(), "date_dmy": d.strftime(rng.choice(["%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y"])),
        "date_mdy": d.strftime("%B %d, %Y"), "date_slash": d.strftime(rng.choice(["%m/%d/%Y", "%d/%m/%y"])),
        "time": f"{rng.randrange(6, 23):02d}:{rng.choice([0, 15, 30, 45]):02d}",
        "time2": f"{rng.randrange(13, 24):02d}:{rng.choice([0, 30]):02d}",
        "isbn13": f.isbn13(), "isbn10": f.isbn10(), "version": ".".join(map(str, n_ver)),
        "build": f"{rng.randrange(6, 12)}.{rng.randrange(0, 4)}.{rng.randrange(10000, 30000)}.{rng.randrange(1, 5000)}",
        "price": f.pricetag() if rng.random() < 0.6 else f"EUR {thousands(rng.randrange(10_000, 9_000_000), '.')}",
        "lat": f"{f.latitude():.6f}", "lng": f"{f.longitude():.6f}", "population": population(f, rng, lang),
        "year": str(rng.randrange(1990, 2030)), "n": str(rng.randrange(2, 500)),
        "expiry": f"{rng.randrange(1, 13):02d}/{rng.randrange(26, 34)}",
    }
    return v


_SLOT = re.compile(r"\{(\w+)\}")


def fill(template: str, v: dict[str, str]) -> tuple[str, list[tuple[int, int, str]]]:
    """The sentence, and the (start, end, type) of each labelled slot in it."""
    out, spans, pos = [], [], 0
    for m in _SLOT.finditer(template):
        out.append(template[pos:m.start()])
        start = sum(map(len, out))
        out.append(v[m.group(1)])
        if m.group(1) in _LABELLED:
            spans.append((start, start + len(v[m.group(1)]), _TYPE[m.group(1)]))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


def pii_template(rng: random.Random, locale: str) -> str:
    kinds = ["phone"] * 5 + ["email"] * 2 + ["ip", "card", "iban", "iban"] + (["ssn"] * 4 if locale == "en_US" else [])
    kind = rng.choice(kinds)
    if kind == "phone":
        if rng.random() < 0.2:
            return rng.choice(PHONE_NO_WORD)
        local = _PHONE_INTRO.get(locale[:2])
        return rng.choice(local) if local and rng.random() < 0.4 else rng.choice(PHONE_WITH_WORD)
    return rng.choice({"email": EMAIL, "ip": IP, "card": CARD, "ssn": SSN, "iban": IBAN}[kind])


def document(fakers: dict, rng: random.Random, i: int) -> dict:
    locale = LOCALES[i % len(LOCALES)]
    f = fakers[locale]
    parts, spans, pos = [], [], 0
    for _ in range(rng.randrange(4, 9)):
        r = rng.random()
        if r < 0.6:
            template = pii_template(rng, locale)
        elif r < 0.85:
            template = rng.choice(DECOYS)
        else:
            template = f.sentence(nb_words=rng.randrange(6, 16))
        text, sp = fill(template, values(fakers, rng, locale))
        spans += [(a + pos, b + pos, t) for a, b, t in sp]
        sep = "\n" if rng.random() < 0.25 else " "
        parts.append(text + sep)
        pos += len(text) + len(sep)
    return {"id": f"dense-{i:05d}", "locale": locale, "text": "".join(parts).rstrip(), "spans": spans}


def generate(n_docs: int, seed: int) -> list[dict]:
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for k, loc in enumerate(LOCALES):  # _IBAN_FROM's locales are among them
        fakers[loc] = Faker(loc)
        fakers[loc].seed_instance(seed * 1000 + k)
    return [document(fakers, rng, i) for i in range(n_docs)]


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Some Faker providers draw from a set (it_IT's cities), whose order follows string hashing:
        # run again with it fixed, or the same seed gives another file.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.tools.pii_dense", *sys.argv[1:]], env)
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests" / "data" / "pii_dense.jsonl"))
    args = ap.parse_args()
    docs = generate(args.docs, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    n = sum(len(d["spans"]) for d in docs)
    print(f"wrote {out}: {len(docs)} docs, {sum(len(d['text']) for d in docs)} chars, {n} spans")


if __name__ == "__main__":
    main()
