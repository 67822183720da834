"""Ingest path expansion: the `paths` entries of an ingest config (files, directories, globs,
URIs) -> the files to read, for every file-based source (files, WARC). URI parsing and file
systems are raylm.storage's.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from urllib.parse import quote, unquote

import pyarrow.fs as pafs

from raylm.data.schema import file_names
from raylm.storage import is_remote, public_uri, resolve


def file_uri(entry: str, root: str, base: str, f: str) -> str:
    """The URI a reader opens for file `f` (a path on the entry's file system) found under `base`
    by config entry `entry`, whose own path on that file system is `root`.

    Built from the entry's own text: its part above `base` (scheme, credentials, host, bucket,
    however the entry spelled them), then `f` below `base` percent-encoded, then the entry's query
    options (`?endpoint_override=...&region=...`), so each file reaches the same store the entry
    did. Local and file:// entries give plain paths."""
    if not is_remote(entry):
        return f
    head, _, query = entry.partition("?")
    tail = len([s for s in root[len(base):].split("/") if s])  # segments of root below base
    prefix = head.rstrip("/")
    if tail:
        prefix = prefix.rsplit("/", tail)[0]
    rel = f[len(base):].lstrip("/")
    return f"{prefix}/{quote(rel)}" + (f"?{query}" if query else "")


def glob_regex(pattern: str) -> re.Pattern:
    """A path glob as a regex: `*`, `?` and `[...]` (`[!...]` negates) stay within one directory,
    `**` crosses directories (`d/**/x` also matches `d/x`); case-sensitive, whole path."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1 + (pattern[i + 1:i + 2] in ("!", "^"))
            j = pattern.find("]", j + 1)  # a `]` right after `[` or `[!` is a member
            if j < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1:j]
            neg = body[:1] in ("!", "^")
            body = re.sub(r"([\\\[\]&~|])", r"\\\1", body[1:] if neg else body)  # literal in a class
            out.append(f"[^/{body}]" if neg else f"(?!/)[{body}]")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as e:  # e.g. a reversed range, [z-a]
        raise ValueError(f"bad glob {pattern!r}: {e}") from None


_LISTINGS: dict | None = None  # inside `one_listing`: (scheme, folder) -> its recursive listing


@contextlib.contextmanager
def one_listing() -> Iterator[None]:
    """Within this block every input folder is listed once: `raylm data` expands its paths for
    the checks, the progress total, the unknown-file check and the read itself, and on an object
    store each recursive listing of a large prefix costs seconds. One listing per folder also
    gives the whole run one view of it: a file uploaded between the checks and the read is not
    in one and missing from the other."""
    global _LISTINGS
    outer = _LISTINGS
    _LISTINGS = {} if outer is None else outer
    try:
        yield
    finally:
        _LISTINGS = outer


def _listing(fs: pafs.FileSystem, entry: str, folder: str, allow_not_found: bool = False) -> list[pafs.FileInfo]:
    """Every file and folder under `folder`, recursively (once per `one_listing` block)."""
    key = (entry.split("://", 1)[0] if "://" in entry else "", folder, allow_not_found)
    if _LISTINGS is not None and key in _LISTINGS:
        return _LISTINGS[key]
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=allow_not_found))
    if _LISTINGS is not None:
        _LISTINGS[key] = infos
    return infos


def expand(paths: list[str], wanted: Callable[[str], bool], what: str) -> list[tuple[str, str]]:
    """Config path entries -> (file URI, location-free name) pairs, each file once, sorted within
    an entry and in entry order; the name (schema.file_names) keys the documents' ids.

    An entry is a file, a directory (every file under it that `wanted` accepts, recursively) or a
    glob (`glob_regex`: `*`, `?`, `[...]` within a directory, `**` across directories, so
    `d/*.jsonl` takes `d/x.jsonl` and `d/**/*.jsonl` takes `d/sub/x.jsonl` too; listed
    recursively from its deepest directory without wildcards; every matching file is taken,
    whatever its suffix). An entry that does not exist or matches nothing raises
    FileNotFoundError naming `what` (the config field). Runs on the driver: it lists names,
    never opens a file.
    """
    found: list[tuple[str, str]] = []  # (base, file), as `_name_key`: names do not depend on quoting
    uris: dict[str, str] = {}  # name key -> the URI its reader opens
    for p in paths:
        fs, path = resolve(p)
        if any(ch in path for ch in "*?["):
            parts = path.split("/")
            k = next(i for i, s in enumerate(parts) if any(ch in s for ch in "*?["))
            if k == 0 and "://" in p:
                raise ValueError(f"{what}: {p}: a wildcard in the bucket or container name is not supported")
            base = "/".join(parts[:k]) or "/"
            infos = _listing(fs, p, base, allow_not_found=True)
            try:
                rx = glob_regex(path)
            except ValueError as e:
                raise ValueError(f"{what}: {p}: {e}") from None
            hits = [i.path for i in infos if i.type == pafs.FileType.File and rx.match(i.path)]
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                base = path
                infos = _listing(fs, p, path)
                hits = [i.path for i in infos if i.type == pafs.FileType.File and wanted(i.path)]
            elif info.type == pafs.FileType.File:
                base, hits = path.rsplit("/", 1)[0] or "/", [path]
            else:
                raise FileNotFoundError(f"{what}: {p} does not exist")
        if not hits:
            raise FileNotFoundError(f"{what}: {p} matches no files")
        base_key = _name_key(file_uri(p, path, base, base))
        for f in sorted(hits):
            uri = file_uri(p, path, base, f)
            key = _name_key(uri)
            if uris.setdefault(key, uri) != uri:
                raise ValueError(f"{what}: {uris[key]} and {uri} name the same path with different store "
                                 "options: their documents would share ids (two stores: give them separate runs)")
            found.append((base_key, key))
    return [(uris[f], name) for f, name in file_names(found).items()]


def _name_key(uri: str) -> str:
    """What a file's location-free name is made of: its public URI, percent-decoded (a local copy
    and an object-store copy of a tree get the same names)."""
    return unquote(public_uri(uri)) if is_remote(uri) else uri
