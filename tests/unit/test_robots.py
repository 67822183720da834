"""robots.txt rules on RFC 9309's own examples, the fetch-status rules, bad input and the per-crawl cache.

No network: policies are built from (status, body) as the fetcher hands them over. The texts
marked "RFC 9309 x.y" are the RFC's examples (https://www.rfc-editor.org/rfc/rfc9309.html).
"""

from __future__ import annotations

import pytest

from raylm.data.ingest import robots
from raylm.data.ingest.robots import MAX_BYTES, RobotsStore, policy_from_response, product_token

H = "https://example.com"

# RFC 9309 5.1, "Simple Example".
RFC_5_1 = """\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot
"""


def allowed(text: str, agent: str, path: str) -> bool:
    return policy_from_response(200, text, agent).allowed(H + path)


@pytest.mark.parametrize("agent, path, want", [
    # foobot may fetch only the two pages its group allows.
    ("foobot", "/example/page.html", True), ("foobot", "/example/allowed.gif", True),
    ("foobot", "/", False), ("foobot", "/example/other.html", False),
    # barbot and bazbot share one group: everything but /example/page.html.
    ("barbot", "/example/page.html", False), ("bazbot", "/example/page.html", False),
    ("barbot", "/example/other.html", True), ("bazbot", "/a.gif", True),
    # quxbot's group is empty: everything allowed.
    ("quxbot", "/example/page.html", True), ("quxbot", "/a.gif", True),
    # Everyone else: the "*" group. `*.gif$` is a wildcard anchored at the end; the longer
    # Allow: /publications/ wins over it.
    ("otherbot", "/example/page.html", False), ("otherbot", "/images/a.gif", False),
    ("otherbot", "/images/a.gif?size=2", True), ("otherbot", "/images/a.gifx", True),
    ("otherbot", "/publications/a.gif", True), ("otherbot", "/publications/", True), ("otherbot", "/", True),
    # Agent names match case-insensitively, on the product token of a full User-Agent string.
    ("FooBot", "/", False), (product_token("foobot/2.1 (+https://foo.example)"), "/example/page.html", True),
])
def test_rfc_simple_example(agent, path, want):
    assert allowed(RFC_5_1, agent, path) is want


def test_rfc_longest_match():
    # RFC 9309 5.2: the most specific (longest) match wins, whatever the order of the lines.
    text = "User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n"
    assert not allowed(text, "foobot", "/example/page/disallowed.gif")
    assert allowed(text, "foobot", "/example/page/other.gif")
    reordered = "User-Agent: foobot\nDisallow: /example/page/disallowed.gif\nAllow: /example/page/\n"
    assert not allowed(reordered, "foobot", "/example/page/disallowed.gif")


def test_rfc_groups_are_combined():
    # RFC 9309 2.2.1: groups naming the same agent are merged; "*" is for agents with no group.
    text = ("user-agent: ExampleBot\ndisallow: /foo\ndisallow: /bar\n\nuser-agent: ExampleBot\ndisallow: /baz\n\n"
            "user-agent: *\ndisallow: /foo\ndisallow: /bar\n\nuser-agent: BazBot\ndisallow: /baz\n")
    assert [allowed(text, "examplebot", p) for p in ("/foo", "/bar", "/baz", "/qux")] == [False, False, False, True]
    assert [allowed(text, "otherbot", p) for p in ("/foo", "/bar", "/baz")] == [False, False, True]
    assert [allowed(text, "bazbot", p) for p in ("/foo", "/baz")] == [True, False]


def test_issue_cases_that_urllib_robotparser_got_wrong():
    # urllib.robotparser has no wildcards and takes the first matching line.
    text = "User-agent: *\nDisallow: /*.pdf$\nDisallow: /docs\nAllow: /docs/public\n"
    assert not allowed(text, "raylm-bot", "/a/b.pdf")
    assert allowed(text, "raylm-bot", "/a/b.pdf.html") and allowed(text, "raylm-bot", "/a/b.pdf?page=2")
    assert allowed(text, "raylm-bot", "/docs/public/x") and not allowed(text, "raylm-bot", "/docs/x")


