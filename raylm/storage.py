"""Storage URIs: which file system a config path names, and how provenance shows it.

Every part of raylm that reads or writes a config path (ingest, decontam, checkpoints, eval)
resolves it here, so local paths, `file://` and object-store URIs (`s3://`, `gs://`, ...) mean
the same thing everywhere.

`s3://` needs nothing special: pyarrow's S3 file system takes its endpoint from
AWS_ENDPOINT_URL (S3-compatible stores, moto) and its keys from the usual AWS variables.
`gs://` has no such switch in pyarrow: `FileSystem.from_uri` always goes to Google's
endpoint and first looks for Google credentials (off GCP, without them, that lookup waits
on the metadata server). So, as Google's own client libraries do, raylm honours
STORAGE_EMULATOR_HOST: when it is set (`http://127.0.0.1:9023` or `127.0.0.1:9023`;
no scheme means http), `gs://` and `gcs://` URIs go to that endpoint, without credentials.
Like AWS_ENDPOINT_URL it must be set where the Ray workers run (a local Ray started by the
driver inherits the driver's environment). Everything else goes to `from_uri` unchanged.
"""

from __future__ import annotations

import os
from urllib.parse import unquote

import pyarrow.fs as pafs

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
