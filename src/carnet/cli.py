"""The ``carnet`` command (Typer). Commands that touch dossiers act through the same services, policy and audit as
the API, as an ``operator`` actor (which the policy never lets read content)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from carnet.cli_audit import audit_app, checked_services
from carnet.config import Settings

app = typer.Typer(help="Carnet, a shared medical record server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
practitioner_app = typer.Typer(help="The professionals' directory.", no_args_is_help=True)
client_app = typer.Typer(help="API clients (professionals' software, portals, Assurance Maladie).",
                         no_args_is_help=True)
keys_app = typer.Typer(help="Master keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(practitioner_app, name="practitioner")
app.add_typer(client_app, name="client")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
outbox_app = typer.Typer(help="Notifications waiting, sent, failed.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
ingest_app = typer.Typer(help="Feeds from outside systems (Assurance Maladie, Apple Health).", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
blobs_app = typer.Typer(help="Document contents at rest (local files or S3).", no_args_is_help=True)
app.add_typer(blobs_app, name="blobs")
backup_app = typer.Typer(help="Backups of the whole deployment, and their restore (docs/OPERATIONS.md).",
                         no_args_is_help=True)
app.add_typer(backup_app, name="backup")
console = Console()


def _trace(conn: Any, action: str, event: str, entity_type: str, entity_id: str) -> None:
    """Operators' changes to the directory, the clients and the keys go to the system audit chain."""
    import datetime as dt
    import getpass

    from carnet.access.actors import Actor, ActorKind
    from carnet.audit.log import record
    from carnet.ids import SYSTEM_CHAIN

    record(conn, dossier_key=SYSTEM_CHAIN, actor=Actor(ActorKind.OPERATOR, id=f"cli:{getpass.getuser()}"),
           action=action, event=event, now=dt.datetime.now(dt.UTC), entity_type=entity_type, entity_id=entity_id)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the configured database."""
    from carnet.db.migrate import upgrade

    settings = Settings()
    settings.ensure_var()
    upgrade(settings.effective_database_url)
    console.print("[green]database up to date[/green]")


@db_app.command("distribute")
def db_distribute() -> None:
    """On Citus: make the reference tables and distribute every other table by its key, co-located, as declared in
    carnet/db/distribution.toml (run after `carnet db upgrade`; running it again changes nothing)."""
    from carnet.db.distribution import distribute
    from carnet.db.engine import make_engine

    settings = Settings()
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            done = distribute(conn)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for line in done:
        console.print(line)
    console.print(f"[green]{len(done)} tables placed; every table is where distribution.toml says[/green]")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          with_worker: bool = typer.Option(False, help="also deliver notifications, in a thread of this process")
          ) -> None:
    """Serve the API (uvicorn; several processes share the port with SO_REUSEPORT)."""
    from carnet.server import serve as run_server

    run_server(host, port, workers, with_worker=with_worker)


@app.command()
def demo() -> None:
    """Seed synthetic demo data (idempotent) and print how to use it."""
    from carnet.demo import seed

    services = checked_services()
    info = seed(services)
    base = services.settings.base_url
    console.print("[bold]Carnet demo data is ready.[/bold] All identities are synthetic.")
    table = Table("professional", "national id (IDNPS)")
    for name, nid in info["professionals"].items():
        table.add_row(name, nid)
    console.print(table)
    table = Table("patient", "INS (demo OID)")
    for name, ins in info["patients"].items():
        table.add_row(name, ins)
    console.print(table)
    console.print(f"Demo client: [bold]demo-practice[/bold], private key {services.settings.var_dir}/"
                  "demo-client-key.json")
    console.print(f"Try: [bold]curl {base}/fhir/metadata[/bold] and "
                  f"[bold]python examples/walkthrough.py --base {base}[/bold]")
    from carnet.demo import DEMO_PARENT_EMAIL, DEMO_PASSWORD

    console.print(f"Patient portal: [bold]{base}/portal/[/bold] — sign in as Jeanne Lefèvre (identifier "
                  f"{info['patients']['Lefèvre']}) or as Lucas's mother ({DEMO_PARENT_EMAIL}), password "
                  f"[bold]{DEMO_PASSWORD}[/bold]; the one-time code arrives in {services.settings.var_dir}/mail/ "
                  "(newest file). Activation letters (for the activation page) are in "
                  f"{services.settings.var_dir}/post/.")
    reviewers = ", ".join(sorted(services.settings.reviewers)) or "none: set CARNET_REVIEWERS (national ids)"
    console.print(f"Clinician portal: [bold]{base}/pro/[/bold] — sign in through the demo identity provider as any "
                  "professional above (no password in the demo; Pro Santé Connect when CARNET_PSC_ISSUER is set). "
                  f"Reviewers of emergency accesses ({base}/pro/review): {reviewers}.")
    console.print("Patient app (SMART standalone launch): client [bold]demo-patient-app[/bold]; try "
                  f"[bold]python examples/patient_app.py --base {base} --client-id demo-patient-app --login "
                  f"{info['patients']['Lefèvre']} --password {DEMO_PASSWORD} --mail-dir "
                  f"{services.settings.var_dir}/mail[/bold] (docs/SMART.md).")


@practitioner_app.command("add")
def practitioner_add(family: str = typer.Option(...), given: str = typer.Option(...),
                     profession: str = typer.Option(..., help="TRE_G15 code: 10 médecin, 21 pharmacien, ..."),
                     rpps: str | None = None, adeli: str | None = None, specialty: str | None = None,
                     organisation_id: str | None = None, organisation_name: str | None = None,
                     regulator: bool = typer.Option(False, help="SAMU centre-15 regulating doctor")) -> None:
    """Add or update a professional."""
    from carnet.admin import add_practitioner
    from carnet.identity.ins import InvalidIdentifier

    services = checked_services()
    try:
        with services.engine.begin() as conn:
            nid = add_practitioner(conn, rpps=rpps, adeli=adeli, family=family, given=given, profession=profession,
                                   specialty=specialty, organisation_id=organisation_id,
                                   organisation_name=organisation_name, regulator=regulator)
            _trace(conn, "U", "directory.practitioner", "Practitioner", nid)
    except InvalidIdentifier as exc:
        console.print(f"[red]{exc.field}: {exc.reason}[/red]")
        raise typer.Exit(2) from None
    console.print(nid)


@practitioner_app.command("list")
def practitioner_list() -> None:
    """List the directory."""
    from carnet.admin import list_practitioners

    services = checked_services()
    table = Table("national id", "name", "profession", "specialty", "organisation", "regulator", "enabled")
    with services.engine.connect() as conn:
        for r in list_practitioners(conn):
            table.add_row(r.national_id, f"{r.given} {r.family}", r.profession, r.specialty or "",
                          r.organisation_id or "", "yes" if r.is_regulator else "", "yes" if r.enabled else "NO")
    console.print(table)


@practitioner_app.command("disable")
def practitioner_disable(national_id: str) -> None:
    """Disable a professional: their tokens stop working at once."""
    from carnet.admin import set_practitioner_enabled

    with checked_services().engine.begin() as conn:
        if not set_practitioner_enabled(conn, national_id, False):
            console.print("[red]no such professional[/red]")
            raise typer.Exit(1)
        _trace(conn, "U", "directory.disable", "Practitioner", national_id)
    console.print("disabled")


@client_app.command("add")
def client_add(name: str = typer.Option(...), jwks: Path | None = typer.Option(None, exists=True),
               client_id: str | None = None,
               kind: str = typer.Option("professional",
                                        help="professional | patient_portal | assurance_maladie | patient_app"),
               scopes: str | None = None,
               redirect_uri: list[str] | None = typer.Option(  # noqa: B008
                   None, help="patient_app: a redirect URI (repeat the option for several)")) -> None:
    """Register a client with its public JWKS (a patient_app: with its redirect URIs and no JWKS)."""
    import uuid

    from carnet.admin import add_client

    cid = client_id or str(uuid.uuid4())
    if jwks is None and kind != "patient_app":
        console.print("[red]--jwks is required for this kind of client[/red]")
        raise typer.Exit(2)
    try:
        with checked_services().engine.begin() as conn:
            add_client(conn, client_id=cid, name=name, kind=kind,
                       jwks=json.loads(jwks.read_text()) if jwks else None, scopes=scopes,
                       redirect_uris=list(redirect_uri or []))
            _trace(conn, "U", "client.register", "Device", cid)
    except (ValueError, json.JSONDecodeError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(cid)


@client_app.command("list")
def client_list() -> None:
    from carnet.admin import list_clients

    table = Table("client id", "name", "kind", "enabled")
    with checked_services().engine.connect() as conn:
        for r in list_clients(conn):
            table.add_row(r.client_id, r.name, r.kind, "yes" if r.enabled else "NO")
    console.print(table)


@client_app.command("disable")
def client_disable(client_id: str) -> None:
    """Disable a client: its tokens stop working at once."""
    from carnet.admin import set_client_enabled

    with checked_services().engine.begin() as conn:
        if not set_client_enabled(conn, client_id, False):
            console.print("[red]no such client[/red]")
            raise typer.Exit(1)
        _trace(conn, "U", "client.disable", "Device", client_id)
    console.print("disabled")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Create a new master key, make it current, and re-wrap every document key with it (short transactions: the
    nodes keep serving; a node that shares the key file picks the new key up within a second)."""
    from carnet.admin import check_master_keys
    from carnet.context import _key_path

    services = checked_services()
    if services.settings.master_key:
        console.print("[red]CARNET_MASTER_KEY is set: rotate in your key store, then re-run with the new spec[/red]")
        raise typer.Exit(2)
    old = services.keyring.current_id
    kid = services.keyring.add_new_key(_key_path(services.settings))
    check_master_keys(services.engine, services.keyring)  # registers the new key's check value
    with services.engine.begin() as conn:
        _trace(conn, "U", "keys.rotate", "Key", kid)
    n = _rewrap(services)
    console.print(f"current key {kid}; {n} document keys re-wrapped. Documents published while nodes still used "
                  f"{old} keep it: run [bold]carnet keys rewrap[/bold] later, then [bold]carnet keys retire {old}"
                  "[/bold] once no document uses it.")


