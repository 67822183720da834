"""A moto S3 server on 127.0.0.1 for the object-store tests (tests/ is on sys.path: the root conftest)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def moto_s3(bucket: str, monkeypatch):
    """A boto3 client of a fresh moto server holding `bucket`; the AWS_* variables pointing at it
    are set through `monkeypatch` (before a cluster starts, every raylet and worker inherits them)."""
    import boto3

    from benchmarks._common import aws_env, start_moto

    server, endpoint = start_moto()
    for k, v in aws_env(endpoint).items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    try:
        yield client
    finally:
        server.stop()
