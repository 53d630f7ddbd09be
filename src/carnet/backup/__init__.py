"""Backups and restores of a whole deployment: the database (a consistent snapshot), the blobs it references, the
master keys and the files and directories listed in :data:`carnet.backup.service.ITEMS`, with a manifest of SHA-256
that a restore verifies first (docs/OPERATIONS.md)."""

from carnet.backup.database import DatabaseBackupError
from carnet.backup.manifest import ManifestError
from carnet.backup.service import ITEMS, BackupError, Item, Report, create, restore, summary

__all__ = ["ITEMS", "BackupError", "DatabaseBackupError", "Item", "ManifestError", "Report", "create", "restore",
           "summary"]
