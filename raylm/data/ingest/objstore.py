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


def _plain(entry: str, fs_path: str) -> str:
    """`fs_path` with the entry's scheme, unquoted and without options: what file names are made of."""
    if "://" not in entry or entry.startswith("file://"):
        return fs_path
    return entry.split("://", 1)[0] + "://" + fs_path.lstrip("/")


def _uri(entry: str, fs_path: str) -> str:
    """The URI of `fs_path` on the file system of the config entry (local and file:// paths stay
    paths). It keeps what the entry's file system needs to be found again: the entry's query
    options (`?endpoint_override=...&region=...`), its host when the file system's paths leave
    it out (hdfs://host:port/path), and percent-encoding (a key with a space or a `%`)."""
    if "://" not in entry or entry.startswith("file://"):
        return fs_path
    scheme, rest = entry.split("://", 1)
    rest, _, query = rest.partition("?")
    query = f"?{query}" if query else ""
    authority, p = rest.split("/", 1)[0], fs_path.lstrip("/")
    if not authority or p == authority or p.startswith(authority + "/"):  # s3, gs: the bucket leads the path
        return f"{scheme}://{quote(p)}{query}"
    return f"{scheme}://{authority}/{quote(p)}{query}"  # hdfs: the path leaves the host out


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
            body = (body[1:] if neg else body).replace("\\", r"\\").replace("[", r"\[").replace("]", r"\]")
            out.append(f"[^/{body}]" if neg else f"(?!/)[{body}]")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


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
    found: list[tuple[str, str]] = []  # (base, file), both _plain: names do not depend on quoting
    uris: dict[str, str] = {}  # _plain file -> the URI its reader opens
    for p in paths:
        fs, path = resolve(p)
        if any(ch in path for ch in "*?["):
            parts = path.split("/")
            k = next(i for i, s in enumerate(parts) if any(ch in s for ch in "*?["))
            base = "/".join(parts[:k]) or "/"
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            rx = glob_regex(path)
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
        for f in sorted(hits):
            found.append((_plain(p, base), _plain(p, f)))
            uris.setdefault(found[-1][1], _uri(p, f))
    return [(uris[f], name) for f, name in file_names(found).items()]
