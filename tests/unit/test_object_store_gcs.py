"""Files and WARC ingest from `gs://`: a GCS emulator (gcp-storage-emulator, pure Python) on
127.0.0.1, reached through pyarrow's GCS file system via STORAGE_EMULATOR_HOST, exactly as
`gs://` paths in a config are read. The twin of test_object_store.py (s3:// on moto).
No Ray: the listing and per-file readers are what each Ray task runs."""

from __future__ import annotations

import socket
import subprocess
import sys

import objstore_checks  # tests/unit/objstore_checks.py: the checks the s3:// twin runs too
import pytest

pytest.importorskip("gcp_storage_emulator")
pytestmark = pytest.mark.network  # a local GCS emulator on 127.0.0.1

BUCKET = "raylm-test"

# The emulator runs in its own process: in a thread of this one (as moto runs for S3),
# `open_input_file(...).size()` hung for good, most likely a pyarrow GCS call holding the GIL
# while it waits for the server thread's reply. It serves until its stdin closes.
_SERVE = """
import sys
from gcp_storage_emulator.server import create_server
srv = create_server("127.0.0.1", int(sys.argv[1]), in_memory=True, default_bucket=sys.argv[2])
srv.start()
print("ready", flush=True)
sys.stdin.read()
srv.stop()
"""


@pytest.fixture(scope="module")
def gcs():
    """A GCS file system on the emulator (for uploads); STORAGE_EMULATOR_HOST set for raylm."""
    from raylm.storage import gcs_emulator

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(port), BUCKET], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", "GCS emulator did not start"
        mp = pytest.MonkeyPatch()
        mp.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        yield gcs_emulator(f"http://127.0.0.1:{port}")
        mp.undo()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _put(fs, key: str, body: bytes) -> None:
    # compression=None: by default pyarrow would gzip a ".gz" name a second time.
    with fs.open_output_stream(f"{BUCKET}/{key}", compression=None) as f:
        f.write(body)


def test_emulator_host_forms_and_paths(monkeypatch):
    # Pure parsing, no server: both forms Google's clients accept; query and trailing "/" dropped.
    import pyarrow.fs as pafs

    from raylm.storage import from_uri

    for host in ("127.0.0.1:9023", "http://127.0.0.1:9023"):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        fs, path = from_uri("gs://bkt/dir/a.jsonl")
        assert isinstance(fs, pafs.GcsFileSystem) and path == "bkt/dir/a.jsonl"
        assert from_uri("gcs://bkt/dir/?x=1")[1] == "bkt/dir"
        assert isinstance(from_uri("file:///tmp")[0], pafs.LocalFileSystem)  # other schemes unchanged


def test_jsonl_glob_from_gcs_keeps_ids_uris_and_licenses(gcs):
    objstore_checks.jsonl_glob_keeps_ids_uris_and_licenses(lambda key, body: _put(gcs, key, body), f"gs://{BUCKET}")


def test_warc_from_gcs_reads_the_same_records_as_from_disk(gcs, shared_data):
    objstore_checks.warc_reads_the_same_records_as_from_disk(
        lambda key, body: _put(gcs, key, body), f"gs://{BUCKET}",
        shared_data / "warc" / "IAH-20080430204825-00000-blackbook.warc.gz")
