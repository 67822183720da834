"""Bytes -> text for fetched pages and WARC records: charset detection, decoding, binary sniffing.

Shared by the crawler and the WARC reader. The order follows what browsers do (WHATWG
"encoding sniffing"), simplified: a byte-order mark wins, then the charset the server
declared, then a `<meta charset>` in the first KiB of HTML, then strict UTF-8, then a
statistical guess (charset-normalizer) on the first 16 KiB. The last resort is cp1252 with
replacement characters, so decoding never raises; `replaced=True` says that happened.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_META = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
# Labels that browsers treat as a superset: latin-1 pages are in practice cp1252.
_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
            "ascii": "cp1252", "x-user-defined": "cp1252"}

_NOT_CONTROL = bytes(b for b in range(256) if b >= 32 or b in (9, 10, 12, 13, 27))


@dataclass
class Decoded:
    text: str            # decoded text (never None)
    charset: str         # Python codec name actually used
    replaced: bool       # True when undecodable bytes were replaced with U+FFFD


def parse_content_type(header: str | None) -> tuple[str | None, str | None]:
    """'Text/HTML; charset="UTF-8"' -> ('text/html', 'UTF-8'); missing parts are None."""
    if not header:
        return None, None
    parts = header.split(";")
    mime = parts[0].strip().lower() or None
    charset = None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset" and v.strip():
            charset = v.strip().strip("\"'")
    return mime, charset


def _codec(label: str | None) -> str | None:
    """A charset label -> a Python codec name, or None when Python does not know it."""
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def looks_binary(body: bytes) -> bool:
    """True for bodies that are not text whatever the server says (images, archives, PDFs).

    Text in UTF-16/32 carries a BOM; otherwise NUL bytes in the first KiB mean binary, as do
    more than 10% ASCII control characters other than tab/newline/CR/FF/ESC.
    """
    head = body[:1024]
    if not head or any(head.startswith(bom) for bom, _ in _BOMS):
        return False
    if b"\x00" in head:
        return True
    ctrl = len(head.translate(None, _NOT_CONTROL))  # deletes everything but control bytes (C speed)
    return ctrl > len(head) // 10


def decode(body: bytes, declared: str | None = None, html: bool = False) -> Decoded:
    """Decode `body` using the BOM, the declared charset, an HTML meta tag, UTF-8, then a guess."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            # utf-16/utf-32 read the byte order from the BOM; utf-8-sig drops it.
            name = "utf-8-sig" if name == "utf-8" else name
            try:
                return Decoded(body.decode(name), name, False)
            except UnicodeDecodeError:
                return Decoded(body.decode(name, errors="replace"), name, True)
    candidates = [_codec(declared)]
    if html:
        m = _META.search(body[:1024])
        candidates.append(_codec(m.group(1).decode("ascii", "replace")) if m else None)
    candidates.append("utf-8")
    for name in candidates:
        if name is None:
            continue
        try:
            return Decoded(body.decode(name), name, False)
        except (UnicodeDecodeError, LookupError):
            continue
    guess = _guess(body)
    # The guess saw a 16 KiB sample; if the whole body disagrees, cp1252 is the usual answer.
    for name in (guess, "cp1252"):
        if name is not None:
            try:
                return Decoded(body.decode(name), name, False)
            except (UnicodeDecodeError, LookupError):
                pass
    # Nothing decodes strictly: prefer the declared charset (the author's intent), else the guess.
    name = next((c for c in candidates[:-1] if c), guess or "cp1252")
    return Decoded(body.decode(name, errors="replace"), name, True)


def _guess(body: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - charset-normalizer ships with requests/aiohttp
        return None
    matches = list(from_bytes(body[:16384]))  # cost grows with the sample; 16 KiB decides well
    if not matches:
        return None
    # Short Western text scores about the same in every Latin code page; among near-ties
    # prefer cp1252, the web's most common legacy encoding (and the WHATWG default).
    best = min(m.chaos for m in matches)
    near = [m.encoding for m in matches if m.chaos <= best + 0.05]
    return "cp1252" if "cp1252" in near else _codec(matches[0].encoding)
