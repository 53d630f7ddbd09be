from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carnet.blobs import BlobConflict, LocalBlobStore, blobstore_from_url
from carnet.blobs import local as blobstore


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")




@settings(max_examples=30)
@given(data=st.binary(max_size=8192))
def test_any_bytes_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    s = LocalBlobStore(tmp_path_factory.mktemp("blobs"))
    s.put(key_of(data), data)
    assert s.get(key_of(data)) == data


def test_blobs_fan_out_into_two_levels_of_directories(store: LocalBlobStore) -> None:
    key = key_of(b"x")
    store.put(key, b"x")
    assert all_files(store.root) == [f"{key[-2:]}/{key[-4:-2]}/{key}"]


def test_time_ordered_keys_written_together_spread_over_directories(store: LocalBlobStore) -> None:
    """Document blobs are keyed by UUIDv7s (hex), which begin with the time: a thousand written in the same instant
    share their first four characters, and must not all land in one directory (they did before 2026-12)."""
    from carnet.ids import new_id

    keys = [new_id().hex for _ in range(1000)]
    assert len({k[:4] for k in keys}) == 1
    for k in keys:
        store.put(k, k.encode())
    directories = {str(Path(f).parent) for f in all_files(store.root)}
    assert len(directories) > 500  # 65,536 possible: a thousand random tails fill about 990
    assert {k for k, _ in store.iter_blobs()} == set(keys)


def test_blobs_of_the_earlier_layout_are_still_read_listed_and_deleted(store: LocalBlobStore) -> None:
    key, other = key_of(b"old"), key_of(b"new")
    legacy = store.root / key[0:2] / key[2:4] / key  # where versions before 2026-12 wrote it
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"old")
    store.put(other, b"new")
    assert store.get(key) == b"old" and b"".join(store.get_stream(key)) == b"old" and store.exists(key)
    assert {k for k, _ in store.iter_blobs()} == {key, other}
    store.put(key, b"old")  # the same bytes again: nothing changes, no second copy
    assert all_files(store.root) == sorted([f"{key[0:2]}/{key[2:4]}/{key}", f"{other[-2:]}/{other[-4:-2]}/{other}"])
    with pytest.raises(BlobConflict):  # other bytes under its key: refused, as for a blob in the new layout
        store.put(key, b"changed")
    assert store.get(key) == b"old" and len(all_files(store.root)) == 2
    store.delete(key)
    assert not store.exists(key) and all_files(store.root) == [f"{other[-2:]}/{other[-4:-2]}/{other}"]


def test_blob_files_have_mode_0600(store: LocalBlobStore) -> None:
    old_umask = os.umask(0)
    try:
        store.put(key_of(b"x"), b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(store.path_for(key_of(b"x")).stat().st_mode) == 0o600







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


def test_an_s3_url_makes_an_s3_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from carnet.blobs.s3 import S3BlobStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    s = blobstore_from_url("s3://carnet-docs/prod/blobs/")
    assert isinstance(s, S3BlobStore) and (s.bucket, s.prefix) == ("carnet-docs", "prod/blobs")
    assert s.url == "s3://carnet-docs/prod/blobs"


@pytest.mark.parametrize("url", ["", "file://otherhost/blobs", "file:relative/blobs", "http://example.org/blobs", "s3://",
                                 "s3:///prefix", "s3://bucket/prefix?endpoint=x"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        blobstore_from_url(url)
