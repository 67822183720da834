"""PII redaction: email, phone, IP (v4/v6), credit card, US SSN and IBAN -> typed placeholders.

Each detector is a regex that proposes candidates plus, where one exists, a check that rejects
look-alikes (Luhn for cards, the SWIFT registry length and ISO 7064 mod-97 for IBANs, `ipaddress`
for IPv6, the SSA's never-issued ranges for SSNs; phone numbers: raylm.data.pii_phone). Spans
are found on the original text in a fixed priority order (see `_ORDER`); a later detector never
claims characters an earlier one took, so a card number is never also counted as a phone number.

Speed (benchmarks/pii.py): every pattern starts with a character class or a literal, never with
a look-behind, so Python's regex engine skips the positions that cannot start a match instead of
trying each one; e-mail addresses are only looked for around each '@'; phone numbers inside an
IBAN or a card found earlier are not judged again. On text dense with numbers this matters more
than the matches themselves.

PII never leaves this module: only counts are returned or logged, never matched values.
Known limits: phone numbers of a shape that is not a phone on its own (bare digit runs, 3-3-3
groups) are only found next to a phone word (see pii_phone); IBANs of countries outside the
registry are not found; names and street addresses are not detected (they need a NER model).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import pyarrow as pa

from raylm.data import schema
from raylm.data.pii_phone import phone_spans

TYPES = ("email", "phone", "ip", "credit_card", "ssn", "iban")
PLACEHOLDERS = {t: f"<{t.upper()}>" for t in TYPES}


@dataclass
class PiiConfig:
    types: list[str] = field(default_factory=lambda: list(TYPES))  # entity types to redact
    count_columns: bool = True  # add one int32 column `pii_<type>` per type: spans redacted in the row
    phone_context_chars: int = 40  # window (chars) searched for a phone word around weak phone candidates

    def __post_init__(self):
        bad = [t for t in self.types if t not in TYPES]
        if bad:
            raise ValueError(f"pii.types: unknown {bad}; valid: {list(TYPES)}")
        if self.phone_context_chars < 0:
            raise ValueError("pii.phone_context_chars must be >= 0")


# ---- detectors: each (text, cfg) -> list of (start, end) candidate spans, already validated ----

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])")


def _email(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    # Only around each '@' (a local part is at most 64 characters): a scan of the whole text with
    # the pattern costs more than all the matches.
    out, end, at = [], 0, text.find("@")
    while at != -1:
        m = _EMAIL.search(text, max(end, at - 64), at + 256)
        if m:
            out.append(m.span())
            end = m.end()
        at = text.find("@", max(at + 1, end))
    return out


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!\w)")
# IPv6 candidates: hex groups joined by ':' with at least two colons; validated by ipaddress.
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
                   rf"{_OCTET}(?:\.{_OCTET}){{3}})?(?![\w:])")
# Cheap scans that find where the patterns above can start (a pattern that begins with a
# look-behind is tried at every position; one that begins with a character class is not).
_IPV4_HINT = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:.")


def _ip(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    out = []
    for h in _IPV4_HINT.finditer(text):
        m = _IPV4.match(text, h.start())
        if m:
            out.append(m.span())
    end = 0
    for h in _IPV6_HINT.finditer(text) if "::" in text or text.count(":") >= 7 else ():
        a = h.start()
        while a > max(end, h.start() - 40) and text[a - 1] in _HEX_COLON:
            a -= 1
        m = _IPV6.match(text, a) if a >= end else None
        if m:
            end = m.end()
            s = m.group()
            # "::", "a::" and the like are valid addresses but mostly C++ / Rust paths.
            if sum(len(g) >= 2 for g in s.split(":")) < 2:
                continue
            try:
                ipaddress.IPv6Address(s)
            except ValueError:
                continue
            out.append(m.span())
    return out


# 12-19 digits, contiguous or grouped the way cards are printed (4-4-4-4[-3], 4-6-4/5). The
# first digit is matched before the look-behind so the scan skips non-digits fast.
_CARD = re.compile(r"[0-9](?<![\w+-][0-9])(?:[0-9]{11,18}|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}|"
                   r"[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5})(?![0-9])")
# Issuer prefixes (IIN): Visa 4, Mastercard 5 / 2221-2720, Amex 34/37, Diners 30/36/38,
# Discover/Maestro/UnionPay 6, JCB 35 / 2131 / 1800, old Maestro 0604. Rejects e.g. 17... ms timestamps.
_IIN = re.compile(r"[3-6]|2[2-7]|2131|1800|0604")
_NON_DIGIT = re.compile(r"\D")
_PLUS_CC = re.compile(r"\+\d{1,3}[ .-]?(?:\(0\)[ ]?)?$")  # "+43 2237954819": a phone's country code


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    out = []
    for m in _CARD.finditer(text):
        digits = _NON_DIGIT.sub("", m.group())
        if _IIN.match(digits) and luhn_ok(digits) and not _PLUS_CC.search(text, max(0, m.start() - 8), m.start()):
            out.append(m.span())
    return out


# SSN: AAA-GG-SSSS; area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"[0-8](?<![\w-][0-8])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![\w-])")


def _ssn(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    out = []
    for m in _SSN.finditer(text):
        s = m.group()
        if s[:3] not in ("000", "666") and s[4:6] != "00" and s[7:] != "0000":
            out.append(m.span())
    return out


# IBAN: country code, 2 check digits, then exactly the country's registered number of characters
# (SWIFT IBAN registry: total length per country), compact or printed in groups of 4 after a
# space. Knowing the length is what stops a match from running on into the next word ("... 1277
# Ms Lee"), which then failed the checksum. Case-insensitive ("my iban is gb42nawi...").
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
_IBAN_START = re.compile(r"[0-9]{2}(?<=(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2})")  # the check digits; letters before


def _iban_rest(n: int) -> re.Pattern:
    """The n characters after 'CCdd': compact, or ' xxxx' groups with a shorter last one."""
    q, r = divmod(n, 4)
    spaced = f"(?: [A-Za-z0-9]{{4}}){{{q}}}" + (f" [A-Za-z0-9]{{{r}}}" if r else "")
    return re.compile(f"(?:[A-Za-z0-9]{{{n}}}|{spaced})(?![A-Za-z0-9])")


_IBAN_REST = {n - 4: _iban_rest(n - 4) for n in set(IBAN_LENGTHS.values())}


_IBAN_DIGITS = str.maketrans({c: str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})  # A=10 ... Z=35


def iban_ok(s: str) -> bool:
    """Registered length for the country, and ISO 7064 mod-97 check digits."""
    s = s.replace(" ", "").upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not (s.isascii() and s.isalnum()):
        return False
    return int((s[4:] + s[:4]).translate(_IBAN_DIGITS)) % 97 == 1


def _iban(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    out = []
    for m in _IBAN_START.finditer(text):
        a = m.start() - 2
        n = IBAN_LENGTHS.get(text[a:a + 2].upper())
        rest = _IBAN_REST[n - 4].match(text, m.end()) if n else None
        if rest is not None and iban_ok(text[a:rest.end()]):
            out.append((a, rest.end()))
    return out


def _phone(text: str, cfg: PiiConfig, taken: list[tuple[int, int, str]] = ()) -> list[tuple[int, int]]:
    return phone_spans(text, cfg.phone_context_chars, taken)


# Priority: checksum-validated and unambiguous types first, then the fuzzy phone pattern.
_ORDER = (("email", _email), ("iban", _iban), ("ip", _ip), ("credit_card", _card),
          ("ssn", _ssn), ("phone", _phone))


def find_spans(text: str, cfg: PiiConfig | None = None) -> list[tuple[int, int, str]]:
    """Non-overlapping PII spans (start, end, type) in `text`, sorted by start."""
    cfg = cfg or PiiConfig()
    taken: list[tuple[int, int, str]] = []
    for typ, det in _ORDER:
        if typ not in cfg.types:
            continue
        for a, b in det(text, cfg, taken) if det is _phone else det(text, cfg):
            if not any(a < tb and ta < b for ta, tb, _ in taken):
                taken.append((a, b, typ))
    taken.sort()
    return taken


def redact(text: str, cfg: PiiConfig | None = None) -> tuple[str, dict[str, int]]:
    """`text` with each PII span replaced by its placeholder, and counts per type."""
    spans = find_spans(text, cfg)
    counts = dict.fromkeys(TYPES, 0)
    if not spans:
        return text, counts
    parts, pos = [], 0
    for a, b, typ in spans:
        parts.append(text[pos:a])
        parts.append(PLACEHOLDERS[typ])
        counts[typ] += 1
        pos = b
    parts.append(text[pos:])
    return "".join(parts), counts


def apply(table: pa.Table, cfg: PiiConfig | None = None) -> pa.Table:
    """Redact `text` of kept rows; add `pii_<type>` int32 count columns (0 for dropped rows)."""
    cfg = cfg or PiiConfig()
    texts = table["text"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    counts = {t: [0] * len(texts) for t in cfg.types}
    out = []
    for i, (t, k) in enumerate(zip(texts, keep)):
        if not k or not t:
            out.append(t)
            continue
        new, c = redact(t, cfg)
        out.append(new)
        for typ in cfg.types:
            counts[typ][i] = c[typ]
    idx = table.column_names.index("text")
    table = table.set_column(idx, pa.field("text", pa.string()), pa.array(out, type=pa.string()))
    if cfg.count_columns:
        for typ in cfg.types:
            col = f"pii_{typ}"
            arr = pa.array(counts[typ], type=pa.int32())
            if col in table.column_names:
                table = table.set_column(table.column_names.index(col), col, arr)
            else:
                table = table.append_column(col, arr)
    return table


def run(ds, cfg: PiiConfig, ctx=None):
    """Ray Data stage: redact every batch (stateless tasks)."""
    return ds.map_batches(apply, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)


def score_spans(texts: list[str], gold: list[list[tuple[int, int, str]]], cfg: PiiConfig | None = None,
                min_iou: float = 0.5) -> dict[str, dict[str, int]]:
    """Span-level counts per type against gold spans (start, end, type) of each text.

    A predicted span is a true positive when it overlaps a gold span of the same type with
    character IoU >= `min_iou` (1.0 = exact boundaries). Returns {type: {tp, fp, fn}}; the
    recall tp/(tp+fn) counts gold spans, the precision tp/(tp+fp) counts predicted ones.
    """
    def iou(p, g):
        inter = min(p[1], g[1]) - max(p[0], g[0])
        return inter / (max(p[1], g[1]) - min(p[0], g[0])) if inter > 0 else 0.0

    out = {t: {"tp": 0, "fp": 0, "fn": 0} for t in (cfg or PiiConfig()).types}
    for text, gs in zip(texts, gold):
        pred = find_spans(text, cfg)
        for g in gs:
            if g[2] in out and not any(p[2] == g[2] and iou(p, g) >= min_iou for p in pred):
                out[g[2]]["fn"] += 1
        for p in pred:
            hit = any(p[2] == g[2] and iou(p, g) >= min_iou for g in gs)
            out[p[2]]["tp" if hit else "fp"] += 1
    return out
