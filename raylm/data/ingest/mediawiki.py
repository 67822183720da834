"""MediaWiki XML exports (Wikipedia `pages-articles` dumps, Special:Export files) -> one record
per page: plain text from the page's last revision, by mwparserfromhell.

The dump is read as text pieces (ingest.streams) and cut at the `<page>` / `</page>` tags; each
page is parsed on its own (xml.etree), so memory is one page, and a malformed page is one dropped
record (`ingest:malformed`) while the pages after it are still read. The tags are safe to cut at:
inside page text a `<` is always written `&lt;`. The whole of a history dump page is held, so read
`pages-articles` or `pages-meta-current` dumps, not `pages-meta-history`.

Records carry a drop reason instead of being left out, so stats.json counts them:
`ingest:namespace` (a page outside `namespaces`: talk, user, template, file, category, ...),
`ingest:redirect`, `ingest:not_wikitext` (Lua, CSS, JSON pages), `ingest:empty` (no text left),
`ingest:malformed` (a page that is not well-formed XML or lacks its title), `ingest:truncated`
(the file ends inside a page or before `</mediawiki>`).

Conversion (`plain_text`): templates, references, tables, galleries, math and other extension
tags, file and category links, HTML comments and the sections that only list links or sources
(See also, References, External links, ... by their English names) are removed; links keep their shown text,
headings their title (a line of their own), lists their items. A few templates that carry the
sentence's own words are kept as text: {{lang}}, {{lang-xx}}, {{nowrap}}, {{convert}}.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import quote

import mwparserfromhell as mw

log = logging.getLogger(__name__)

LICENSE = "CC-BY-SA-4.0"  # Wikimedia projects' text licence since June 2023 (CC-BY-SA-3.0 before);
                          # other wikis differ: set data.ingest.files.license
_OPEN, _CLOSE = "<page>", "</page>"
_DROP_TAGS = {"ref", "references", "table", "gallery", "math", "chem", "ce", "timeline", "imagemap", "score",
              "graph", "syntaxhighlight", "source", "pre", "templatedata", "categorytree", "mapframe", "maplink",
              "inputbox", "hiero", "poem"}
_MEDIA = {"file", "image", "media", "category"}  # link prefixes (English, canonical) that are not text
# Sections of link lists and citations, not prose (English Wikipedia's names: other wikis keep theirs)
_LIST_SECTIONS = {"see also", "references", "notes", "footnotes", "citations", "sources", "bibliography",
                  "further reading", "external links", "notes and references"}
_MAGIC = re.compile(r"__[A-Z]+__")  # __NOTOC__, __TOC__, ...
_REDIRECT = re.compile(r"\s*#redirect\b", re.I)  # exports older than 0.5 have no <redirect/> element
# References are cut before parsing too: an unbalanced '' inside one stops mwparserfromhell from
# seeing the tag (the Anarchism page of the test sample), and its text would stay.
_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", re.S | re.I)


def read(texts: Iterator[str], namespaces: list[int], license: str | None = None) -> Iterator[dict]:
    """Text pieces of one MediaWiki export -> records: {key, text, url, fetched_at, license, drop}
    (key: the page id). Raises ValueError when the text is not a MediaWiki export."""
    site, n = None, 0
    for kind, chunk in split_pages(texts):
        if kind == "head":
            site = siteinfo(chunk)
        elif kind == "page":
            n += 1
            yield page_record(chunk, site, namespaces, license or LICENSE, n)
        else:  # "cut": the file ends inside a page or before </mediawiki>
            log.warning("MediaWiki export ends early (%s)", chunk)
            yield {"key": "truncated", "text": None, "drop": "ingest:truncated"}


def split_pages(texts: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Text pieces -> ("head", text before the first page), then ("page", "<page>...</page>") for
    each page; a page without its `</page>` (the next `<page>` comes first) is yielded as it is
    and fails to parse. Ends with ("cut", what) when the text stops inside a page or without
    `</mediawiki>`."""
    buf, head, in_page, seen, closed = "", [], False, 0, False  # seen: chars of buf already searched
    keep = len("</mediawiki>") - 1  # a tag may be cut between two pieces
    for t in texts:
        buf += t
        while True:
            if not in_page:
                i = buf.find(_OPEN)
                if i < 0:
                    closed = closed or "</mediawiki>" in buf
                    if head is not None:
                        head.append(buf[:-keep])
                        _check_head("".join(head))
                    buf = buf[-keep:]
                    break
                if head is not None:
                    head.append(buf[:i])
                    yield "head", _check_head("".join(head), final=True)
                    head = None
                buf, in_page, seen, closed = buf[i:], True, 0, False
            else:
                j = buf.find(_CLOSE, max(0, seen - len(_CLOSE)))
                k = buf.find(_OPEN, max(len(_OPEN), seen - len(_OPEN)))
                if 0 <= k and (j < 0 or k < j):  # a page without its end tag
                    yield "page", buf[:k]
                    buf, seen = buf[k:], 0
                    continue
                if j < 0:
                    seen = len(buf)
                    break
                yield "page", buf[:j + len(_CLOSE)]
                buf, in_page = buf[j + len(_CLOSE):], False
    if head is not None:  # no page at all
        yield "head", _check_head("".join(head) + buf, final=True)
    if in_page:
        yield "cut", "inside a page"
    elif not (closed or "</mediawiki>" in buf):
        yield "cut", "no </mediawiki> at the end"


