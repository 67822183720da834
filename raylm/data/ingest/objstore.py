"""pyarrow file systems for object-store URIs, plus one switch pyarrow lacks: a GCS emulator.

`s3://` needs nothing here: pyarrow's S3 file system takes its endpoint from
AWS_ENDPOINT_URL (S3-compatible stores, moto) and its keys from the usual AWS variables.
`gs://` has no such switch in pyarrow: `FileSystem.from_uri` always goes to Google's
endpoint and first looks for Google credentials (off GCP, without them, that lookup waits
on the metadata server). So, as Google's own client libraries do, raylm honours
STORAGE_EMULATOR_HOST: when it is set (`http://127.0.0.1:9023` or `127.0.0.1:9023`;
no scheme means http), `gs://` and `gcs://` URIs go to that endpoint, without credentials.
Like AWS_ENDPOINT_URL it must be set where the Ray workers run (a local Ray started by the
driver inherits the driver's environment). Everything else goes to `from_uri` unchanged.

`expand` turns the `paths` entries of an ingest config (files, directories, globs, URIs) into
the files to read, for every file-based source (files, WARC).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import quote, unquote

import pyarrow.fs as pafs

from raylm.data.schema import file_names

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def gcs_emulator(host: str) -> pafs.GcsFileSystem:
    """A GCS file system on an emulator at `host` (`[scheme://]host:port`), anonymous."""
    scheme, _, addr = host.rpartition("://")
    return pafs.GcsFileSystem(endpoint_override=addr.rstrip("/"), scheme=scheme or "http", anonymous=True)


def from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """(file system, path on it) for a URI, like `pyarrow.fs.FileSystem.from_uri`.

    gs:// paths come back as `bucket/key`, percent-decoded, the form pyarrow's own GCS parsing gives.
    """
    scheme, _, rest = uri.partition("://")
    host = os.environ.get(EMULATOR_ENV)
    if host and scheme.lower() in ("gs", "gcs"):
        return gcs_emulator(host), unquote(rest.split("?", 1)[0].rstrip("/"))
    return pafs.FileSystem.from_uri(uri)


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(file system, path on it) for a config path: a URI as `from_uri`, a local path made
    absolute with `~` expanded."""
    if "://" in path:
        return from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def is_remote(path: str) -> bool:
    """Whether a config path names an object-store (or other non-local) URI; file:// is local."""
    return "://" in path and not path.startswith("file://")


def public_uri(uri: str) -> str:
    """A file URI as provenance and log lines show it: without query options and without
    credentials (`s3://KEY:SECRET@bucket/x?endpoint_override=h` -> `s3://bucket/x`)."""
    if not is_remote(uri):
        return uri
    scheme, rest = uri.split("://", 1)
    rest = rest.split("?", 1)[0]
    authority, slash, path = rest.partition("/")
    if "@" in authority and scheme.lower() not in ("abfs", "abfss", "az"):  # azure: container@account
        authority = authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{path}"


def _file_uri(entry: str, root: str, base: str, f: str) -> str:
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
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            try:
                rx = glob_regex(path)
            except ValueError as e:
                raise ValueError(f"{what}: {p}: {e}") from None
            hits = [i.path for i in infos if i.type == pafs.FileType.File and rx.match(i.path)]
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                base = path
                infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
                hits = [i.path for i in infos if i.type == pafs.FileType.File and wanted(i.path)]
            elif info.type == pafs.FileType.File:
                base, hits = path.rsplit("/", 1)[0] or "/", [path]
            else:
                raise FileNotFoundError(f"{what}: {p} does not exist")
        if not hits:
            raise FileNotFoundError(f"{what}: {p} matches no files")
        base_key = _name_key(_file_uri(p, path, base, base))
        for f in sorted(hits):
            uri = _file_uri(p, path, base, f)
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
