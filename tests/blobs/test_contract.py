"""The blob store contract (carnet.blobs.base), run on every store: local files, and S3 over HTTP (moto_server
started by the suite, or the server CARNET_TEST_S3_ENDPOINT names)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carnet.blobs import BlobConflict, BlobNotFound, BlobStore, LocalBlobStore


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys(store: BlobStore) -> list[str]:
    return sorted(k for k, _ in store.iter_blobs())


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    server = request.getfixturevalue("s3_server")
    yield server.store(part_size=5 * 1024 * 1024)


def test_the_store_is_a_blob_store(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_a_blob_put_can_be_got_back(store: BlobStore) -> None:
    data = b"%PDF-1.7 ..."
    store.put(key_of(data), data)
    assert store.get(key_of(data)) == data
    assert store.exists(key_of(data))
    assert keys(store) == [key_of(data)]


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.binary(max_size=8192))
def test_any_bytes_round_trip(store: BlobStore, data: bytes) -> None:
    store.put(key_of(data), data)
    assert store.get(key_of(data)) == data
    assert b"".join(store.get_stream(key_of(data), chunk_size=1000)) == data


def test_getting_a_missing_key_raises_blob_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as info:
        store.get(key_of(b"never stored"))
    assert info.value.key == key_of(b"never stored")
    with pytest.raises(BlobNotFound):
        store.get_stream(key_of(b"never stored"))  # raised by the call, before any chunk
    assert not store.exists(key_of(b"never stored"))


def test_putting_the_same_content_twice_is_fine(store: BlobStore) -> None:
    store.put(key_of(b"x"), b"x")
    store.put(key_of(b"x"), b"x")
    assert store.put_stream(key_of(b"x"), iter([b"x"])) == 1
    assert store.get(key_of(b"x")) == b"x"
    assert keys(store) == [key_of(b"x")]


def test_putting_different_content_under_an_existing_key_is_refused_and_keeps_the_first(store: BlobStore) -> None:
    key = key_of(b"first")
    store.put(key, b"first")
    with pytest.raises(BlobConflict):
        store.put(key, b"second")
    with pytest.raises(BlobConflict):
        store.put_stream(key, iter([b"sec", b"ond"]))
    assert store.get(key) == b"first"
    assert keys(store) == [key]


def test_delete_removes_a_blob_and_is_idempotent(store: BlobStore) -> None:
    key = key_of(b"x")
    store.put(key, b"x")
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.get(key)
    store.delete(key)
    store.delete(key_of(b"never stored"))
    assert keys(store) == []


def test_uuid_keys_are_accepted(store: BlobStore) -> None:
    key = "0f8fad5b-d9cb-469f-a165-70867728950e"
    store.put(key, b"x")
    assert store.get(key) == b"x"


@pytest.mark.parametrize("key", [
    "", "abc", "../../etc/passwd", "ab/cd/ef", "..", "ABCDEF", "abcd\x00", "abcd/", "/abcd", "a" * 129,
    "abcd.tmp", "..abcd", "abcd efgh", "abcd\n",
])
def test_keys_outside_lowercase_hex_and_dashes_are_refused(store: BlobStore, key: str) -> None:
    for op in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.delete(key),
               lambda: store.exists(key), lambda: store.put_stream(key, [b"x"]), lambda: store.get_stream(key)):
        with pytest.raises(ValueError):
            op()
    assert keys(store) == []


def test_keys_of_up_to_128_characters_are_accepted(store: BlobStore) -> None:
    store.put("a" * 128, b"x")
    assert store.get("a" * 128) == b"x"


def test_non_bytes_data_is_refused_before_anything_is_written(store: BlobStore) -> None:
    with pytest.raises(TypeError):
        store.put(key_of(b"x"), "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put_stream(key_of(b"x"), ["text"])  # type: ignore[list-item]
    assert keys(store) == []


def test_a_large_blob_streams_in_and_out_in_parts(store: BlobStore) -> None:
    data = os.urandom(11 * 1024 * 1024 + 17)  # three S3 parts of 5 MiB
    key = key_of(data)
    chunks = (data[i:i + 300_000] for i in range(0, len(data), 300_000))
    assert store.put_stream(key, chunks) == len(data)
    got = list(store.get_stream(key, chunk_size=1024 * 1024))
    assert max(len(c) for c in got) <= 1024 * 1024
    assert b"".join(got) == data
    assert store.get(key) == data
    assert store.put_stream(key, iter([data])) == len(data)  # identical: a no-op
    with pytest.raises(BlobConflict):
        store.put_stream(key, iter([data[:-1], bytes([data[-1] ^ 1])]))  # a last byte that surely differs
    assert store.get(key) == data


def test_a_stream_failing_midway_leaves_nothing_under_the_key(store: BlobStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield os.urandom(6 * 1024 * 1024)
        yield os.urandom(6 * 1024 * 1024)
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        store.put_stream(key_of(b"never"), chunks())
    assert not store.exists(key_of(b"never"))
    assert keys(store) == []
    assert store.remove_leftovers(dt.datetime.now(dt.UTC) + dt.timedelta(days=1), dry_run=True) == 0


def test_blobs_are_listed_with_their_time_of_writing(store: BlobStore) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # object stores keep whole seconds; clocks drift
    for data in (b"a", b"b", b"c"):
        store.put(key_of(data), data)
    listed = dict(store.iter_blobs())
    assert sorted(listed) == sorted(key_of(d) for d in (b"a", b"b", b"c"))
    for when in listed.values():
        assert when.tzinfo is not None and before <= when <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)


def test_the_contract_holds_for_many_blobs_listed_in_pages(store: BlobStore, request: Any) -> None:
    written = {key_of(str(i).encode()) for i in range(1010)} if "s3" in request.node.name else \
        {key_of(str(i).encode()) for i in range(50)}
    for k in written:
        store.put(k, k.encode())
    assert set(keys(store)) == written
