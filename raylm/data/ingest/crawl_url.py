"""URLs for the crawler: normalisation (the dedup key), link extraction, host rules, address safety.

Normal form: scheme and host lowercased (internationalised host names in their IDNA/punycode
form, so both spellings dedup together), default port dropped, fragment and userinfo
dropped, empty path -> "/", dot segments removed; the query is kept as is (reordering it
can change what a server returns). Only http and https are crawled.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import zlib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from raylm.data.ingest.charset import decode

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(url: str, base: str | None = None) -> str | None:
    """Absolute normal form of `url` (resolved against `base`), or None if not crawlable http(s)."""
    url = url.strip()
    if not url:
        return None
    try:
        if base is not None:
            url = urljoin(base, url)
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if not host.isascii():  # internationalised domain name -> its ASCII (punycode) form
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if ":" in host:  # IPv6 literal keeps its brackets in the netloc
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    if "/." in path:
        trailing = path.endswith(("/", "/.", "/.."))
        path = posixpath.normpath(path)
        path = "/" + path.lstrip("/") + ("/" if trailing and path != "/" else "")
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def host_of(url: str) -> str:
    """Host name of a normalised URL: the politeness key (http and https of a host share it)."""
    return (urlsplit(url).hostname or "").lower()


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Exact match, or a suffix match for entries that start with '.' ('.python.org')."""
    host = host.lower()
    return any(host == a or (a.startswith(".") and (host.endswith(a) or host == a[1:])) for a in allowed)


def address_refused(ip: str) -> bool:
    """True for loopback, private, link-local, multicast, reserved and unspecified addresses."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_multicast
            or addr.is_reserved or addr.is_unspecified)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class _LinkParser(HTMLParser):
    """Collects href/src of a, area, frame, iframe; honours <base href> and meta robots nofollow."""

    _ATTRS = {"a": "href", "area": "href", "frame": "src", "iframe": "src"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.base: str | None = None
        self.nofollow = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "meta" and (a.get("name") or "").lower() == "robots":
            if "nofollow" in (a.get("content") or "").lower():
                self.nofollow = True
        elif tag in self._ATTRS:
            if tag == "a" and "nofollow" in (a.get("rel") or "").lower():
                return
            v = a.get(self._ATTRS[tag])
            if v:
                self.links.append(v)


def extract_links(html: str, page_url: str) -> list[str]:
    """Normalised, deduplicated http(s) links of an HTML page, in document order."""
    p = _LinkParser()
    try:
        p.feed(html)
        p.close()
    except (AssertionError, ValueError):  # html.parser gives up on some broken markup
        pass
    if p.nofollow:
        return []
    base = urljoin(page_url, p.base) if p.base else page_url
    out = [normalize(h, base) for h in p.links]
    return list(dict.fromkeys(u for u in out if u is not None))


def sitemap_text(body: bytes, max_bytes: int) -> str:
    """A sitemap body as text: sitemap.xml.gz unpacked, its output bounded by max_bytes."""
    if body[:2] == b"\x1f\x8b":
        body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, max_bytes)
    return decode(body).text


def parse_sitemap(xml: str) -> tuple[list[str], bool]:
    """<loc> URLs of a sitemap, and whether it is a sitemap index (its URLs are sitemaps)."""
    locs = [normalize(m) for m in re.findall(r"<loc>\s*([^<\s]+)\s*</loc>", xml)]
    return [u for u in locs if u], "<sitemapindex" in xml[:2000]
