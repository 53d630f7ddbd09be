"""What only the S3 store has: conditional writes (or their fallback), multipart uploads, faults and recovery, against
a real S3 server over HTTP (moto_server, started by the suite)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from carnet.blobs import BlobConflict, BlobNotFound, BlobStore, BlobStoreUnavailable, LocalBlobStore
from carnet.blobs.s3 import S3BlobStore
from tests.s3server import S3Server
from tests.servers import free_port


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_test_server_honours_conditional_writes_and_the_store_uses_them(s3_server: S3Server) -> None:
    store = s3_server.store()
    honoured = store._conditional_writes()
    if not s3_server.external:
        assert honoured == (True, True)  # moto honours both (Ceph RGW 16: (True, False), see docs/SCALE.md)
    print(f"If-None-Match honoured on PutObject, CompleteMultipartUpload: {honoured}")
    names = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=store.bucket).get("Contents", [])]
    assert names == []  # the probe object is gone


def test_a_write_after_the_key_appeared_gets_412_then_compares(s3_server: S3Server) -> None:
    store = s3_server.store()
    store._conditional = (True, True)
    key = key_of(b"first")
    s3_server.client().put_object(Bucket=store.bucket, Key=f"blobs/{key}", Body=b"first")  # appeared meanwhile
    store.put(key, b"first")  # 412, same bytes: a no-op
    with pytest.raises(BlobConflict):
        store.put(key, b"other")
    assert store.get(key) == b"first"


@pytest.mark.parametrize("conditional", [(True, True), (False, False), (True, False)])
def test_check_then_write_keeps_the_same_contract_where_conditions_are_ignored(
        s3_server: S3Server, conditional: tuple[bool, bool]) -> None:
    store = s3_server.store(part_size=5 * 1024 * 1024)
    honoured = store._conditional_writes()
    if any(forced and not real for forced, real in zip(conditional, honoured, strict=True)):
        pytest.skip(f"this server does not honour If-None-Match everywhere: {honoured}")
    store._conditional = conditional
    big = os.urandom(6 * 1024 * 1024)
    store.put(key_of(b"x"), b"x")
    store.put(key_of(b"x"), b"x")
    with pytest.raises(BlobConflict):
        store.put(key_of(b"x"), b"y")
    assert store.put_stream(key_of(big), [big]) == len(big)
    assert store.put_stream(key_of(big), [big[:100], big[100:]]) == len(big)
    with pytest.raises(BlobConflict):
        store.put_stream(key_of(big), [big[:-1], bytes([big[-1] ^ 1])])  # a last byte that surely differs
    assert store.get(key_of(b"x")) == b"x" and store.get(key_of(big)) == big


def test_a_refused_multipart_upload_is_aborted(s3_server: S3Server) -> None:
    store = s3_server.store(part_size=5 * 1024 * 1024)
    big = os.urandom(11 * 1024 * 1024)
    store.put_stream(key_of(big), [big])
    with pytest.raises(BlobConflict):
        store.put_stream(key_of(big), [os.urandom(11 * 1024 * 1024)])
    uploads = s3_server.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert uploads == []


def test_unfinished_uploads_are_leftovers_for_the_garbage_collector(s3_server: S3Server) -> None:
    store = s3_server.store()
    s3_server.client().create_multipart_upload(Bucket=store.bucket, Key=f"blobs/{key_of(b'crashed')}")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert store.remove_leftovers(future, dry_run=True) == 1
    assert store.remove_leftovers(future) == 1
    assert s3_server.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_only_keys_are_listed(s3_server: S3Server) -> None:
    store = s3_server.store()
    store.put(key_of(b"x"), b"x")
    c = s3_server.client()
    c.put_object(Bucket=store.bucket, Key="blobs/.carnet-probe-1", Body=b"1")
    c.put_object(Bucket=store.bucket, Key="elsewhere/abcd", Body=b"1")
    c.put_object(Bucket=store.bucket, Key="blobs/sub/abcd", Body=b"1")
    assert [k for k, _ in store.iter_blobs()] == [key_of(b"x")]


# --- faults: down, slow, back ----------------------------------------------------------------------------------------


def test_a_store_that_is_down_is_unavailable_quickly() -> None:
    store = S3BlobStore("carnet-down", "p", endpoint_url=f"http://127.0.0.1:{free_port()}", timeout=1, attempts=2,
                        client_options={"aws_access_key_id": "x", "aws_secret_access_key": "y"})
    started = time.monotonic()
    for op in (lambda: store.put(key_of(b"x"), b"x"), lambda: store.get(key_of(b"x")),
               lambda: store.exists(key_of(b"x")), lambda: store.delete(key_of(b"x")),
               lambda: list(store.iter_blobs())):
        with pytest.raises(BlobStoreUnavailable):
            op()
    print(f"5 calls to a store that is down: {time.monotonic() - started:.1f} s")
    assert not isinstance(BlobStoreUnavailable("x"), OSError)  # never mistaken for a damaged blob


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: a store that is slow."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    sock.close()


def test_a_store_that_does_not_answer_is_unavailable_after_the_read_timeout(silent_server: int) -> None:
    store = S3BlobStore("carnet-slow", "p", endpoint_url=f"http://127.0.0.1:{silent_server}", timeout=0.5,
                        attempts=2, conditional_writes=True,
                        client_options={"aws_access_key_id": "x", "aws_secret_access_key": "y"})
    started = time.monotonic()
    with pytest.raises(BlobStoreUnavailable):
        store.put(key_of(b"x"), b"x")
    with pytest.raises(BlobStoreUnavailable):
        store.get(key_of(b"x"))
    print(f"2 calls to a store that does not answer: {time.monotonic() - started:.1f} s")


def test_the_store_recovers_by_itself_when_the_server_is_back() -> None:
    server = S3Server.moto()
    try:
        bucket = server.new_bucket()
        store = server.store(bucket, timeout=1, attempts=2)
        store.put(key_of(b"before"), b"before")
        server.stop()
        with pytest.raises(BlobStoreUnavailable):
            store.put(key_of(b"during"), b"during")
        with pytest.raises(BlobStoreUnavailable):
            store.get(key_of(b"before"))
        server.start()  # same port; moto keeps nothing across a restart
        server.client().create_bucket(Bucket=bucket)
        store.put(key_of(b"after"), b"after")  # the same store object: no broken state kept
        assert store.get(key_of(b"after")) == b"after"
        with pytest.raises(BlobNotFound):
            store.get(key_of(b"before"))
    finally:
        server.stop()


# --- memory: a 100 MB object through put_stream/get_stream ------------------------------------------------------------

SIZE = 100 * 1024 * 1024
PART = 8 * 1024 * 1024


def _chunks(seed: bytes, size: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    block = hashlib.sha256(seed).digest() * (chunk // 32)
    for i in range(0, size, chunk):
        yield block[: min(chunk, size - i)]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_100_mb_object_streams_in_and_out_within_three_parts_of_memory(kind: str, tmp_path: Path,
                                                                          request: pytest.FixtureRequest) -> None:
    store: BlobStore = LocalBlobStore(tmp_path / "blobs") if kind == "local" else \
        request.getfixturevalue("s3_server").store(part_size=PART, timeout=30)
    expected = hashlib.sha256()
    for c in _chunks(b"big", SIZE):
        expected.update(c)
    key = expected.hexdigest()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        assert store.put_stream(key, _chunks(b"big", SIZE)) == SIZE
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        got, size = hashlib.sha256(), 0
        for c in store.get_stream(key, chunk_size=1024 * 1024):
            got.update(c)
            size += len(c)
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (size, got.hexdigest()) == (SIZE, key)
    print(f"{kind}: 100 MiB put_stream peak {put_peak / 2**20:.1f} MiB, get_stream peak {get_peak / 2**20:.1f} MiB")
    assert put_peak < 3 * PART
    assert get_peak < 3 * PART
