"""Phone numbers for raylm.data.pii: international and national formats, without a phone library.

A candidate is an optional prefix (+CC, +CC (0), (area) of 1-5 digits, (+CC)), digit groups joined
by one space, dot, dash, slash or "/ ", and an optional extension (x123, ext. 123): the formats
Faker writes for 14 locales and pages use (`(01623) 099386`, `(061)-3900301`, `+44(0)115 4960914`,
`02124/15868344`, `206.269.0743x9150`). A candidate of 7-16 digits (E.164 allows 15; a written
trunk "(0)" adds one) is then judged, on its own characters and a few around it:
  1. look-alikes are dropped: dates, year ranges, ZIP+4, SSN shapes, versions, ISBNs, decimals and
     coordinates, sums next to a currency, counts next to a unit, lists whose separators change
     twice, house and street numbers or a postcode followed by a capitalised word;
  2. a prefix, an extension, a trunk 0 before an area code (9+ digits) or a national shape (NANP
     3-3-4, 2-digit groups, Brazil's DD NNNN-NNNN) makes a phone on its own;
  3. anything else needs a phone word (tel, call, Telefon, appelez, ...) within `context_chars`;
     a thousands-grouped figure (609 141 777) needs it before the number in the same sentence, or
     right after, and no word of counting (population, people, cost ...) before it.
A capitalised word after a number does not end or break the match ("call (01623) 099386 Monday").
Known limits: numbers of step 3 with no phone word near are missed (bare "3420837783", "2907 2719",
Polish "609 141 777" after a name); phone words are English, German, French, Spanish, Italian,
Dutch, Portuguese and Polish.
"""

from __future__ import annotations

import re


# The pattern starts with a character class, so the scan skips letters fast (a pattern that
# starts with a look-behind is tried at every position); the branch taken tells what that first
# character was, and `c` / `c2` mark where the digits start after a prefix. An area code in
# brackets is (+CC), a trunk 0 and up to 4 digits, or 2-3 digits: not "(2011)", a year.
_PHONE = re.compile(
    r"[+(0-9](?<![\w+.\-/][+(0-9])(?=[0-9 .\-/()+]{6})"
    r"(?:(?<=\+)[0-9]{1,3}(?:[ .\-]?\([0-9]{1,4}\))?[ .\-]?(?P<c>)[0-9]"
    r"|(?<=\()(?:\+[0-9]{1,3}|0[0-9]{0,4}|[1-9][0-9]{1,2})\)[ .\-]?(?P<c2>)[0-9]"
    r"|(?<=[0-9]))[0-9]{0,14}(?:(?:[ .\-]|/ ?)[0-9]{1,12}){0,6}"
    r"(?P<ext>[ ]?(?:x|ext\.?)[ ]?[0-9]{1,6})?(?!\w)(?![.,:][0-9])")
# Words that say a nearby number is a phone number (English and the languages of the dense test
# set), matched at a word start in the lower-cased text. Case-sensitive on purpose: IGNORECASE
# makes this search several times slower, and it runs for every number that needs a word.
_PHONE_WORDS = re.compile(r"\b(?:ph(?:one|\b)|t[eé]l(?:[eé]f|[eé]ph|\b|\.)|c(?:all|ell|elular|ontact)|mob(?:il|\b)|"
                          r"m[oó]vil|handy|portable|fax|whatsapp|sms|text\b|dial|ring\b|kontakt|hotline|desk|office|"
                          r"reach|messages? to|answering|registered|n[uú]m[eé]ro|nummer|numer\b|appel|llam[ae]|chiam|"
                          r"ligue|zadzwo|bel\b|rufen)")
# Shapes that are phones without a phone word: NANP 3-3-4 (optionally 1-), 2-digit groups (FR,
# CH, PL), Brazil's "DD NNNN-NNNN".
_PHONE_STRONG = re.compile(r"(?:1([ .-]))?\d{3}([ .-])\d{3}\2\d{4}|\d{2,3}([ .-])\d{2,3}(?:\3\d{2}){2,3}|"
                           r"\d{2} \d{4,5}-\d{4}")
# Cores that are something else: a date (at the start: "2021-03-04 12"), a year range, US ZIP+4,
# an SSN-shaped number (not issued, else _ssn took it), a version with a one-digit group ("2.3.14").
_DATE = (r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])\b|"
         r"(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|1[0-2])[-./](?:19|20)?\d\d\b|"
         r"(?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])[-./](?:19|20)?\d\d\b")
_LOOKALIKE = re.compile(rf"{_DATE}|(?:1[5-9]|20)\d\d ?[-/] ?(?:1[5-9]|20)?\d\d$|\d{{5}}-\d{{4}}$|"
                        r"\d{3}-\d{2}-\d{4}$|\d{1,2}(?:\.\d+)*\.\d(?:\.\d+)*$")
# Thousands-grouped figures (1 234 567, 1.234.567): a population or a sum, unless a phone word
# comes before (in the same sentence) or right after, and no word of counting does.
_FIGURE = re.compile(r"[1-9]\d{0,2}([ .'])\d{3}(?:\1\d{3})+")
_FIGURE_WORDS = re.compile(r"populat|census|inhabit|resident|people|employ|budget|sold|cost|price|total|visitor|"
                           r"vote|million|tonnes|copies")
