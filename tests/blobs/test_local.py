from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.blobs import local as blobstore
from carnet.blobs.local import (
    BlobConflict,
    BlobNotFound,
    BlobStore,
    LocalBlobStore,
    blobstore_from_url,
)


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_a_local_store_is_a_blob_store(store: LocalBlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_a_blob_put_can_be_got_back(store: LocalBlobStore) -> None:
    data = b"%PDF-1.7 ..."
    store.put(key_of(data), data)
    assert store.get(key_of(data)) == data
    assert store.exists(key_of(data))


@settings(max_examples=30)
@given(data=st.binary(max_size=8192))
def test_any_bytes_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    s = LocalBlobStore(tmp_path_factory.mktemp("blobs"))
    s.put(key_of(data), data)
    assert s.get(key_of(data)) == data


def test_blobs_fan_out_into_two_levels_of_directories(store: LocalBlobStore) -> None:
    key = key_of(b"x")
    store.put(key, b"x")
    assert all_files(store.root) == [f"{key[:2]}/{key[2:4]}/{key}"]


def test_blob_files_have_mode_0600(store: LocalBlobStore) -> None:
    old_umask = os.umask(0)
    try:
        store.put(key_of(b"x"), b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(store.path_for(key_of(b"x")).stat().st_mode) == 0o600


def test_getting_a_missing_key_raises_blob_not_found(store: LocalBlobStore) -> None:
    with pytest.raises(BlobNotFound) as info:
        store.get(key_of(b"never stored"))
    assert info.value.key == key_of(b"never stored")
    assert not store.exists(key_of(b"never stored"))


def test_putting_the_same_content_twice_is_fine(store: LocalBlobStore) -> None:
    store.put(key_of(b"x"), b"x")
    store.put(key_of(b"x"), b"x")
    assert store.get(key_of(b"x")) == b"x"
    assert len(all_files(store.root)) == 1


def test_putting_different_content_under_an_existing_key_is_refused_and_keeps_the_first(store: LocalBlobStore) -> None:
    key = key_of(b"first")
    store.put(key, b"first")
    with pytest.raises(BlobConflict):
        store.put(key, b"second")
    assert store.get(key) == b"first"
    assert len(all_files(store.root)) == 1  # and no temp file left


def test_delete_removes_a_blob_and_is_idempotent(store: LocalBlobStore) -> None:
    key = key_of(b"x")
    store.put(key, b"x")
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.get(key)
    store.delete(key)
    store.delete(key_of(b"never stored"))
    assert all_files(store.root) == []


def test_uuid_keys_are_accepted(store: LocalBlobStore) -> None:
    key = "0f8fad5b-d9cb-469f-a165-70867728950e"
    store.put(key, b"x")
    assert store.get(key) == b"x"


@pytest.mark.parametrize("key", [
    "", "abc", "../../etc/passwd", "ab/cd/ef", "..", "ABCDEF", "abcd\x00", "abcd/", "/abcd", "a" * 129,
    "abcd.tmp", "..abcd", "abcd efgh", "abcd\n",
])
def test_keys_outside_lowercase_hex_and_dashes_are_refused(store: LocalBlobStore, key: str) -> None:
    for op in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.delete(key),
               lambda: store.exists(key)):
        with pytest.raises(ValueError):
            op()
    assert all_files(store.root.parent) == []


def test_keys_of_up_to_128_characters_are_accepted(store: LocalBlobStore) -> None:
    store.put("a" * 128, b"x")
    assert store.get("a" * 128) == b"x"


def test_non_bytes_data_is_refused_before_anything_is_written(store: LocalBlobStore) -> None:
    with pytest.raises(TypeError):
        store.put(key_of(b"x"), "text")  # type: ignore[arg-type]
    assert all_files(store.root) == []


@pytest.mark.parametrize("failing", ["fsync", "link", "write"])
def test_a_put_failing_midway_leaves_no_file_behind(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch,
                                                    failing: str) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    if failing == "write":
        real_fdopen = os.fdopen

        class DiskFull:
            def __init__(self, fd: int, mode: str) -> None:
                self.f = real_fdopen(fd, mode)

            def __enter__(self) -> DiskFull:
                return self

            def __exit__(self, *exc: object) -> None:
                self.f.close()

            def fileno(self) -> int:
                return self.f.fileno()

            def write(self, data: bytes) -> int:
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                raise OSError(errno.ENOSPC, "simulated disk full")

        monkeypatch.setattr(blobstore.os, "fdopen", DiskFull)
    else:
        monkeypatch.setattr(blobstore.os, failing, boom)
    with pytest.raises(OSError):
        store.put(key_of(b"contents"), b"contents")
    monkeypatch.undo()
    assert all_files(store.root) == []
    assert not store.exists(key_of(b"contents"))
    store.put(key_of(b"contents"), b"contents")  # and the store still works
    assert store.get(key_of(b"contents")) == b"contents"


def test_a_put_failing_midway_leaves_the_existing_blob_intact(store: LocalBlobStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = key_of(b"x")
    store.put(key, b"x")

    def boom(fd: int) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(blobstore.os, "fsync", boom)
    with pytest.raises(OSError):
        store.put(key, b"x")
    monkeypatch.undo()
    assert store.get(key) == b"x"
    assert len(all_files(store.root)) == 1


def test_put_fsyncs_the_file_before_publishing_it_then_the_directory(store: LocalBlobStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def link(src: str, dst: str) -> None:
        events.append("publish")
        real_link(src, dst)

    store.put(key_of(b"warm"), b"warm")  # fan-out directories for other keys are created on demand
    monkeypatch.setattr(blobstore.os, "fsync", fsync)
    monkeypatch.setattr(blobstore.os, "link", link)
    key = key_of(b"x")
    store.put(key, b"x")
    assert events.index("fsync-file") < events.index("publish") < len(events) - 1
    assert events[-1] == "fsync-dir"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_put_into_a_read_only_directory_fails_cleanly(store: LocalBlobStore) -> None:
    store.put(key_of(b"x"), b"x")
    directory = store.path_for(key_of(b"x")).parent
    directory.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            store.put(key_of(b"x")[:4] + "0" * 60, b"y")
    finally:
        directory.chmod(0o700)
    assert len(all_files(store.root)) == 1


def test_without_hard_links_put_falls_back_to_rename(store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(blobstore.os, "link", no_links)
    store.put(key_of(b"x"), b"x")
    store.put(key_of(b"x"), b"x")
    with pytest.raises(BlobConflict):
        store.put(key_of(b"x"), b"y")
    assert store.get(key_of(b"x")) == b"x"
    assert len(all_files(store.root)) == 1


def test_leftover_temp_files_are_listed(store: LocalBlobStore) -> None:
    key = key_of(b"x")
    store.put(key, b"x")
    leftover = store.path_for(key).parent / f".tmp-{key}-1-abc"
    leftover.write_bytes(b"partial")
    assert store.leftover_temp_files() == [leftover]


# -- from a URL --------------------------------------------------------------------------------------------------------


def test_a_file_url_makes_a_local_store(tmp_path: Path) -> None:
    s = blobstore_from_url(f"file://{tmp_path}/blobs")
    assert isinstance(s, LocalBlobStore) and s.root == tmp_path / "blobs"


def test_a_file_url_is_percent_decoded(tmp_path: Path) -> None:
    s = blobstore_from_url(f"file://{tmp_path}/my%20blobs")
    assert isinstance(s, LocalBlobStore) and s.root == tmp_path / "my blobs"


def test_a_plain_path_makes_a_local_store(tmp_path: Path) -> None:
    s = blobstore_from_url(str(tmp_path / "blobs"))
    assert isinstance(s, LocalBlobStore) and s.root == tmp_path / "blobs" and s.root.is_dir()


def test_an_s3_url_is_not_implemented_yet() -> None:
    with pytest.raises(NotImplementedError, match="S3"):
        blobstore_from_url("s3://bucket/prefix")


@pytest.mark.parametrize("url", ["", "file://otherhost/blobs", "file:relative/blobs", "http://example.org/blobs"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        blobstore_from_url(url)
