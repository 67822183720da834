"""Content filter: URL domain blocklist and a bad-word list.

Defaults ship as package data (raylm/data/lists/*.txt, see their headers for sources); a
config path replaces either list. Rows are tagged "content:domain" when the `url` host or
any parent domain is listed, and "content:words" when the text has more than
`max_word_hits` listed words or phrases (C4 drops a page on the first hit: 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from raylm.data import schema


@dataclass
class ContentConfig:
    check_domains: bool = True  # drop rows whose url host (or a parent domain) is in the blocklist
    check_words: bool = True  # drop rows with too many listed words
    domain_blocklist_path: str | None = None  # text file, one domain a line, '#' comments; None = shipped default
    word_list_path: str | None = None  # text file, one word/phrase a line; None = shipped default
    max_word_hits: int = 0  # listed-word occurrences allowed per document (C4: 0)

    def __post_init__(self):
        if self.max_word_hits < 0:
            raise ValueError("content.max_word_hits must be >= 0")
        for p in (self.domain_blocklist_path, self.word_list_path):
            if p is not None and not Path(p).is_file():
                raise ValueError(f"content: list file not found: {p}")


def _read_list(path: str | None, default: str) -> list[str]:
    text = Path(path).read_text("utf-8") if path else resources.files("raylm.data").joinpath(
        "lists", default).read_text("utf-8")
    return [ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@lru_cache(maxsize=8)
def load_domains(path: str | None) -> frozenset[str]:
    return frozenset(d.removeprefix("www.") for d in _read_list(path, "blocked_domains.txt"))


@lru_cache(maxsize=8)
def load_words(path: str | None) -> re.Pattern:
    """One regex over all words and phrases, on word boundaries, case-insensitive."""
    words = sorted(_read_list(path, "badwords_en.txt"), key=len, reverse=True)
    alt = "|".join(r"\s+".join(map(re.escape, w.split())) for w in words) or r"(?!x)x"
    return re.compile(rf"(?<!\w)(?:{alt})(?!\w)", re.IGNORECASE)


def domain_blocked(url: str | None, domains: frozenset[str]) -> bool:
    if not url or not domains:
        return False
    try:
        host = (urlsplit(url if "//" in url else "//" + url).hostname or "").rstrip(".")
    except ValueError:  # malformed URL (bad port, brackets): nothing to match
        return False
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts) - 1))


def word_hits(text: str, pattern: re.Pattern, limit: int) -> int:
    """Listed-word occurrences in `text`, counting stops once `limit` + 1 is reached."""
    n = 0
    for _ in pattern.finditer(text):
        n += 1
        if n > limit:
            break
    return n


def apply(table: pa.Table, cfg: ContentConfig | None = None) -> pa.Table:
    """Tag rows "content:domain" / "content:words"; rows already dropped are left alone."""
    cfg = cfg or ContentConfig()
    domains = load_domains(cfg.domain_blocklist_path) if cfg.check_domains else frozenset()
    words = load_words(cfg.word_list_path) if cfg.check_words else None
    urls = table["url"].to_pylist()
    texts = table["text"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    reasons: list[str | None] = []
    for u, t, k in zip(urls, texts, keep):
        if not k:
            reasons.append(None)
        elif domain_blocked(u, domains):
            reasons.append("content:domain")
        elif words is not None and t and word_hits(t, words, cfg.max_word_hits) > cfg.max_word_hits:
            reasons.append("content:words")
        else:
            reasons.append(None)
    return schema.set_drop(table, reasons)


def run(ds, cfg: ContentConfig, ctx=None):
    """Ray Data stage: content rules on every batch (stateless tasks)."""
    return ds.map_batches(apply, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)
