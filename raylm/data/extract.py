"""HTML -> title + main text.

Extractor chosen by measurement (benchmarks/extract.py, Python 3.11 docs against their
_sources/*.rst.txt, token F1): Resiliparse's main-content extractor scores about as well as
trafilatura at ~15x its speed; a plain tag strip keeps navigation and scores lowest. Both
alternatives remain selectable for comparison. When Resiliparse's heuristics keep almost nothing
(fewer than `min_main_words` words) and the page declares a main region (<main>, role="main"),
that region's whole text is taken instead: the heuristics drop a page whose content looks like a
footer (the docs' copyright page) entirely.

Rows whose `content_type` is HTML (or, when it is null, whose text starts like HTML) are
extracted; other rows pass through. Nothing extracted -> "extract:empty"; a page over
`max_chars` -> "extract:too_large"; an extractor exception -> "extract:error" for that row only.
"""

from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass
from itertools import islice
from typing import Literal

import pyarrow as pa

from raylm.data import schema

HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class ExtractConfig:
    extractor: Literal["resiliparse", "trafilatura", "strip"] = "resiliparse"  # see module docstring
    main_content: bool = True  # drop navigation / boilerplate (resiliparse heuristics; trafilatura always does)
    include_title: bool = True  # put the <title> first unless the text's first line is already part of it
    max_chars: int = 5_000_000  # larger pages are dropped unparsed (chars of HTML)
    min_chars: int = 1  # fewer extracted chars -> drop "extract:empty"
    # resiliparse main content keeping fewer words than this falls back to all the text of the page's
    # declared main region (<main>, role="main"), if it has more: its heuristics drop a whole page
    # whose content looks like a footer (e.g. a <section id="copyright">). 0 = never.
    min_main_words: int = 10

    def __post_init__(self):
        if self.max_chars < 1 or self.min_chars < 0 or self.min_main_words < 0:
            raise ValueError("extract.max_chars must be >= 1, min_chars and min_main_words >= 0")


_SCRIPT = re.compile(r"(?is)<(script|style|noscript|template)\b.*?</\1\s*>")
_TAG = re.compile(r"(?s)<[^>]*>")
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_WORD = re.compile(r"\w+")
_BLOCK = re.compile(r"(?i)</?(?:p|div|br|li|h[1-6]|tr|pre|section|article|table|ul|ol|dd|dt)\b[^>]*>")