def _rewrap(services: Any) -> int:
    from carnet.admin import rewrap_all

    total = 0
    while True:
        with services.engine.begin() as conn:
            n = rewrap_all(conn, services.keyring, batches=1)
        total += n
        if n == 0:
            return total


@keys_app.command("rewrap")
def keys_rewrap() -> None:
    """Re-wrap the document keys still under an older master key with the current one."""
    services = checked_services()
    n = _rewrap(services)
    with services.engine.begin() as conn:
        _trace(conn, "U", "keys.rewrap", "Key", services.keyring.current_id)
    console.print(f"{n} document keys re-wrapped under {services.keyring.current_id}")


@keys_app.command("retire")
def keys_retire(key_id: str) -> None:
    """Remove an older master key from the key file, once no document is wrapped under it."""
    from carnet.admin import retire_master_key
    from carnet.context import _key_path

    services = checked_services()
    if services.settings.master_key:
        console.print("[red]CARNET_MASTER_KEY is set: remove the key from your key store's spec instead[/red]")
        raise typer.Exit(2)
    if key_id == services.keyring.current_id or key_id not in services.keyring:
        console.print(f"[red]{key_id} is the current key or not in the key ring[/red]")
        raise typer.Exit(2)
    with services.engine.begin() as conn:
        still = retire_master_key(conn, services.keyring, key_id)
        if still:
            console.print(f"[red]{still} documents are still wrapped under {key_id}: carnet keys rewrap first[/red]")
            raise typer.Exit(1)
        _trace(conn, "D", "keys.retire", "Key", key_id)
    services.keyring.remove(key_id, _key_path(services.settings))
    console.print(f"{key_id} retired")


