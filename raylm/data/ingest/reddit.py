"""Reddit-style jsonl dumps (Pushshift / Arctic Shift monthly RC_/RS_ files, per-subreddit dumps,
Reddit API listings saved one object a line) -> document records.

A line is a comment (`body`) or a submission (`title`, and `selftext` for a text post: the
document is the title, a blank line and the text). Only the text, the subreddit, the ids, the
score and the time are read: `author` and every other personal field (flair, author ids, mod
and report fields) never reach a document. The subreddit is kept as provenance in the URL:
the record's `permalink`, else https://www.reddit.com/r/<sub>/comments/<post id>/_/<comment id>/.
Reddit escapes &, < and > in the text as HTML entities; they are undone.

Dropped records keep their URL and carry a reason: `ingest:deleted` / `ingest:removed` (a body or
selftext of "[deleted]" / "[removed]", or a title "[deleted by user]"), `ingest:low_score`
(score below `min_score`), `ingest:bad_record` (not a JSON object, or neither a comment nor a
submission).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterator

SITE = "https://www.reddit.com"
_GONE = {"[deleted]": "ingest:deleted", "[removed]": "ingest:removed", "[deleted by user]": "ingest:deleted"}


def read(lines: Iterator[str], min_score: int | None = None) -> Iterator[dict]:
    """Lines of one dump -> records {key (line number), text, url, fetched_at, content_type, drop}."""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        yield record(obj, i, min_score)


def record(obj, key, min_score: int | None = None) -> dict:
    """One decoded JSON line -> a record (see the module docstring)."""
    if not isinstance(obj, dict) or not ("body" in obj or "title" in obj):
        return {"key": key, "text": None, "drop": "ingest:bad_record"}
    rec = {"key": key, "text": None, "url": _url(obj), "fetched_at": _iso(obj.get("created_utc")),
           "content_type": "text/markdown"}  # Reddit text is Markdown
    if "body" in obj:
        parts = [obj.get("body")]
    else:
        parts = [obj.get("title"), obj.get("selftext") or None]
    if not all(isinstance(p, str) for p in parts if p is not None):
        return rec | {"drop": "ingest:bad_record"}
    gone = next((_GONE[p.strip()] for p in parts if p and p.strip() in _GONE), None)
    if gone:
        return rec | {"drop": gone}
    score = obj.get("score")
    if min_score is not None and isinstance(score, int | float) and score < min_score:
        return rec | {"drop": "ingest:low_score"}
    return rec | {"text": html.unescape("\n\n".join(p for p in parts if p))}


def _url(obj: dict) -> str | None:
    link = obj.get("permalink")
    if isinstance(link, str) and link.startswith("/"):
        return SITE + link
    sub, rid = obj.get("subreddit"), obj.get("id")
    if not isinstance(sub, str) or not isinstance(rid, str):
        return None
    if "body" in obj:  # a comment: link_id is its submission, "t3_<id>"
        post = str(obj.get("link_id") or "").removeprefix("t3_")
        return f"{SITE}/r/{sub}/comments/{post}/_/{rid}/" if post else f"{SITE}/r/{sub}/"
    return f"{SITE}/r/{sub}/comments/{rid}/"


def _iso(ts) -> str | None:
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None