def _check_head(head: str, final: bool = False) -> str:
    if ("<mediawiki" not in head[:65536]) and (final or len(head) > 65536):
        raise ValueError("not a MediaWiki XML export (no <mediawiki> root element)")
    if len(head) > 4 << 20:
        raise ValueError("not a MediaWiki XML export (no <page> in the first 4 MB)")
    return head


def siteinfo(head: str) -> dict:
    """The export's <siteinfo>: {"base": article URL prefix or None, "prefixes": {lower-case
    namespace name: key}}; an export without one (Special:Export of single pages) gives neither."""
    i, j = head.find("<siteinfo>"), head.find("</siteinfo>")
    site: dict = {"base": None, "prefixes": {}}
    if i < 0 or j < 0:
        return site
    try:
        el = ET.fromstring(head[i:j + len("</siteinfo>")])
    except ET.ParseError as e:
        log.warning("unreadable <siteinfo> (%s): no page URLs", e)
        return site
    base = (el.findtext("base") or "").strip()
    if base:  # the main page's URL: https://en.wikipedia.org/wiki/Main_Page -> .../wiki/
        site["base"] = base[:base.index("title=") + 6] if "title=" in base else base[:base.rfind("/") + 1]
    for ns in el.iter("namespace"):
        if ns.text and ns.get("key", "").lstrip("-").isdigit():
            site["prefixes"][ns.text.strip().lower()] = int(ns.get("key"))
    return site


def page_record(xml: str, site: dict | None, namespaces: list[int], license: str, n: int = 0) -> dict:
    """Page `n` of the file, "<page>...</page>" -> a record (a dropped one for a page that is not
    an article)."""
    site = site or {"base": None, "prefixes": {}}
    try:
        page = ET.fromstring(xml)
        title = page.findtext("title")
        if not title:
            raise ValueError("no <title>")
    except (ET.ParseError, ValueError) as e:
        m = re.search(r"<title>([^<]*)", xml)
        log.warning("malformed page %r in a MediaWiki export: %s", m.group(1) if m else xml[:60], e)
        return {"key": f"malformed@{n}", "text": None, "drop": "ingest:malformed"}
    key = page.findtext("id") or title
    revs = page.findall("revision")
    rev = revs[-1] if revs else None  # a history dump lists every revision, oldest first
    wikitext = (rev.findtext("text") if rev is not None else None) or ""
    ts = rev.findtext("timestamp") if rev is not None else None
    url = site["base"] + quote(title.replace(" ", "_"), safe=";:@$!*(),/~'") if site["base"] else None
    rec = {"key": key, "text": None, "url": url, "fetched_at": _iso(ts), "license": license}
    ns = page.findtext("ns")
    ns = int(ns) if ns and ns.lstrip("-").isdigit() else _ns_of(title, site["prefixes"])
    model = rev.findtext("model") if rev is not None else None
    if ns not in namespaces:
        return rec | {"drop": "ingest:namespace"}
    if page.find("redirect") is not None or _REDIRECT.match(wikitext):
        return rec | {"drop": "ingest:redirect"}
    if model and model != "wikitext":
        return rec | {"drop": "ingest:not_wikitext"}
    text = plain_text(wikitext, _media_prefixes(site["prefixes"]))
    return rec | ({"text": text} if text.strip() else {"drop": "ingest:empty"})


