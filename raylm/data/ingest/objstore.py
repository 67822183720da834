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
"""

from __future__ import annotations

import os

import pyarrow.fs as pafs

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