@backup_app.command("create")
def backup_create(directory: Path = typer.Argument(..., help="a new (or empty) directory")) -> None:
    """Back up the database (a consistent snapshot), the blobs it references, the master keys and the files listed
    in carnet.backup.ITEMS, with a manifest of SHA-256."""
    from carnet.backup import BackupError, create, summary

    services = checked_services()
    try:
        report = create(services.settings, services.engine, services.keyring, services.blobs, directory)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    with services.engine.begin() as conn:
        _trace(conn, "E", "backup.create", "Backup", report.created)
    print(json.dumps(summary(report)))  # one line, for scripts
    console.print(f"backup written to {directory}. It holds the master keys (keys/): keep it where only the "
                  "operators of this deployment can read it.")


@backup_app.command("restore")
def backup_restore(directory: Path = typer.Argument(..., exists=True, file_okay=False)) -> None:
    """Restore a backup into the configured (empty) database, blob store and files; verifies the manifest first,
    checks every document's blob and data key and the audit chains after."""
    from carnet.backup import BackupError, restore, summary
    from carnet.db.engine import make_engine

    settings = Settings()
    settings.ensure_var()
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        report = restore(settings, engine, directory)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    print(json.dumps({**summary(report), "audit_problems": report.audit_problems}))  # one line, for scripts
    if report.audit_problems:
        console.print("[red]the restored audit chains do not verify: carnet audit verify lists the problems[/red]")
        raise typer.Exit(1)
    console.print("restored; start Carnet on it")


