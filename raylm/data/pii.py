"""PII redaction: email, phone, IP (v4/v6), credit card, US SSN and IBAN -> typed placeholders.

Each detector is a regex that proposes candidates plus, where one exists, a checksum that
rejects look-alikes (Luhn for cards, ISO 7064 mod-97 for IBANs, `ipaddress` for IPv6, the
SSA's never-issued ranges for SSNs). Spans are found on the original text in a fixed
priority order (see `_ORDER`); a later detector never claims characters an earlier one took,
so a card number is never also counted as a phone number.

Speed: every detector first checks a cheap literal (`'@' in text`, `':' in text`, a digit run
of the minimum length) so most documents skip most regexes; see benchmarks/pii.py.

PII never leaves this module: only counts are returned or logged, never matched values.
Known limits: phone numbers without separators of 7-9 digits are only found next to a phone
word (call, tel, fax, ...) because bare digit runs of that length are mostly not phones;
names and street addresses are not detected (they need a NER model).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import pyarrow as pa

from raylm.data import schema

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
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text)]


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!\w)")
# IPv6 candidates: hex groups joined by ':' with at least two colons; validated by ipaddress.
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
                   rf"{_OCTET}(?:\.{_OCTET}){{3}})?(?![\w:])")
_IP_DIGITS = re.compile(r"\d\.\d")


def _ip(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    out = []
    if _IP_DIGITS.search(text):
        out += [m.span() for m in _IPV4.finditer(text)]
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
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


# 12-19 digits, contiguous or grouped the way cards are printed (4-4-4-4[-3], 4-6-4/5).
_CARD = re.compile(r"(?<![\w+-])(?:\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})(?![\d])")
# Issuer prefixes (IIN): Visa 4, Mastercard 5 / 2221-2720, Amex 34/37, Diners 30/36/38,
# Discover/Maestro/UnionPay 6, JCB 35 / 2131 / 1800, old Maestro 0604. Rejects e.g. 17... ms timestamps.
_IIN = re.compile(r"[3-6]|2[2-7]|2131|1800|0604")
_DIGIT_RUN12 = re.compile(r"\d{4}")


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
    if not _DIGIT_RUN12.search(text):
        return []
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if _IIN.match(digits) and luhn_ok(digits):
            out.append(m.span())
    return out


# SSN: AAA-GG-SSSS; area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")


def _ssn(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    if "-" not in text:
        return []
    return [m.span() for m in _SSN.finditer(text)]


# IBAN: country, 2 check digits, 11-30 alphanumerics, optionally in groups of 4 after a space.
_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?(?![\w])")
_IBAN_PRE = re.compile(r"[A-Za-z]{2}\d{2}")


def iban_ok(s: str) -> bool:
    s = s.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    if not _IBAN_PRE.search(text):
        return []
    return [m.span() for m in _IBAN.finditer(text) if iban_ok(m.group())]


# Phone: optional +CC or 00/001 prefix, optional (0) trunk or (area) code, digit groups joined
# by one space, dash or dot, optional extension. 7-15 digits (ITU E.164 max is 15).
_PHONE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?(?:\(0\)[ ]?)?|\(\d{1,4}\)[ ]?)?"
    r"\d{1,15}(?:[ .-]\d{1,8}){0,5}"
    r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,6})?(?![\w])(?!\.\d)(?!:\d)")
_PHONE_PRE = re.compile(r"\d\d[\d ().-]{3,}\d")
# Words that say a nearby number is a phone number (lower-cased match).
_PHONE_WORDS = re.compile(r"phone|\btel\b|tel\.|telephone|call|mobile|\bcell|\bfax|\bdesk|office|"
                          r"contact|\bsms|\btext|whatsapp|\bdial|\bmob\b|\bph\b|messages? to|"
                          r"answering|registered|reach", re.IGNORECASE)
# Strong shapes that are phones without context: NANP 3-3-4 and 2-digit groups (FR/NL style).
_PHONE_STRONG = re.compile(r"\d{3}([.-])\d{3}\1\d{4}|\d{2}([.-])\d{2}(?:\2\d{2}){2,3}")
# A number followed by a capitalised word ("6556 106 Rue ...") is a street address, not a phone.
_STREET_AFTER = re.compile(r"[ ](?!(?:Office|Fax|Mobile|Desk|Tel|Phone|Cell|Home|Work)\b)[A-Z][a-z]")
_ZIP4 = re.compile(r"\d{5}-\d{4}")  # US ZIP+4, next to "phone" in many address footers
_DATE = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])\b|"
                   r"(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|1[0-2])[-./](?:19|20)\d\d\b")


def _phone(text: str, cfg: PiiConfig) -> list[tuple[int, int]]:
    if not _PHONE_PRE.search(text):
        return []
    out = []
    w = cfg.phone_context_chars
    for m in _PHONE.finditer(text):
        s = m.group()
        core = re.split(r"[ ]?(?:x|ext)", s)[0]
        nd = sum(c.isdigit() for c in core)
        if not 7 <= nd <= 15 or _DATE.match(s.lstrip("+(")) or _ZIP4.fullmatch(s):
            continue
        strong = s.startswith(("+", "(")) or _PHONE_STRONG.fullmatch(core) is not None
        if not strong:
            a, b = m.span()
            if _STREET_AFTER.match(text, b) or not _PHONE_WORDS.search(
                    text, max(0, a - w), min(len(text), b + w)):
                continue
        out.append(m.span())
    return out


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
        for a, b in det(text, cfg):
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
