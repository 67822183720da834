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
from pathlib import Path
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


# Substrings of pyarrow's S3 / GCS errors (AWS error names, HTTP statuses) that mean "these
# credentials may not do this", as opposed to a missing object or a network failure.
_DENIED = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH",
           "SignatureDoesNotMatch", "EXPIRED_TOKEN", "ExpiredToken", "PERMISSION_DENIED", "Permission denied",
           "Forbidden", "403", "401")
_NO_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket", "The specified bucket does not exist")


def access_error(key: str, uri: str, e: OSError, doing: str = "cannot read it") -> ValueError:
    """One line for an object-store (or local) error on the path of config key `key`:
    `<key>: <uri>: <doing>: <why>`, why being access denied (naming where credentials come
    from), no such bucket, or the file system's own words."""
    said = " ".join(str(e.strerror if isinstance(e, PermissionError) and e.strerror else e).split())
    where = public_uri(uri) if is_remote(uri) else uri
    if any(s in said for s in _NO_BUCKET):
        why = f"the bucket does not exist ({said[:160]})"
    elif isinstance(e, PermissionError) or any(s in said for s in _DENIED):
        creds = ("AWS_* variables, ~/.aws, or the node's instance profile / IAM role" if uri.startswith("s3")
                 else "GOOGLE_APPLICATION_CREDENTIALS or the node's service account" if uri.startswith(("gs", "gcs"))
                 else "the file's permissions")
        why = f"access denied; the credentials this process uses ({creds}) may not use it ({said[:160]})"
    else:
        why = said[:240]
    return ValueError(f"{key}: {where}: {doing}: {why}")


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


# ---------------------------------------------------------------- files on either kind of storage
# Everything below takes a local path or a URI (str or PathLike) and does the same thing on both,
# so a stage's output folder (`out`) may be a local folder or an object-store prefix. Object
# stores have no folders and no rename: a "folder" is a key prefix, and an object appears whole
# or not at all when its upload completes (raylm/atomic.py builds on that).


def location(path: str | os.PathLike) -> str:
    """A path or URI as the string the functions below take (a URI kept as it is spelled)."""
    return path if isinstance(path, str) else os.fspath(path)


def join(base: str | os.PathLike, *parts: str) -> str:
    """`base` / parts, for a local path or a URI (query options stay at the end)."""
    base = location(base)
    if not is_remote(base):
        return os.path.join(base, *parts)
    root, q, query = base.partition("?")
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)]) + (q + query)


def _info(path: str) -> pafs.FileInfo:
    fs, p = resolve(path)
    return fs.get_file_info(p)


def exists(path: str | os.PathLike) -> bool:
    """A file, or a folder (an object-store prefix with at least one object under it)."""
    path = location(path)
    info = _info(path)
    if info.type != pafs.FileType.NotFound:
        return True
    return is_remote(path) and bool(listdir(path))


def is_file(path: str | os.PathLike) -> bool:
    return _info(location(path)).type == pafs.FileType.File


def stat(path: str | os.PathLike) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a file; FileNotFoundError when there is none."""
    path = location(path)
    info = _info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{public_uri(path)} does not exist")
    return info.size, info.mtime_ns or 0


def listdir(path: str | os.PathLike) -> list[str]:
    """Names directly under a folder or prefix (sorted); [] when there is none."""
    fs, p = resolve(location(path))
    infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    return sorted(i.base_name for i in infos)


def read_bytes(path: str | os.PathLike) -> bytes:
    path = location(path)
    fs, p = resolve(path)
    try:
        with fs.open_input_stream(p) as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{public_uri(path)} does not exist") from None
    except OSError:  # pyarrow reports a missing object as a generic OSError on some stores
        if _info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{public_uri(path)} does not exist") from None
        raise


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    return read_bytes(path).decode(encoding)


def upload(local: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy a local file to `path` (local or URI) in one write: an object store shows it whole or
    not at all. Local targets should go through raylm/atomic.py, which renames."""
    fs, p = resolve(location(path))
    with open(local, "rb") as src, fs.open_output_stream(p) as dst:
        while chunk := src.read(1 << 24):
            dst.write(chunk)


def download(path: str | os.PathLike, local: str | os.PathLike) -> None:
    """Copy a file (local or URI) to a local path (through a temp name and a rename)."""
    from raylm import atomic

    fs, p = resolve(location(path))

    def copy(tmp):
        with fs.open_input_stream(p) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)

    atomic.write_with(local, copy)


def makedirs(path: str | os.PathLike) -> None:
    """A local folder (and its parents); nothing on an object store, where prefixes need none."""
    path = location(path)
    if not is_remote(path):
        os.makedirs(os.path.expanduser(path), exist_ok=True)


def delete(path: str | os.PathLike) -> None:
    """A file or a whole folder / prefix; nothing when it does not exist."""
    path = location(path)
    fs, p = resolve(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.File:
        fs.delete_file(p)
    elif info.type == pafs.FileType.Directory or (is_remote(path) and listdir(path)):
        fs.delete_dir(p)


def scratch(root: str | None, *parts: str) -> Path:
    """A folder on this node's own disk (`cluster.local_dir`, else the temp folder): copies of
    object-store shards, and what a worker keeps locally before it uploads."""
    import tempfile

    d = Path(root or os.path.join(tempfile.gettempdir(), "raylm-scratch")).expanduser().joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def work_dir(out: str, root: str | None) -> Path:
    """Where a process writes the files of stage folder `out`: `out` itself when it is local,
    else a scratch folder named after it (then `mirror` uploads them)."""
    import hashlib

    if not is_remote(out):
        return Path(out)
    return scratch(root, "out-" + hashlib.sha1(public_uri(out).encode()).hexdigest()[:12])


class Mirror:
    """Uploads the files of a local folder that changed since the last call (size or mtime) to a
    remote folder; a no-op when the target is the folder itself (local `out`)."""

    def __init__(self, local: Path, remote: str):
        self.local, self.remote, self.seen = Path(local), remote, {}

    def __call__(self) -> None:
        if not is_remote(self.remote) or not self.local.is_dir():
            return
        for f in sorted(self.local.rglob("*")):
            rel = f.relative_to(self.local).parts
            if not f.is_file() or any(part.startswith(".") for part in rel):  # temps, locks, .ckpt-*
                continue
            st = f.stat()
            key = (st.st_size, st.st_mtime_ns)
            if self.seen.get(f) != key:
                upload(f, join(self.remote, *rel))
                self.seen[f] = key