def _strip(page: str) -> tuple[str, str | None]:
    """Baseline: drop script/style, turn block tags into newlines, remove all other tags."""
    m = _TITLE.search(page)
    title = _html.unescape(_TAG.sub("", m.group(1))).strip() if m else None
    body = _SCRIPT.sub(" ", page)
    body = _BLOCK.sub("\n", body)
    text = _html.unescape(_TAG.sub(" ", body))
    text = "\n".join(" ".join(ln.split()) for ln in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip(), title


def _resiliparse(page: str, main_content: bool, min_main_words: int = 0) -> tuple[str, str | None]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(page)
    text = extract_plain_text(tree, main_content=main_content, preserve_formatting=True).strip()
    if main_content and min_main_words and tree.body is not None:
        n = sum(1 for _ in islice(_WORD.finditer(text), min_main_words))  # stops at the threshold
        if n < min_main_words and (region := tree.body.query_selector('main, [role="main"]')) is not None:
            whole = extract_plain_text(HTMLTree.parse(region.html), preserve_formatting=True).strip()
            if len(_WORD.findall(whole)) > n:
                text = whole
    return text, (tree.title or "").strip() or None


def _trafilatura(page: str) -> tuple[str, str | None]:
    import trafilatura

    doc = trafilatura.bare_extraction(page, with_metadata=True)
    if doc is None:
        return "", None
    return (doc.text or "").strip(), (doc.title or "").strip() or None


def extract_html(page: str, cfg: ExtractConfig) -> str:
    """Title + main text of one HTML page ('' when nothing is found)."""
    if cfg.extractor == "resiliparse":
        text, title = _resiliparse(page, cfg.main_content, cfg.min_main_words)
    elif cfg.extractor == "trafilatura":
        text, title = _trafilatura(page)
    else:
        text, title = _strip(page)
    first = text.split("\n", 1)[0].strip()
    # Skip the title when the text already opens with it or with its main part: most sites
    # title pages "<h1> - Site name" and repeat the <h1> at the top of the content.
    if cfg.include_title and title and not (first and (first in title or title in first)):
        text = f"{title}\n\n{text}" if text else title
    return text


def is_html(text: str | None, content_type: str | None) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower() in HTML_TYPES
    head = (text or "")[:1024].lstrip().lower()
    return head.startswith(("<!doctype html", "<html", "<?xml")) or "<body" in head


def apply(table: pa.Table, cfg: ExtractConfig | None = None) -> pa.Table:
    """Replace `text` of kept HTML rows by title + main text; other rows pass through."""
    cfg = cfg or ExtractConfig()
    texts = table["text"].to_pylist()
    ctypes = table["content_type"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    out, reasons = [], []
    for t, ct, k in zip(texts, ctypes, keep):
        reason = None
        if k and is_html(t, ct):
            if len(t) > cfg.max_chars:
                reason = "too_large"
            else:
                try:
                    new = extract_html(t, cfg)
                except Exception:  # noqa: BLE001  a malformed page must not fail the batch
                    new, reason = t, "error"
                else:
                    if len(new) < max(1, cfg.min_chars):
                        reason = "empty"
                    t = new
        out.append(t)
        reasons.append(None if reason is None else f"extract:{reason}")
    idx = table.column_names.index("text")
    table = table.set_column(idx, pa.field("text", pa.string()), pa.array(out, type=pa.string()))
    return schema.set_drop(table, reasons)


def run(ds, cfg: ExtractConfig, ctx=None):
    """Ray Data stage: extract every batch (stateless tasks)."""
    return ds.map_batches(apply, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)


def token_f1(pred: str, gold: str, distinct: bool = False) -> float:
    """F1 of the lower-cased \\w+ token multisets of `pred` and `gold` (extraction quality);
    distinct=True: of their sets, each distinct token counted once."""
    from collections import Counter

    p, g = Counter(_WORD.findall(pred.lower())), Counter(_WORD.findall(gold.lower()))
    if distinct:
        p, g = Counter(p.keys()), Counter(g.keys())
    inter = sum((p & g).values())
    if not inter:
        return 0.0
    prec, rec = inter / sum(p.values()), inter / sum(g.values())
    return 2 * prec * rec / (prec + rec)


# reST that a rendered page never shows: these directives' whole blocks, comments, link targets,
# option lines, role names and the targets of `text <target>` links.
_RST_HIDDEN_BLOCKS = frozenset((
    "toctree", "index", "highlight", "literalinclude", "sectionauthor", "moduleauthor", "testsetup",
    "testcleanup", "include", "only", "raw", "image", "figure", "contents", "tabularcolumns"))
_RST_DIRECTIVE = re.compile(r"\s*\.\.\s+([\w:-]+)::(.*)$")
_RST_EXPLICIT = re.compile(r"\s*\.\.(\s|$)")
_RST_SHOWN = re.compile(r"\s*\.\.\s+\[[^\]]+\]\s*(.*)$")  # footnote / citation: its text is shown
_RST_OPTION = re.compile(r"\s+:[\w -]+:(?=\s|$)")  # ":maxdepth: 2"; not a line opening with a :role:`x`
_RST_ROLE = re.compile(r":[\w:-]+:(?=`)")
_RST_LINK_TARGET = re.compile(r"\s*<[^<>\s]+>(?=`)")


def rst_text(src: str) -> str:
    """reStructuredText source -> roughly the text a reader of the rendered page sees.

    For evaluating extraction against Sphinx sources (benchmarks/extract.py): a role name such as
    ``:func:`` or a toctree's file names is markup, not text, and no extractor can or should
    produce it. Drops: the blocks of the directives in _RST_HIDDEN_BLOCKS, comments (``..`` lines
    that are not directives, footnotes or citations) with their indented bodies, link targets
    (``.. _name:``), substitution definitions, indented option lines (``:maxdepth: 2``), role names
    and link targets inside backquotes. Keeps: other directives' arguments and bodies (a
    ``.. function:: f(x)`` line becomes ``f(x)``) and all prose. Text Sphinx generates (``New in
    version``) is not added."""
    out, skip_indent = [], None
    for line in src.splitlines():
        ind = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip() or ind > skip_indent:
                continue
            skip_indent = None
        if m := _RST_DIRECTIVE.match(line):
            if m.group(1) in _RST_HIDDEN_BLOCKS:
                skip_indent = ind
                continue
            line = m.group(2)
        elif m := _RST_SHOWN.match(line):
            line = m.group(1)
        elif _RST_EXPLICIT.match(line):  # comment, link target or substitution definition
            skip_indent = ind
            continue
        elif _RST_OPTION.match(line):
            continue
        line = _RST_LINK_TARGET.sub("", _RST_ROLE.sub("", line))
        out.append(line)
    return "\n".join(out)