_SENTENCE_END = re.compile(r"[.!?]\s+(?=[A-ZÀ-Ý])|\n")
_DECIMAL = re.compile(r"(?<!\d)\d{1,3}\.\d{5,}(?!\d)")  # 48.856613: coordinates, measurements
_SEP_RUNS = re.compile(r"([ .\-/])(?:\d+\1)*")  # runs of one separator kind
NON_DIGIT = re.compile(r"\D")
_BEFORE = re.compile(r"(?:isbn(?:-1[03])?|version|\bver|build|release|\brev|\bv|[$€£¥₹]|\b(?:eur|usd|gbp|chf|r\$|"
                     r"inr|pln|sek))[:.]?\s?$")
_AFTER = re.compile(r"\s?(?:[$€£¥₹%]|(?:eur|usd|gbp|chf|zł|pln|kr|sek|euros?|dollars?|people|inhabitants|"
                    r"residents|km|kg)\b)")
_STREET = re.compile(r"\d{1,5} \d{1,4}")  # "6556 106 Rue ...", "03262 2437 Main St": house, street numbers


def _isbn(digits: str, core: str) -> bool:
    """A printed ISBN: 978/979 + 10 digits in hyphenated groups, or ISBN-10 in 4 hyphenated groups."""
    if len(digits) == 13 and digits[:3] in ("978", "979") and "-" in core:
        return True
    if len(digits) == 10 and core.count("-") == 3 and core[-2] == "-":
        return sum((10 - i) * int(d) for i, d in enumerate(digits)) % 11 == 0
    return False


def phone_spans(text: str, context_chars: int = 40, taken: list[tuple] = ()) -> list[tuple[int, int]]:
    """(start, end) of each phone number in `text`.

    context_chars: how far (characters) a phone word is looked for around a number that needs one.
    taken: (start, end, ...) spans other detectors claimed, disjoint; numbers overlapping them are
    skipped without being judged (speed: IBANs and cards are digit groups too).
    """
    out: list[tuple[int, int]] = []
    low = None  # text.lower(), made when the first number needs a word
    w = context_chars
    spans, j = sorted(t[:2] for t in taken), 0  # disjoint, so their ends are sorted too
    for m in _PHONE.finditer(text):
        a, b = m.span()
        while j < len(spans) and spans[j][1] <= a:
            j += 1
        if j < len(spans) and spans[j][0] < b:  # an IBAN's, a card's ... digits
            continue
        cs = m.start("c") if m.start("c") >= 0 else m.start("c2") if m.start("c2") >= 0 else a
        ext = m.group("ext")
        core = text[cs:m.start("ext") if ext else b]
        digits = core if core.isdigit() else NON_DIGIT.sub("", core)
        nd = len(digits) + (len(NON_DIGIT.sub("", text[a:cs])) if cs > a else 0)
        if not 7 <= nd <= 16:
            continue
        if low is None:
            low = text.lower()
            if len(low) != len(text):  # a few characters lower-case to two; keep offsets right
                low = "".join(c.lower()[0] for c in text)
        if cs == a:  # no prefix: rule out the look-alikes
            if _LOOKALIKE.match(core) or _isbn(digits, core) or _BEFORE.search(low, max(0, a - 12), a) or (
                    _AFTER.match(low, b)):
                continue
            if not ext and "." in core and ((core.count(".") == 1 and core.index(".") <= 3) or _DECIMAL.search(core)):
                continue  # a decimal: 48.856613
            if not core.isdigit() and len(_SEP_RUNS.findall(core)) > 2:
                continue  # separators change twice: a list ("02 12-28-99 03"), not one number
            if (not ext and text[b:b + 2].strip()[:1].isupper() and (_STREET.fullmatch(core) or (
                    nd <= 8 and core.isdigit())) and not _PHONE_WORDS.search(low, max(0, a - 10), a)):
                continue  # "6556 106 Rue ...", "941, 20296593 Gonçalves": street numbers, postcode + town
        # A trunk 0 before an area code ("0161 496 0066", "02074960482"); not "0.0 0.0 734 576" nor a
        # zero-padded identifier ("003640330").
        trunk = digits[0] == "0" and core[1].isdigit() and nd >= (10 if core.isdigit() else 9) and (
            not digits.startswith("00") or nd >= 11)
        if not (cs > a or ext or trunk or _PHONE_STRONG.fullmatch(core)):
            if _FIGURE.fullmatch(core):  # "Tel. 609 141 777", not "Population 609 141 777"
                start = max(a - w, 0)
                for e in _SENTENCE_END.finditer(text, start, a):  # this sentence only
                    start = e.end()
                if _FIGURE_WORDS.search(low, start, a) or not (
                        _PHONE_WORDS.search(low, start, a) or _PHONE_WORDS.match(low, b + 1, b + 12)):
                    continue
            elif not _PHONE_WORDS.search(low, max(0, a - w), min(len(text), b + w)):
                continue
        out.append((a, b))
    return out
