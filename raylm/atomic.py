"""Atomic writes: a temp name beside the target, then one rename. Every raylm writer uses these.

A reader, a rerun or a crash never sees half a file: the target is either the old content or
the new, whole. The temp name is the one scheme of the code base,

    .<target name>.tmp-<pid>-<8 hex>

hidden (leading dot, so globs like `*.bin` never pick it up), unique per writer (the pid tells
processes apart, the random part threads and hosts sharing a folder) and recognised by `sweep`,
which a rerun calls to remove what a killed writer left. The rename is atomic on one POSIX file
system; there is no fsync, so this protects against a killed process, not a power cut.

Files may also be object-store URIs (s3://, gs://, as strings): `write_with`, `write_bytes` and
`write_text` then write a local temp and upload it in one write, which the store shows whole or
not at all. `directory` is local only: on an object store a folder is written file by file and
marked done last (the dedup steps do that).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMP = re.compile(r"\..+\.tmp-\d+-[0-9a-f]{8}")


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temp name beside `path` in the one scheme (nothing is created)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def is_temp(name: str) -> bool:
    """Whether a file or directory name is a temp of this scheme."""
    return _TEMP.fullmatch(name) is not None


def write_with(path: str | os.PathLike, fn: Callable[[Path], object]) -> Path | str:
    """Call `fn(tmp)` to write a temp file beside `path`, then rename it to `path`.

    For writers that want a path of their own (numpy `tofile`, `pq.write_table`, `savefig`; the
    temp name has no useful suffix, so pass the format explicitly). If `fn` raises, the temp is
    removed and `path` keeps its old content. On an object store (`path` an s3:// gs:// URI) the
    temp is a local file uploaded in one write, which the store shows whole or not at all."""
    from raylm import storage

    if isinstance(path, str) and storage.is_remote(path):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="raylm-upload-") as d:
            tmp = Path(d) / "part"
            fn(tmp)
            storage.upload(tmp, path)
        return path
    p = Path(path)
    tmp = temp_path(p)
    try:
        fn(tmp)
        os.replace(tmp, p)
    except BaseException:
        _remove(tmp)
        raise
    return p


def write_bytes(path: str | os.PathLike, data: bytes) -> Path | str:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path | str:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding=encoding))


@contextmanager
def directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory beside `path`; when the block succeeds it becomes `path`.

    A new `path` appears in one rename. An existing one is first renamed to a temp of the scheme,
    the new tree renamed in, then the old one deleted: a crash between those two renames leaves
    no `path` (a retry-safe caller rebuilds it) and the old tree as a temp for `sweep`, never a
    mix of both. If the block raises, the temp directory is removed and `path` is untouched."""
    p = Path(path)
    tmp = temp_path(p)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if p.exists():
        old = temp_path(p)
        os.replace(p, old)
        os.replace(tmp, p)
        _remove(old)
    else:
        os.replace(tmp, p)


def sweep(folder: str | os.PathLike) -> list[Path]:
    """Remove the temps of this scheme directly in `folder` (files and directories); return them.

    Only call it when no writer can be live in `folder` (raylm allows one run per output folder):
    a live writer's temp looks the same as a dead one's. A missing folder has nothing to sweep;
    an object store has no temps (uploads appear whole)."""
    if isinstance(folder, str) and "://" in folder and not folder.startswith("file://"):
        return []
    d = Path(folder)
    if not d.is_dir():
        return []
    gone = [e for e in sorted(d.iterdir()) if is_temp(e.name)]
    for e in gone:
        _remove(e)
    return gone


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
