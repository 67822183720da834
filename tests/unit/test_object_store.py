"""Files and WARC ingest from an object store: a moto S3 server on 127.0.0.1, reached through
pyarrow's S3 file system (AWS_ENDPOINT_URL), exactly as `s3://` paths in a config are read.
No Ray: the listing and per-file readers are what each Ray task runs."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest

pytest.importorskip("moto")
pytestmark = pytest.mark.network  # a local S3 server on 127.0.0.1

BUCKET = "raylm-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    yield client
    mp.undo()
    server.stop()


def test_jsonl_glob_from_s3_keeps_ids_uris_and_licenses(s3):
    from raylm.data.ingest.files import FilesConfig, expand_paths, read_one

    rows = [{"text": f"document number {i} from the bucket", "url": f"https://example.org/{i}"} for i in range(5)]
    s3.put_object(Bucket=BUCKET, Key="corpus/a.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows[:3]))
    s3.put_object(Bucket=BUCKET, Key="corpus/sub/b.jsonl", Body="".join(json.dumps(r) + "\n" for r in rows[3:]))
    s3.put_object(Bucket=BUCKET, Key="corpus/notes.bin", Body=b"\x00\x01")
    uris = expand_paths([f"s3://{BUCKET}/corpus/**.jsonl"])
    assert uris == [f"s3://{BUCKET}/corpus/a.jsonl", f"s3://{BUCKET}/corpus/sub/b.jsonl"]
    cfg = FilesConfig(paths=uris, url_field="url", license="CC-BY-4.0")
    tables = [read_one(u, cfg)[0].to_pylist() for u in uris]
    docs = [d for t in tables for d in t]
    assert [d["text"] for d in docs] == [r["text"] for r in rows]
    assert all(d["uri"].startswith(f"s3://{BUCKET}/corpus/") and d["license"] == "CC-BY-4.0" for d in docs)
    assert [d["url"] for d in docs] == [r["url"] for r in rows]
    again = [d["id"] for u in uris for d in read_one(u, cfg)[0].to_pylist()]
    assert again == [d["id"] for d in docs] and len(set(again)) == 5  # stable ids
    with pytest.raises(FileNotFoundError):
        expand_paths([f"s3://{BUCKET}/nothing-here/*.jsonl"])


def test_warc_from_s3_reads_the_same_records_as_from_disk(s3, shared_data):
    from raylm.data.ingest.warc import WarcConfig, expand_paths, read_warc

    local = shared_data / "warc" / "IAH-20080430204825-00000-blackbook.warc.gz"
    s3.put_object(Bucket=BUCKET, Key="crawl/blackbook.warc.gz", Body=local.read_bytes())
    uris = expand_paths([f"s3://{BUCKET}/crawl/"])
    assert uris == [f"s3://{BUCKET}/crawl/blackbook.warc.gz"]
    cfg = WarcConfig(paths=uris, content_types=[])
    stats_s3, stats_disk = Counter(), Counter()
    from_s3 = [(r["url"], r["text"]) for r in read_warc(uris[0], cfg, stats_s3)]
    from_disk = [(r["url"], r["text"]) for r in read_warc(str(local), cfg, stats_disk)]
    assert len(from_s3) == 299 and from_s3 == from_disk
