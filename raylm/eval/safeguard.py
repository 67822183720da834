"""Generation safeguard: withhold generated samples that the content filter flags, and count them.

The rules are the data pipeline's content filter (raylm/data/content.py): the same word
list, and the same domain blocklist applied to every URL or bare domain in the generated text.
A withheld sample is never written to a report; only its index and reason are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from raylm.data.content import ContentConfig, domain_blocked, load_domains, load_words, word_hits

# URLs with a scheme, and bare host names such as "example.com/path" (a letter-led TLD of 2+).
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+|\b(?:[a-z0-9-]+\.)+[a-z]{2,}\b(?:/[^\s<>\"')\]]*)?", re.I)


@dataclass
class SafeguardConfig:
    enabled: bool = False             # withhold flagged samples; false = keep everything
    check_words: bool = True          # flag samples with more than max_word_hits listed words
    check_urls: bool = True           # flag samples naming a blocklisted domain
    word_list_path: str | None = None  # one word/phrase a line; None = the content filter's shipped list
    domain_blocklist_path: str | None = None  # one domain a line; None = the shipped blocklist
    max_word_hits: int = 0            # listed-word occurrences allowed per sample

    def __post_init__(self):
        ContentConfig(domain_blocklist_path=self.domain_blocklist_path, word_list_path=self.word_list_path,
                      max_word_hits=self.max_word_hits)  # the same checks (files exist, hits >= 0)


def flag(text: str, cfg: SafeguardConfig) -> str | None:
    """The reason `text` is withheld ("words" or "url"), or None to keep it."""
    if cfg.check_words:
        pattern = load_words(cfg.word_list_path)
        if word_hits(text, pattern, cfg.max_word_hits) > cfg.max_word_hits:
            return "words"
    if cfg.check_urls:
        domains = load_domains(cfg.domain_blocklist_path)
        if any(domain_blocked(m.group(0).rstrip(".,;:!?"), domains) for m in _URL.finditer(text)):
            return "url"
    return None


def apply(samples: list[dict], cfg: SafeguardConfig, key: str = "text") -> tuple[list[dict], dict]:
    """(kept samples, summary). Summary: {"enabled", "checked", "withheld", "reasons": {reason: n},
    "withheld_index": [positions in `samples`]}; with cfg.enabled false everything is kept."""
    summary = {"enabled": cfg.enabled, "checked": 0, "withheld": 0, "reasons": {}, "withheld_index": []}
    if not cfg.enabled:
        return list(samples), summary
    kept = []
    for i, s in enumerate(samples):
        summary["checked"] += 1
        # the prompt is the user's; only what the model wrote is judged
        reason = flag(s.get(key) or "", cfg)
        if reason is None:
            kept.append(s)
        else:
            summary["withheld"] += 1
            summary["reasons"][reason] = summary["reasons"].get(reason, 0) + 1
            summary["withheld_index"].append(i)
    return kept, summary