def test_allow_wins_a_tie_and_special_characters():
    # RFC 9309 2.2.2: an Allow and a Disallow that match equally: allow.
    assert allowed("User-agent: *\nDisallow: /page\nAllow: /page\n", "a", "/page")
    assert allowed("User-agent: *\nAllow: /page\nDisallow: /page\n", "a", "/page/x")
    # RFC 9309 2.2.3: '#' starts a comment, '$' ends the pattern, '*' is any run of characters.
    text = ("User-agent: *  # everyone\nDisallow: /\n# a comment line\nAllow: /this/path/exactly$\n"
            "Allow: /that/*/exactly$\n")
    assert allowed(text, "a", "/this/path/exactly") and not allowed(text, "a", "/this/path/exactly/more")
    assert allowed(text, "a", "/that/a/b/exactly") and not allowed(text, "a", "/that/a/b/exactly.html")
    assert allowed(text, "a", "/robots.txt")  # RFC 9309 2.2.2: implicitly allowed
    # RFC 9309 2.2.2: octets are compared percent-decoded (unreserved characters) / UTF-8 encoded.
    enc = "User-agent: *\nDisallow: /foo/bar/%62%61%7A\nDisallow: /foo/bar/ツ\n"
    assert not allowed(enc, "a", "/foo/bar/baz") and not allowed(enc, "a", "/foo/bar/%E3%83%84")


def test_crawl_delay_and_request_rate():
    text = ("User-agent: raylm\nDisallow: /private/\nCrawl-delay: 2.5\n\n"
            "User-agent: slowbot\nRequest-rate: 1/5\n\nUser-agent: nodelay\nDisallow: /x\n\n"
            "User-agent: *\nCrawl-delay: 9\n")
    assert policy_from_response(200, text, "raylm/0.1 (+https://x)").crawl_delay() == 2.5
    assert policy_from_response(200, text, "otherbot").crawl_delay() == 9
    assert policy_from_response(200, text, "slowbot").crawl_delay() == 5.0  # 1 request per 5 s
    # A group of our own without Crawl-delay: the "*" group's delay does not apply (it is another group).
    assert policy_from_response(200, text, "nodelay").crawl_delay() is None
    assert policy_from_response(200, "User-agent: *\nCrawl-delay: soon\n", "a").crawl_delay() is None


def test_sitemaps_are_site_wide():
    text = ("Sitemap: https://example.com/sitemap.xml\nUser-agent: a\nDisallow: /\n"
            "Sitemap: https://cdn.example.org/s2.xml.gz\n\nUser-agent: *\nAllow: /\n")
    p = policy_from_response(200, text, "b")
    assert p.sitemaps == ["https://example.com/sitemap.xml", "https://cdn.example.org/s2.xml.gz"]


@pytest.mark.parametrize("status, body, kind, ok", [
    (200, "", "ok", True),                       # empty file: no rules
    (404, "User-agent: *\nDisallow: /", "absent", True),  # 4xx: no file, whatever the body says
    (403, None, "absent", True), (410, None, "absent", True),
    (500, None, "unreachable", False), (503, "User-agent: *\nAllow: /", "unreachable", False),
    (429, None, "unreachable", False),           # rate limited: treated like 5xx
    (None, None, "unreachable", False),          # timeout, refused connection
])
def test_status_rules(status, body, kind, ok):
    p = policy_from_response(status, body, "raylm")
    assert p.kind == kind and p.allowed(H + "/x") is ok and p.unreachable is (not ok)


