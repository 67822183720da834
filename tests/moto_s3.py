"""A moto S3 server on 127.0.0.1 for the object-store tests (tests/ is on sys.path: the root conftest)."""

from __future__ import annotations

import contextlib
import socket


@contextlib.contextmanager
def moto_s3(bucket: str, monkeypatch):
    """A boto3 client of a fresh moto server holding `bucket`; the AWS_* variables pointing at it
    are set through `monkeypatch` (before a cluster starts, every raylet and worker inherits them)."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    try:
        yield client
    finally:
        server.stop()