def _ns_of(title: str, prefixes: dict[str, int]) -> int:
    head, sep, _ = title.partition(":")
    return prefixes.get(head.strip().lower(), 0) if sep else 0


def _media_prefixes(prefixes: dict[str, int]) -> set[str]:
    # the wiki's own names for the File (6), Media (-2) and Category (14) namespaces, and English
    return _MEDIA | {name for name, key in prefixes.items() if key in (6, -2, 14)}


def _iso(ts: str | None) -> str | None:
    try:
        return dt.datetime.fromisoformat(ts.strip().replace("Z", "+00:00")).isoformat(timespec="seconds")
    except (AttributeError, ValueError):
        return None


def plain_text(wikitext: str, media: set[str] = _MEDIA) -> str:
    """Wikitext -> plain text (see the module docstring for what is kept)."""
    code = mw.parse(_REF.sub("", wikitext))
    _drop_list_sections(code)
    _prune(code, media)
    text = code.strip_code(normalize=True, collapse=True)
    text = _MAGIC.sub("", text)
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)      # "()" left by a removed pronunciation template
    text = re.sub(r"[ \t]+([,.;:])", r"\1", text)     # "word ," after a removed reference
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _drop_list_sections(code) -> None:
    """Remove the _LIST_SECTIONS (heading and body, up to the next heading of the same or a higher level)."""
    out, skip = [], None  # skip: level of the section being removed
    for node in code.nodes:
        if isinstance(node, mw.nodes.Heading):
            if skip is not None and node.level <= skip:
                skip = None
            if skip is None and node.title.strip_code().strip().lower() in _LIST_SECTIONS:
                skip = node.level
        if skip is None:
            out.append(node)
    code.nodes = out


def _prune(code, media: set[str]) -> None:
    """Remove from parsed wikitext (in place) what is not prose; turn the kept templates into text.
    Builds a new node list: Wikicode.remove searches the list, quadratic on long pages."""
    out = []
    for node in code.nodes:
        if isinstance(node, mw.nodes.Template):
            kept = _template_text(node)
            if kept is not None:
                kept = mw.parse(kept)
                _prune(kept, media)
                out.extend(kept.nodes)
            continue
        if isinstance(node, mw.nodes.Tag):
            if str(node.tag).strip().lower() in _DROP_TAGS:
                continue
            if node.contents is not None:
                _prune(node.contents, media)
        elif isinstance(node, mw.nodes.Wikilink):
            prefix, sep, _ = str(node.title).strip().lstrip(":").partition(":")
            if sep and prefix.strip().lower() in media:
                continue
            if node.text is not None:
                _prune(node.text, media)
        elif isinstance(node, mw.nodes.Heading):
            _prune(node.title, media)
        elif isinstance(node, mw.nodes.ExternalLink) and node.title is not None:
            _prune(node.title, media)
        out.append(node)
    code.nodes = out


def _template_text(t) -> str | None:
    """The wikitext of the words of a template that stands for words in the sentence, else None."""
    name = str(t.name).strip().lower()
    pos = [str(p.value).strip() for p in t.params if not p.showkey]
    if name == "lang" and len(pos) >= 2:
        return pos[1]
    if (name.startswith("lang-") or name in ("nowrap", "nobr")) and pos:
        return pos[0]
    if name in ("convert", "cvt") and len(pos) >= 2:
        return f"{pos[0]} {pos[1]}"
    return None
