"""A backup's manifest (``MANIFEST.json``): every file of the backup with its size and SHA-256, and what the backup
holds. A restore reads nothing before the whole manifest verifies: a file missing, added, shorter, longer or altered
refuses the backup.

The manifest protects against damage (a bad disk, a truncated copy, a file forgotten), not against someone who can
rewrite the backup: whoever can change a file can change the manifest too. Keep backups where their writers are
controlled, as for the database itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "MANIFEST", "ManifestError", "hash_file", "read", "verify", "write"]

FORMAT = "carnet-backup/1"
MANIFEST = "MANIFEST.json"
_CHUNK = 1024 * 1024


class ManifestError(Exception):
    """The backup does not match its manifest (or has none); the message names the file."""


def hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def write(root: Path, about: dict[str, Any]) -> dict[str, Any]:
    """Hash every file under ``root`` and write the manifest (fsync'd) with ``about``; returns it."""
    files = {}
    for rel in _files(root):
        digest, size = hash_file(root / rel)
        files[rel] = {"sha256": digest, "size": size}
    manifest = {"format": FORMAT, **about, "files": files}
    path = root / MANIFEST
    with path.open("w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return manifest


def read(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path} is missing: not a Carnet backup")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ManifestError(f"{path} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"),
                                                                                              dict):
        raise ManifestError(f"{path} is not a {FORMAT} manifest")
    return manifest


def verify(root: Path) -> dict[str, Any]:
    """The manifest, once every file has its listed size and SHA-256 and no file is unlisted; else ManifestError."""
    manifest = read(root)
    listed: dict[str, Any] = manifest["files"]
    present = set(_files(root))
    if missing := sorted(set(listed) - present):
        raise ManifestError(f"{len(missing)} files of the manifest are missing, first {missing[0]}")
    if extra := sorted(present - set(listed)):
        raise ManifestError(f"{len(extra)} files are not in the manifest, first {extra[0]}")
    for rel, want in listed.items():
        digest, size = hash_file(root / rel)
        if (digest, size) != (want.get("sha256"), want.get("size")):
            raise ManifestError(f"{rel} does not match the manifest (size or SHA-256)")
    return manifest