@app.command()
def purge() -> None:
    """Erase the dossiers closed for longer than the retention period (CARNET_RETENTION_YEARS, default 10)."""
    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.dossier.service import purge_due

    services = checked_services()
    keys = run(services, Actor(ActorKind.OPERATOR, id="carnet-purge"), purge_due)
    console.print(f"{len(keys)} dossiers purged")
    from carnet.claims.service import purge_old

    lines = run(services, Actor(ActorKind.OPERATOR, id="carnet-purge"), purge_old)
    console.print(f"{lines} claim lines older than {services.settings.claims_months} months removed")


@app.command()
def worker(once: bool = typer.Option(False, help="one pass, then exit"),
           interval: float = typer.Option(1.0, help="seconds between passes")) -> None:
    """Deliver notifications from the outbox (email, SMS, letters) and run the periodic notification job."""
    from carnet.notify import worker as notify_worker

    services = checked_services()
    if once:
        r = notify_worker.run_once(services)
        console.print(f"{r.sent} sent, {r.retried} to retry, {r.failed} failed, {r.uncertain} uncertain, "
                      f"{r.announced} announcements queued")
        if r.jobs_failed:  # logged by type only; a non-zero exit so that cron or a supervisor shows it
            console.print(f"periodic jobs failed: {', '.join(r.jobs_failed)} (see the log: worker.job.error)")
            raise typer.Exit(1)
        return
    console.print(f"delivering notifications every {interval:g} s; Ctrl-C to stop")
    try:
        notify_worker.loop(services, interval)
    except KeyboardInterrupt:
        pass


