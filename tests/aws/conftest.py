"""AWS APIs from moto in server mode on 127.0.0.1 (a free port), started and stopped by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer


@dataclass
class Aws:
    endpoint: str
    bucket: str

    def client(self, service: str) -> object:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    # moto keeps its state per process, not per server: start every test from an empty account.
    httpx.post(f"{endpoint}/moto-api/reset", timeout=10)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="spotify-lake")
    try:
        yield Aws(endpoint, "spotify-lake")
    finally:
        httpx.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()