def test_html_served_as_robots_txt_allows_all():
    page = ("<!DOCTYPE html>\n<html><head><title>Page not found</title></head>\n<body><h1>Sorry</h1>"
            "<p>User-agent: * Disallow: /</p>\n<a href='/'>home</a></body></html>\n")
    p = policy_from_response(200, page, "raylm")
    assert p.kind == "html" and p.allowed(H + "/any/page.html") and p.crawl_delay() is None


def test_huge_robots_txt_is_cut_at_the_limit():
    head = "User-agent: *\nDisallow: /early\n"
    filler = "".join(f"Disallow: /filler/{i:08d}\n" for i in range(MAX_BYTES // 28 + 1000))  # > 500 KiB
    text = head + filler + "Disallow: /late\n"
    assert len(text.encode()) > MAX_BYTES
    p = policy_from_response(200, text, "raylm")
    assert p.kind == "truncated"
    assert not p.allowed(H + "/early") and p.allowed(H + "/late")  # the rule past the limit is not read
    one_line = policy_from_response(200, "Disallow: " + "a" * (MAX_BYTES + 10), "raylm")  # no newline at all
    assert one_line.kind == "truncated" and one_line.allowed(H + "/x")
    # The fetcher stops reading at the limit and says so: the same kind.
    assert policy_from_response(200, head, "raylm", truncated=True).kind == "truncated"


def test_clip_keeps_whole_lines_and_utf8():
    text = "ä" * 10 + "\n" + "b" * 10
    assert robots.clip(text, 25) == ("ä" * 10 + "\n", True)
    assert robots.clip("ää", 3) == ("ä", True)  # no half character
    assert robots.clip("short", 100) == ("short", False)


def test_store_reuse_expiry_and_unreachable(tmp_path):
    store = RobotsStore(tmp_path / "robots")
    ua = "raylm-bot/0.1"
    reported = []
    p = store.record("https://a.example", 200, "User-agent: *\nDisallow: /x\nSitemap: https://a.example/s.xml\n",
                     False, ua, on_sitemaps=lambda o, s: reported.append((o, s)))
    assert not p.allowed("https://a.example/x")
    assert reported == [("https://a.example", ["https://a.example/s.xml"])]
    rec, fresh = store.get("https://a.example")
    assert fresh and rec["fetches"] == 1 and not robots.policy_from_record(rec, ua).allowed("https://a.example/x")
    # RFC 9309 2.4: not used for more than 24 hours.
    assert store.get("https://a.example", now=rec["fetched_at"] + robots.MAX_AGE_S + 1)[1] is False
    # A stale copy stays in use when the new fetch finds the file unreachable, and stays stale.
    old = dict(rec, fetched_at=rec["fetched_at"] - robots.MAX_AGE_S - 1)
    p2 = store.record("https://a.example", 503, None, False, ua, before=old)
    assert not p2.unreachable and not p2.allowed("https://a.example/x")
    rec2, fresh2 = store.get("https://a.example")
    assert not fresh2 and rec2["fetches"] == 2 and rec2["kind"] == "ok"
    # Unreachable with no copy: disallow all, counted, never reused.
    p3 = store.record("http://b.example", None, None, False, ua)
    assert p3.unreachable and store.get("http://b.example")[1] is False
    store.record("http://c.example:8080", 404, None, False, ua)
    assert store.get("http://c.example:8080")[1] is True and store.get("http://c.example")[0] is None
    assert robots.summarise(tmp_path / "robots") == {
        "origins": 3, "fetches": 4, "kinds": {"ok": 1, "html": 0, "truncated": 0, "absent": 1, "unreachable": 1}}
    empty = robots.summarise(tmp_path / "nothing")
    assert empty == {"origins": 0, "fetches": 0, "kinds": dict.fromkeys(robots.KINDS, 0)}


def test_store_without_directory_keeps_nothing():
    store = RobotsStore(None)
    store.record("http://a.example", 200, "User-agent: *\nDisallow: /\n", False, "x")
    assert store.get("http://a.example") == (None, False)
