"""Text normalisation: decode, repair mojibake (ftfy), Unicode-normalise, strip control
characters and excess whitespace.

Rows that cannot be decoded, are mostly U+FFFD replacement characters, or are empty after
cleaning get `drop = "normalise:<reason>"`; an exception on one row drops that row
("normalise:error") instead of failing the batch. The `text` column may arrive as
binary (raw bytes from ingest): it is decoded as UTF-8, then with each fallback encoding,
and always leaves this stage as a UTF-8 string column.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from raylm.data import schema


@dataclass
class NormaliseConfig:
    ftfy: bool = True  # repair mojibake, HTML entities, curly-quote damage with ftfy.fix_text
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"  # Unicode normal form (NFKC also folds compatibility chars)
    fallback_encodings: list[str] = field(default_factory=lambda: ["cp1252"])  # tried in order when bytes are not UTF-8
    max_replacement_ratio: float = 0.05  # drop when U+FFFD chars / chars exceeds this (lossy decode upstream)
    max_blank_lines: int = 1  # runs of blank lines collapsed to at most this many
    min_chars: int = 1  # drop when fewer characters remain after cleaning

    def __post_init__(self):
        if not 0.0 <= self.max_replacement_ratio <= 1.0:
            raise ValueError("normalise.max_replacement_ratio must be in [0, 1]")
        if self.max_blank_lines < 0 or self.min_chars < 0:
            raise ValueError("normalise.max_blank_lines and min_chars must be >= 0")
        for enc in self.fallback_encodings:
            try:
                "".encode(enc)
            except LookupError:
                raise ValueError(f"normalise.fallback_encodings: unknown encoding {enc!r}") from None


# C0/C1 control characters except \t and \n, plus zero-width/bidi format chars that only
# hide text (BOM, ZWSP, LRM/RLM, bidi embeddings). \r is handled first as a line break.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_HSPACE = re.compile(r"[^\S\n]+")  # any whitespace except newline (tabs, NBSP, ideographic space)
_TRAIL = re.compile(r" *\n *")


def decode(raw: bytes, cfg: NormaliseConfig) -> str | None:
    """UTF-8 (BOM allowed), then each fallback encoding; None when nothing decodes."""
    for enc in ("utf-8-sig", *cfg.fallback_encodings):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return None


def clean_text(text: str, cfg: NormaliseConfig) -> str:
    """The normalised text (may be empty)."""
    if cfg.ftfy and not (text.isascii() and "&" not in text):  # ASCII without entities: nothing to repair
        import ftfy

        text = ftfy.fix_text(text, normalization=None)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.unicode_form != "none":
        text = unicodedata.normalize(cfg.unicode_form, text)
    text = _CONTROL.sub("", text)
    text = _HSPACE.sub(" ", text)
    text = _TRAIL.sub("\n", text)
    text = re.sub(f"\n{{{cfg.max_blank_lines + 2},}}", "\n" * (cfg.max_blank_lines + 1), text)
    return text.strip()


def normalise_one(value: str | bytes | None, cfg: NormaliseConfig) -> tuple[str | None, str | None]:
    """(clean text, None) or (original-or-None, drop reason) for one row; never raises."""
    try:
        if value is None:
            return None, "empty"
        if isinstance(value, bytes):
            text = decode(value, cfg)
            if text is None:
                return None, "undecodable"
        else:
            text = value
        if text and text.count("\ufffd") / len(text) > cfg.max_replacement_ratio:
            return text, "undecodable"
        out = clean_text(text, cfg)
        if len(out) < max(1, cfg.min_chars):
            return out, "empty"
        return out, None
    except Exception as e:  # noqa: BLE001  one bad row must not fail the batch (e.g. ftfy on odd input)
        return value if isinstance(value, str) else None, f"error:{type(e).__name__}"


def apply(table: pa.Table, cfg: NormaliseConfig | None = None) -> pa.Table:
    """Normalise `text` of kept rows; drop undecodable / empty rows with a reason."""
    cfg = cfg or NormaliseConfig()
    col = table["text"]
    values = col.to_pylist()
    keep = schema.kept_mask(table).to_pylist() if "drop" in table.column_names else [True] * len(values)
    texts, reasons = [], []
    for v, k in zip(values, keep):
        if not k:
            # Dropped rows pass through; bytes are decoded leniently only so the column stays a string.
            texts.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
            reasons.append(None)
            continue
        t, r = normalise_one(v, cfg)
        texts.append(t)
        reasons.append(None if r is None else f"normalise:{r}")
    idx = table.column_names.index("text")
    table = table.set_column(idx, pa.field("text", pa.string()), pa.array(texts, type=pa.string()))
    return schema.set_drop(schema.conform(table), reasons)


def run(ds, cfg: NormaliseConfig, ctx=None):
    """Ray Data stage: normalise every batch (stateless tasks)."""
    return ds.map_batches(apply, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)
