"""A real S3-compatible server for tests: moto's ``moto_server`` (from ``moto[server]``) on 127.0.0.1.

The search reaches it the standard way, through the environment every process inherits
(AWS_ENDPOINT_URL and credentials), which pyarrow's S3 filesystem, and so Ray Tune, honour.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

BUCKET = "hpo-test"


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    client: object  # a boto3 S3 client for the test's own look at the bucket

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in the bucket."""
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A moto S3 server with an empty bucket, and this process's environment pointed at it."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # No instance-metadata lookups (169.254.169.254) for a region or credentials.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    log = open(tmp_path / "moto_server.log", "w")
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "moto_server.log").read_text()[-2000:]
            try:
                client.list_buckets()
                break
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer on {endpoint} within 60 s")
                time.sleep(0.1)
        client.create_bucket(Bucket=BUCKET)
        yield S3Server(endpoint, BUCKET, client)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
