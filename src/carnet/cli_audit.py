"""``carnet audit …``: verify the chains, sign checkpoints, archive past months (docs/AUDIT.md). Registered on the
``carnet`` command by :mod:`carnet.cli`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from carnet.config import Settings

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
console = Console()


def checked_services() -> Any:
    """The process's services, once its master keys are the ones the database knows (:class:`carnet.admin.KeyMismatch`
    otherwise: exit 2). Every command of :mod:`carnet.cli` and of this module starts with it."""
    from carnet.admin import KeyMismatch, check_master_keys
    from carnet.compose import build_services

    services = build_services(Settings())
    try:
        check_master_keys(services.engine, services.keyring)
    except KeyMismatch as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return services


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every hash chain, from the archived months into the live table, and check the chains and the
    archives against the signed checkpoints (docs/AUDIT.md); exit 1 if any record was altered, removed or reordered,
    a chain truncated, rewound or deleted, a checkpoint is missing, altered or forged, or an archive is missing or
    altered."""
    from carnet.audit.anchor import from_settings
    from carnet.audit.anchor_verify import verify
    from carnet.audit.archive import store_from_settings
    from carnet.audit.log import verify_all

    services = checked_services()
    with services.engine.connect() as conn:
        report = verify(conn, from_settings(services.settings), store_from_settings(services.settings))
        chains, records, findings = verify_all(conn, report.archives.runs)
    for f in findings:
        console.print(f"[red]{f.problem}[/red] chain {f.dossier_key} at seq {f.seq}")
    for p in report.problems:
        console.print(f"[red]{p.problem}[/red] {p.where}" + (f": {p.detail}" if p.detail else ""))
    latest = f", the latest at {report.latest_time:%Y-%m-%d %H:%M:%S} UTC" if report.latest_time else ""
    archived = (f" ({report.archives.records} of them in {report.archives.files} archives)"
                if report.archives.files else "")
    console.print(f"{chains} chains, {records} records{archived}, {report.checkpoints} checkpoints{latest} "
                  f"({report.heads} committed heads, {report.purged} chains purged after retention), "
                  f"{len(findings) + len(report.problems)} problems")
    if findings or report.problems:
        raise typer.Exit(1)


@audit_app.command("archive")
def audit_archive(before: str = typer.Option(..., "--before", help="YYYY-MM: archive every month before this one")
                  ) -> None:
    """Write every audit month before BEFORE still in the database to the archive store as a signed file that
    verifies on its own, read it back, then drop the month (docs/AUDIT.md "Archives"). Refuses the current month,
    and a month some record of which no checkpoint commits to yet. Running it again does nothing more."""
    from carnet.audit.anchor import from_settings
    from carnet.audit.archive import ArchiveRefused, archive_before, store_from_settings
    from carnet.audit.partitions import month_text, parse_month

    try:
        month = parse_month(before)
    except ValueError as exc:
        console.print(f"[red]--before {exc}[/red]")
        raise typer.Exit(2) from None
    services = checked_services()
    try:
        done = archive_before(services.engine, store_from_settings(services.settings),
                              from_settings(services.settings), month, services.clock(),
                              checkpoints_on=services.settings.checkpoint_seconds > 0)
    except ArchiveRefused as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for d in done:
        if not d.key:
            console.print(f"{month_text(d.month)}: no records, its empty partition dropped")
            continue
        console.print(f"{month_text(d.month)}: {d.records} records in archive {d.key}"
                      + ("" if d.written else " (already written by an earlier run)") + ", dropped")
    if not done:
        console.print(f"nothing to archive before {month_text(month)}")


@audit_app.command("partitions")
def audit_partitions() -> None:
    """Make this month's audit partition and the next CARNET_AUDIT_PARTITIONS_AHEAD (the worker does it too), and
    list the months the database holds (PostgreSQL)."""
    from carnet.audit.partitions import attached, default_months, make_ahead, month_text, partitioned

    services = checked_services()
    made = make_ahead(services.engine, services.clock(), services.settings.audit_partitions_ahead)
    with services.engine.connect() as conn:
        if not partitioned(conn):
            console.print("the audit table is not partitioned here (SQLite): nothing to do")
            return
        months, stray = attached(conn), default_months(conn)
    console.print(f"made: {', '.join(map(month_text, made)) or 'none'}; partitions: "
                  f"{', '.join(map(month_text, months))}; months in the default partition: "
                  f"{', '.join(map(month_text, stray)) or 'none'}")


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint of every chain head that moved since the last one, now (the worker does it every
    CARNET_CHECKPOINT_SECONDS)."""
    from carnet.audit.anchor import checkpoint, from_settings

    services = checked_services()
    made = checkpoint(services.engine, from_settings(services.settings), services.clock)
    console.print(f"checkpoints {', '.join(map(str, made))} written" if made else "no chain moved: no checkpoint")


@audit_app.command("public-key")
def audit_public_key() -> None:
    """Print the checkpoint key's public part (id, base64, PEM): all a verifier needs."""
    from carnet.audit.anchor import from_settings
    from carnet.audit.anchor_verify import public_key_text

    print(public_key_text(from_settings(Settings())))


@audit_app.command("verify-receipt")
def audit_verify_receipt(receipt: Path, history: Path, bundle: Path | None = typer.Argument(None)) -> None:
    """Check a complete copy's audit/receipt.json against its audit/history.json (and fhir/bundle.json), offline."""
    from carnet.audit.receipt import main

    code = main([str(receipt), str(history), *([str(bundle)] if bundle else [])])
    if code:
        raise typer.Exit(code)
