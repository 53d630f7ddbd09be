"""Blob store throughput: put then get N objects of SIZE bytes, one thread, against an S3 server over HTTP (moto_server
started here on a free port, or --endpoint), through Carnet's S3BlobStore (boto3) and, when it is installed, through
obstore (``pip install obstore``) in the same run, plus the local store for reference. Prints objects per second.

    .venv/bin/python benchmarks/blobs_s3.py --count 200 --size 65536
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.s3server import REGION, S3Server  # noqa: E402

from carnet.blobs import LocalBlobStore  # noqa: E402


def measure(name: str, put, get, blobs: list[tuple[str, bytes]]) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for key, data in blobs:
        put(key, data)
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    for key, data in blobs:
        assert get(key) == data
    get_s = time.perf_counter() - started
    n = len(blobs)
    print(f"| {name} | {n / put_s:.0f} | {n / get_s:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--size", type=int, default=64 * 1024)
    p.add_argument("--endpoint", help="an S3 endpoint (credentials from AWS_*); default: a moto_server started here")
    a = p.parse_args()
    server = S3Server(endpoint=a.endpoint, external=True) if a.endpoint else S3Server.moto()
    try:
        def blobs() -> list[tuple[str, bytes]]:
            out = []
            for _ in range(a.count):
                data = os.urandom(a.size)
                out.append((hashlib.sha256(data).hexdigest(), data))
            return out

        print(f"{a.count} objects of {a.size} bytes, one thread, {server.endpoint}\n")
        print("| client | put objects/s | get objects/s |\n| --- | --- | --- |")
        with tempfile.TemporaryDirectory() as tmp:
            local = LocalBlobStore(tmp)
            measure("local files (fsync'd)", local.put, local.get, blobs())
        store = server.store(timeout=10)
        store._conditional_writes()  # the one-time probe, outside the measure
        measure("boto3 1.44 (S3BlobStore: If-None-Match, Content-MD5)", store.put, store.get, blobs())
        try:
            import obstore
            from obstore.store import S3Store
        except ImportError:
            print("| obstore | not installed | |")
            return
        creds = server.credentials()
        ob = S3Store(server.new_bucket(), endpoint=server.endpoint, region=REGION, allow_http=True,
                     access_key_id=creds["aws_access_key_id"], secret_access_key=creds["aws_secret_access_key"])
        measure(f"obstore {obstore.__version__} (put with mode='create')",
                lambda k, d: obstore.put(ob, k, d, mode="create"), lambda k: bytes(obstore.get(ob, k).bytes()),
                blobs())
    finally:
        server.stop() if not a.endpoint else None


if __name__ == "__main__":
    main()
