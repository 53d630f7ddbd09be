"""A real S3 server over HTTP for the tests: moto's standalone server (``moto_server``) in a subprocess on a free
127.0.0.1 port, as PostgreSQL's database is created by the suite. ``CARNET_TEST_S3_ENDPOINT`` points the tests at an
external S3-compatible server instead (Ceph RGW by hand, see docs/SCALE.md), with its credentials in the usual
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``. With ``CI=true`` a server that cannot start fails the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

REGION = "us-east-1"


@dataclass
class S3Server:
    """One S3 endpoint; :meth:`stop` and :meth:`start` (same port) let the fault tests take it away and back."""

    endpoint: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    external: bool = False
    buckets: list[str] = field(default_factory=list)

    @classmethod
    def moto(cls) -> S3Server:
        port = free_port()
        server = cls(endpoint=f"http://127.0.0.1:{port}", port=port)
        server.start()
        return server

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [shutil.which("moto_server") or "moto_server"]
        self.process = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(self.port)],  # noqa: S603
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def credentials(self) -> dict[str, str]:
        if self.external:
            return {"aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
                    "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "")}
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    def env(self) -> dict[str, str]:
        """The AWS settings an ``s3://`` CARNET_BLOB_URL is resolved with."""
        c = self.credentials()
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": c["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": c["aws_secret_access_key"]}

    def client(self, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, **self.credentials(),
            config=Config(request_checksum_calculation="when_required",
                          response_checksum_validation="when_required", **config))

    def new_bucket(self) -> str:
        name = f"carnet-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def store(self, bucket: str | None = None, prefix: str = "blobs", **kw: Any) -> Any:
        from carnet.blobs.s3 import S3BlobStore

        kw.setdefault("timeout", 2.0)
        kw.setdefault("attempts", 2)
        return S3BlobStore(bucket or self.new_bucket(), prefix, endpoint_url=self.endpoint,
                           client_options={**self.credentials(), "region_name": REGION}, **kw)

    def cleanup(self) -> None:
        if not self.external:
            return
        c = self.client()
        for b in self.buckets:  # an external server keeps its state: empty and remove our buckets
            for page in c.get_paginator("list_objects_v2").paginate(Bucket=b):
                for o in page.get("Contents", ()):
                    c.delete_object(Bucket=b, Key=o["Key"])
            c.delete_bucket(Bucket=b)


def serve() -> Iterator[S3Server]:
    external = os.environ.get("CARNET_TEST_S3_ENDPOINT")
    if external:
        server = S3Server(endpoint=external.rstrip("/"), external=True)
        yield server
        server.cleanup()
        return
    try:
        server = S3Server.moto()
    except (OSError, RuntimeError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the S3 test server (moto_server) is required when CI=true: {exc}")
        pytest.skip(f"moto_server cannot start: {exc}")
    try:
        yield server
    finally:
        server.stop()