@blobs_app.command("migrate")
def blobs_migrate(to: str = typer.Option(..., "--to", help="the target store, s3://bucket/prefix")) -> None:
    """Copy every blob of the configured store to another (resumable, each blob verified by hash); the source is
    kept."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from carnet.blobs import BlobStoreError, blobstore_from_url
    from carnet.blobs.migrate import migrate

    settings = Settings()
    source, target = blobstore_from_url(settings.effective_blob_url), blobstore_from_url(to)
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[n]}"),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("copying", total=None, n="", rate="")

        def step(_: str, r: Any) -> None:
            progress.update(task, total=r.total, completed=r.copied + r.skipped + len(r.failed),
                            n=f"{r.copied + r.skipped}/{r.total} blobs",
                            rate=f"{progress.tasks[0].speed or 0:.1f} blobs/s")
        try:
            report = migrate(source, target, on_blob=step)
        except BlobStoreError as exc:
            console.print(f"[red]stopped: {exc}[/red] (run the command again to resume)")
            raise typer.Exit(1) from None
    console.print(f"{report.copied} copied ({report.bytes_copied} bytes), {report.skipped} already there, "
                  f"{len(report.failed)} failed verification")
    if report.failed:
        raise typer.Exit(1)
    console.print(f"every blob is in {to}, verified. Next: set CARNET_BLOB_URL={to} (and the AWS_* settings) on "
                  f"every node, restart, then remove {settings.effective_blob_url} once satisfied.")


@blobs_app.command("gc")
def blobs_gc(grace: str = typer.Option("", help="e.g. 24h, 90m, 2d (default: CARNET_BLOB_GC_GRACE_HOURS)"),
             dry_run: bool = typer.Option(False, "--dry-run", help="count, remove nothing"),
             force: bool = typer.Option(False, help="accept a grace shorter than 4 x CARNET_TRANSACTION_SECONDS")
             ) -> None:
    """Remove the blobs that no row references, once older than the grace period (and stale temp files)."""
    import datetime as dt

    from carnet.documents.blob_gc import collect, minimum_grace

    services = checked_services()
    period = _duration(grace) if grace else dt.timedelta(hours=services.settings.blob_gc_grace_hours)
    if period < minimum_grace(services) and not force:
        console.print(f"[red]a grace of {period} could remove the blob of a transaction still in flight (minimum "
                      f"{minimum_grace(services)}); use --force to accept it[/red]")
        raise typer.Exit(2)
    r = collect(services, grace=period, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{r.scanned} blobs, {r.old} older than {period}: {verb} {r.removed} unreferenced, "
                  f"{r.leftovers} leftovers of interrupted writes")


def _duration(text: str) -> Any:
    import datetime as dt

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    try:
        return dt.timedelta(**{units[text[-1]]: float(text[:-1])}) if text[-1] in units else \
            dt.timedelta(hours=float(text))
    except ValueError:
        raise typer.BadParameter(f"not a duration: {text!r} (e.g. 24h, 90m, 2d)") from None


@ingest_app.command("claims")
def ingest_claims(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                  batch: int = typer.Option(20000, min=1, help="lines per transaction")) -> None:
    """Ingest an Assurance Maladie claims file (docs/CLAIMS.md): streaming, idempotent; bad lines are reported by
    number and reason, never content."""
    from rich import progress as rp

    from carnet.claims.ingest import HeaderError, ingest

    services = checked_services()
    err = Console(stderr=True)
    size = file.stat().st_size
    columns = (rp.TextColumn("claims"), rp.BarColumn(), rp.DownloadColumn(), rp.TransferSpeedColumn(),
               rp.TextColumn("{task.fields[lines]} lines"), rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=err, transient=False) as bar, file.open("rb") as f:
        task = bar.add_task("ingest", total=size, lines=0)
        try:
            s = ingest(services, f, batch=batch,
                       progress=lambda done, lines: bar.update(task, completed=done, lines=lines),
                       on_bad=lambda n, reason: bar.console.print(f"[yellow]line {n}[/yellow]: {reason}"))
        except HeaderError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(f"{s.read} read, {s.inserted} inserted, {s.duplicates} duplicates, {s.bad} bad, "
                  f"{s.unknown} unknown patients, {s.too_old} too old; {s.rate:,.0f} lines/s "
                  f"({s.seconds:.1f} s), {s.dossiers} dossiers updated")


@ingest_app.command("measurements")
def ingest_measurements(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                        dossier: str = typer.Option(..., help="the patient's INS or dossier key")) -> None:
    """Import an Apple Health export.zip into the patient's measurements, streamed (docs/MEASUREMENTS.md)."""
    from carnet.measures.apple import import_as_patient
    size, err = max(file.stat().st_size, 1), Console(stderr=True)
    console.print(import_as_patient(checked_services(), dossier, str(file), lambda done, r: err.print(
        f"{done * 100 // size} %  {r.records} records", end="\r")).text())


@outbox_app.command("list")
def outbox_list(status: list[str] | None = typer.Option(None, help="pending, sending, sent, failed, uncertain"),
                limit: int = 100) -> None:
    """The latest notifications, newest first (addresses masked)."""
    from rich.table import Column

    from carnet.notify.outbox import latest, mask_address

    table = Table("event", "channel", "address", "status", "attempts", "last error", "created")
    table.columns.insert(0, Column("id", min_width=36, no_wrap=True))  # whole, to copy into `outbox retry`
    with checked_services().engine.connect() as conn:
        for r in latest(conn, status, limit):
            style = {"failed": "red", "uncertain": "yellow"}.get(r.status, "")
            table.add_row(str(r.message_id), r.event, r.channel, mask_address(r.channel, r.address),
                          f"[{style}]{r.status}[/{style}]" if style else r.status, str(r.attempts),
                          r.last_error or "", r.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(message_id: str) -> None:
    """Send a failed or uncertain notification again (an uncertain one may then arrive twice)."""
    import uuid

    from carnet.notify.worker import retry

    try:
        mid = uuid.UUID(message_id)
    except ValueError:
        console.print("[red]not a message id[/red]")
        raise typer.Exit(2) from None
    services = checked_services()
    with services.engine.begin() as conn:
        if not retry(conn, mid, services.clock()):
            console.print("[red]no failed or uncertain message with this id[/red]")
            raise typer.Exit(1)
        _trace(conn, "U", "outbox.retry", "Communication", str(mid))
    console.print("queued again")


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
