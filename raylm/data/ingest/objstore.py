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

import fnmatch
import os
from collections.abc import Callable

import pyarrow.fs as pafs

from raylm.data.schema import file_names

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def gcs_emulator(host: str) -> pafs.GcsFileSystem:
    """A GCS file system on an emulator at `host` (`[scheme://]host:port`), anonymous."""
    scheme, _, addr = host.rpartition("://")
    return pafs.GcsFileSystem(endpoint_override=addr.rstrip("/"), scheme=scheme or "http", anonymous=True)


def from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """(file system, path on it) for a URI, like `pyarrow.fs.FileSystem.from_uri`.

    gs:// paths come back as `bucket/key`, the form pyarrow's own GCS parsing gives.
    """
    scheme, _, rest = uri.partition("://")
    host = os.environ.get(EMULATOR_ENV)
    if host and scheme.lower() in ("gs", "gcs"):
        return gcs_emulator(host), rest.split("?", 1)[0].rstrip("/")
    return pafs.FileSystem.from_uri(uri)


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(file system, path on it) for a config path: a URI as `from_uri`, a local path made
    absolute with `~` expanded."""
    if "://" in path:
        return from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def _uri(entry: str, fs_path: str) -> str:
    """The URI of `fs_path` on the file system of the config entry (local and file:// paths stay paths)."""
    if "://" not in entry or entry.startswith("file://"):
        return fs_path
    return entry.split("://", 1)[0] + "://" + fs_path.lstrip("/")


def expand(paths: list[str], wanted: Callable[[str], bool], what: str) -> list[tuple[str, str]]:
    """Config path entries -> (file URI, location-free name) pairs, each file once, sorted within
    an entry and in entry order; the name (schema.file_names) keys the documents' ids.

    An entry is a file, a directory (every file under it that `wanted` accepts, recursively) or a
    glob (`*`, `?`, `[...]`, case-sensitive; walked recursively from its deepest directory without
    wildcards, and matched with fnmatch, whose `*` also crosses `/`: `d/*.jsonl` takes
    `d/sub/x.jsonl` too; every matching file is taken, whatever its suffix). An entry that does
    not exist or matches nothing raises FileNotFoundError naming `what` (the config field). Runs
    on the driver: it lists names, never opens a file.
    """
    found: list[tuple[str, str]] = []  # (base, uri)
    for p in paths:
        fs, path = resolve(p)
        if any(ch in path for ch in "*?["):
            parts = path.split("/")
            k = next(i for i, s in enumerate(parts) if any(ch in s for ch in "*?["))
            base = "/".join(parts[:k]) or "/"
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            hits = [i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, path)]
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
        found.extend((_uri(p, base), _uri(p, f)) for f in sorted(hits))
    return list(file_names(found).items())
