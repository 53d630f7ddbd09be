"""``carnet ingest claims FILE``: Assurance Maladie's claims file becomes each patient's care history.

The file (format in ``docs/CLAIMS.md``) is read line by line from a binary stream, so a file larger than memory works;
valid lines are gathered into batches, and each batch is written in its own transaction as the Assurance Maladie
actor. Per batch, the policy is asked once per dossier (set-wise: one query loads every dossier the batch names) whether
Assurance Maladie may add reimbursement data (class 60); lines for a dossier that is unknown or closed are counted,
never written. Lines go in with ``ON CONFLICT DO NOTHING`` on ``(dossier_key, line_hash)``, where ``line_hash`` is the
SHA-256 of the normalised line: ingesting the same file twice changes nothing. Every dossier that received lines in a
batch gets one audit record ("claims.ingest", detail: lines inserted) through the bulk append
:func:`carnet.audit.log.record_many`; a batch that inserted nothing for a dossier leaves no record.

PostgreSQL path: the batch is COPied into a temporary staging table, then one ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING RETURNING dossier_key``. SQLite path: one executemany per dossier.

Bad lines are reported with their number and a reason, never their content (health data).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text

from carnet.access.actors import Actor, ActorKind
from carnet.access.policy import REIMBURSEMENT_CLASS, DossierFacts, Standing, decide
from carnet.audit import log as audit_log
from carnet.context import Context, Services, run
from carnet.db.tables import claim_line, dossier, ins_lookup
from carnet.identity.ins import InvalidIdentifier, normalize_nir
from carnet.identity.professionals import normalize_rpps

HEADER = ("nir", "care_date", "kind", "code_system", "code", "label", "prescriber", "amount")
KINDS = frozenset({"act", "consultation", "drug", "biology", "device", "transport", "other"})
CODE_SYSTEMS = frozenset({"CCAM", "NGAP", "CIP13"})
ASSURANCE_MALADIE = Actor(ActorKind.ASSURANCE_MALADIE, id="assurance-maladie", display="Assurance Maladie")
DEFAULT_BATCH = 20000
MAX_REPORTED = 1000  # bad lines kept in the summary (all are counted and passed to ``on_bad``)

_CCAM = re.compile(r"[A-Z]{4}[0-9]{3}")
_NGAP = re.compile(r"([A-Z]{1,5}) ?([0-9]{1,3}(?:\.[0-9]{1,2})?)?")
_CIP13 = re.compile(r"3400[0-9]{9}")
_AMOUNT = re.compile(r"-?[0-9]{1,7}(?:[.,][0-9]{1,2})?")


class BadLine(ValueError):
    """A line was refused; ``reason`` names the column at fault, never its value."""


def ean13_valid(code: str) -> bool:
    """CIP13 codes are EAN-13 (GS1 prefix 340 for France): the 13th digit is the check digit, weights 1,3,1,3..."""
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(code[:12]))
    return (10 - total % 10) % 10 == int(code[12])


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` calendar months earlier (the last day of that month when it is shorter)."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    m += 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(y, m, min(d, 31))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def window_start(now: dt.datetime, months: int) -> dt.date:
    """The oldest care date kept: lines dated before it are outside the rolling window."""
    return months_before(now.date(), months)


@dataclass(slots=True)
class ClaimLine:
    nir: str
    care_date: dt.date
    kind: str
    code_system: str
    code: str
    label: str
    prescriber: str | None  # the prescriber's national id ("8" + RPPS)
    amount_cents: int | None
    line_hash: str


def normalise_code(system: str, code: str) -> str:
    code = " ".join(code.upper().split())
    if system == "CCAM":
        if not _CCAM.fullmatch(code):
            raise BadLine("code: a CCAM code is 4 letters and 3 digits")
        return code
    if system == "NGAP":
        m = _NGAP.fullmatch(code)
        if not m:
            raise BadLine("code: an NGAP code is a key letter group and an optional coefficient")
        return m.group(1) if m.group(2) is None else f"{m.group(1)} {m.group(2)}"
    code = code.replace(" ", "")
    if not _CIP13.fullmatch(code):
        raise BadLine("code: a CIP13 code is 13 digits starting with 3400")
    if not ean13_valid(code):
        raise BadLine("code: the CIP13 check digit is wrong")
    return code


class Caches:
    """Verdicts on values a claims file repeats (NIRs, dates, kind/system/code triples, labels, prescribers,
    amounts): each distinct raw value is checked once per ingest. A verdict is the normalised value, or a
    :class:`BadLine` to raise again. Each cache stops growing at its limit, so memory stays bounded whatever the
    file; a value met after that is checked each time it comes."""

    LIMIT = 1_000_000
    SMALL_LIMIT = 100_000  # labels and amounts: more distinct values, each cheap to check again

    def __init__(self) -> None:
        self.nir: dict[str, str | BadLine] = {}
        self.date: dict[str, tuple[str, dt.date] | BadLine] = {}
        self.act: dict[tuple[str, str, str], tuple[str, str, str] | BadLine] = {}
        self.label: dict[str, str | BadLine] = {}
        self.prescriber: dict[str, str | BadLine] = {}
        self.amount: dict[str, tuple[str, int | None] | BadLine] = {}


def _judge(cache: dict[Any, Any], raw: Any, check: Callable[[Any], Any], small: bool = False) -> Any:
    try:
        verdict: Any = check(raw)
    except InvalidIdentifier as exc:
        verdict = BadLine(str(exc))
    except BadLine as exc:
        verdict = exc
    if len(cache) < (Caches.SMALL_LIMIT if small else Caches.LIMIT):
        cache[raw] = verdict
    if isinstance(verdict, BadLine):
        raise BadLine(str(verdict))
    return verdict


def _nir(raw: str) -> str:
    return normalize_nir(raw.strip(), "nir")


_BAD_DATE = "care_date: not an ISO date (YYYY-MM-DD)"


def _date(raw: str) -> tuple[str, dt.date]:
    """(the date as written, stripped: it is part of the normalised line; the date)."""
    if len(raw) != 10:
        raw = raw.strip()
        if len(raw) != 10:
            raise BadLine(_BAD_DATE)
    try:
        return raw, dt.date.fromisoformat(raw)
    except ValueError:
        raise BadLine(_BAD_DATE) from None


def _kind(raw: str) -> str:
    kind = raw.strip().lower()
    if kind not in KINDS:
        raise BadLine(f"kind: must be one of {', '.join(sorted(KINDS))}")
    return kind


def _system(raw: str) -> str:
    system = raw.strip().upper()
    if system not in CODE_SYSTEMS:
        raise BadLine("code_system: must be CCAM, NGAP or CIP13")
    return system


def _act(raw: tuple[str, str, str]) -> tuple[str, str, str]:
    """Kind, code system and code, checked in that order (the first at fault is reported)."""
    kind = _kind(raw[0])
    system = _system(raw[1])
    return kind, system, normalise_code(system, raw[2])


def _label(raw: str) -> str:
    label = " ".join(raw.split())
    if not label or len(label) > 300:
        raise BadLine("label: required, at most 300 characters")
    return label


def _prescriber(raw: str) -> str:
    """The prescriber's national id, or "" when the field is blank."""
    p = raw.strip()
    if not p:
        return ""
    if len(p) == 12 and p[0] == "8":
        p = p[1:]
    return "8" + normalize_rpps(p, "prescriber")


def _amount_cents(a: str) -> int:
    if not _AMOUNT.fullmatch(a):
        raise BadLine("amount: a decimal number of euros with at most 2 decimals")
    units, _, dec = a.replace(",", ".").partition(".")
    cents = abs(int(units)) * 100 + int((dec + "00")[:2])
    return -cents if a.startswith("-") else cents


def _amount(raw: str) -> tuple[str, int | None]:
    """(the amount in cents as written in the normalised line, "" when blank; the amount in cents or None)."""
    a = raw.strip()
    if not a:
        return "", None
    cents = _amount_cents(a)
    return str(cents), cents


def parse_fields(f: list[str], caches: Caches | None = None) -> ClaimLine:
    """Validate and normalise one line's fields; raises :class:`BadLine` naming the column at fault (the first one,
    in column order). ``line_hash`` is the SHA-256 of the normalised line
    ``nir;care_date;kind;code_system;code;label;prescriber;amount_cents`` (blank prescriber or amount: empty)."""
    c = caches or Caches()
    if len(f) != 8:
        raise BadLine(f"expected {len(HEADER)} columns, found {len(f)}")
    raw_nir, raw_date, raw_kind, raw_system, raw_code, raw_label, raw_p, raw_a = f
    nir = c.nir.get(raw_nir)
    if type(nir) is not str:
        nir = _judge(c.nir, raw_nir, _nir)
    day = c.date.get(raw_date)
    if type(day) is not tuple:
        day = _judge(c.date, raw_date, _date)
    key = (raw_kind, raw_system, raw_code)
    act = c.act.get(key)
    if type(act) is not tuple:
        act = _judge(c.act, key, _act)
    label = c.label.get(raw_label)
    if type(label) is not str:
        label = _judge(c.label, raw_label, _label, small=True)
    prescriber = c.prescriber.get(raw_p)
    if type(prescriber) is not str:
        prescriber = _judge(c.prescriber, raw_p, _prescriber)
    amount = c.amount.get(raw_a)
    if type(amount) is not tuple:
        amount = _judge(c.amount, raw_a, _amount, small=True)
    kind, system, code = act
    norm = f"{nir};{day[0]};{kind};{system};{code};{label};{prescriber};{amount[0]}"
    return ClaimLine(nir, day[1], kind, system, code, label, prescriber or None, amount[1],
                     sha256(norm.encode()).hexdigest())


def split_line(text: str) -> list[str]:
    """The fields of one line: ``;``-separated; a field may be double-quoted (RFC 4180 style) to hold a ``;``."""
    if '"' in text:
        return next(csv.reader([text], delimiter=";"))
    return text.split(";")


@dataclass
class Summary:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    bad: int = 0
    unknown: int = 0  # lines for a NIR with no dossier, or a closed one
    too_old: int = 0
    future: int = 0
    seconds: float = 0.0
    dossiers: int = 0  # audit records written (one per dossier per batch that inserted lines)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


class HeaderError(ValueError):
    """The file does not start with the expected header: nothing is ingested."""


def _lines(stream: Iterable[bytes]) -> Iterator[tuple[int, int, str]]:
    """(line number, bytes consumed so far, text) for each line, read incrementally."""
    consumed = 0
    for n, raw in enumerate(stream, start=1):
        consumed += len(raw)
        yield n, consumed, raw.decode("utf-8", errors="strict").rstrip("\r\n")


def ingest(services: Services, stream: Iterable[bytes], *, batch: int = DEFAULT_BATCH,
           progress: Callable[[int, int], None] | None = None,
           on_bad: Callable[[int, str], None] | None = None) -> Summary:
    """Ingest a claims file given as an iterable of byte lines (an open binary file works); see the module docstring.
    ``progress(bytes_read, lines_read)`` is called after each batch; ``on_bad(line_number, reason)`` for each bad
    line. The clock is ``services.clock`` (injectable), read once per batch."""
    started = time.perf_counter()
    summary = Summary()
    caches = Caches()
    lines = _lines(stream)
    first = next(lines, None)
    if first is None:
        raise HeaderError("the file is empty")
    header = tuple(h.strip().lower() for h in first[2].lstrip("\ufeff").split(";"))
    if header != HEADER:
        raise HeaderError(f"the first line must be the header {';'.join(HEADER)}")
    today_start = window_start(services.clock(), services.settings.claims_months)
    today = services.clock().date()

    def bad(n: int, reason: str) -> None:
        summary.bad += 1
        if len(summary.bad_lines) < MAX_REPORTED:
            summary.bad_lines.append((n, reason))
        if on_bad is not None:
            on_bad(n, reason)

    writer = _Writer(services, summary)
    try:
        _read(lines, summary, caches, today_start, today, batch, writer, progress, bad)
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _read(lines: Iterator[tuple[int, int, str]], summary: Summary, caches: Caches, today_start: dt.date,
          today: dt.date, batch: int, writer: _Writer, progress: Callable[[int, int], None] | None,
          bad: Callable[[int, str], None]) -> None:
    pending: list[ClaimLine] = []
    consumed = 0
    for n, consumed, content in lines:
        if not content or content.isspace():
            continue
        summary.read += 1
        try:
            line = parse_fields(split_line(content), caches)
        except BadLine as exc:
            bad(n, str(exc))
            continue
        except csv.Error:
            bad(n, "unbalanced quotes")
            continue
        if line.care_date < today_start:
            summary.too_old += 1
            continue
        if line.care_date > today:
            bad(n, "care_date: in the future")
            continue
        pending.append(line)
        if len(pending) >= batch:
            writer.submit(pending)
            pending = []
            if progress is not None:
                progress(consumed, summary.read)
    if pending:
        writer.submit(pending)
    writer.wait()
    if progress is not None:
        progress(consumed, summary.read)


class _Writer:
    """Writes batches in a background thread while the next batch is parsed (the database waits release the GIL);
    at most one batch is in flight, so memory stays bounded by two batches whatever the file's size."""

    def __init__(self, services: Services, summary: Summary) -> None:
        self.services = services
        self.summary = summary
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claims-writer")
        self.inflight: Future[None] | None = None

    def wait(self) -> None:
        if self.inflight is not None:
            inflight, self.inflight = self.inflight, None
            inflight.result()  # re-raises the batch's failure here

    def submit(self, lines: list[ClaimLine]) -> None:
        self.wait()
        self.inflight = self.pool.submit(_flush, self.services, lines, self.summary)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)


def _flush(services: Services, lines: list[ClaimLine], summary: Summary) -> None:
    def work(ctx: Context) -> None:
        allowed = _allowed_dossiers(ctx, {ln.nir for ln in lines})
        rows = [(allowed[ln.nir], ln) for ln in lines if ln.nir in allowed]
        summary.unknown += len(lines) - len(rows)
        if not rows:
            return
        if ctx.conn.dialect.name == "postgresql":
            per_dossier = _insert_pg(ctx.conn, rows, ctx.now)
        else:
            per_dossier = _insert_sqlite(ctx.conn, rows, ctx.now)
        inserted = sum(per_dossier.values())
        summary.inserted += inserted
        summary.duplicates += len(rows) - inserted
        entries = [(key, {"lines": n}) for key, n in sorted(per_dossier.items(), key=lambda kv: str(kv[0])) if n]
        summary.dossiers += audit_log.record_many(ctx.conn, entries, actor=ctx.actor, action="C",
                                                  event="claims.ingest", now=ctx.now,
                                                  entity_type="ExplanationOfBenefit")

    run(services, ASSURANCE_MALADIE, work)


_CHUNK = 5000  # NIRs per lookup query on SQLite (its bound-parameter limit); PostgreSQL takes one array
# Two reads, never a join of ins_lookup (distributed by INS on Citus) with dossier (by dossier key): the keys the
# batch's NIRs name, then those dossiers by key (docs/SCALE.md).
_KEYS_SQLITE = select(ins_lookup.c.ins, ins_lookup.c.dossier_key).where(
    ins_lookup.c.ins.in_(bindparam("nirs", expanding=True)))
_FACTS_SQLITE = select(dossier.c.dossier_key, dossier.c.status, dossier.c.birth_date, dossier.c.objects_break_glass,
                       dossier.c.objects_regulation).where(dossier.c.dossier_key.in_(bindparam("keys", expanding=True)))
_KEYS_PG = text("SELECT ins, dossier_key FROM ins_lookup WHERE ins = ANY(CAST(:nirs AS text[]))")
_FACTS_PG = text("SELECT dossier_key, status, birth_date, objects_break_glass, objects_regulation FROM dossier "
                 "WHERE dossier_key = ANY(CAST(:keys AS uuid[]))")


def _allowed_dossiers(ctx: Context, nirs: set[str]) -> dict[str, uuid.UUID]:
    """NIR -> dossier key, for the dossiers where the policy lets Assurance Maladie add reimbursement data: two
    queries load every dossier the batch names, then :func:`carnet.access.policy.decide` runs for each (set-wise)."""
    ordered = sorted(nirs)
    if ctx.conn.dialect.name == "postgresql":
        keys = {r.dossier_key: r.ins for r in ctx.conn.execute(_KEYS_PG, {"nirs": ordered})}
        facts = list(ctx.conn.execute(_FACTS_PG, {"keys": sorted(keys, key=str)})) if keys else []
    else:
        keys = {r.dossier_key: r.ins for i in range(0, len(ordered), _CHUNK)
                for r in ctx.conn.execute(_KEYS_SQLITE, {"nirs": ordered[i:i + _CHUNK]})}
        listed = sorted(keys, key=str)
        facts = [r for i in range(0, len(listed), _CHUNK)
                 for r in ctx.conn.execute(_FACTS_SQLITE, {"keys": listed[i:i + _CHUNK]})]
    found = [(keys[r.dossier_key], r) for r in facts]
    out: dict[str, uuid.UUID] = {}
    today = ctx.now.date()
    for ins, r in found:
        dossier_facts = DossierFacts(dossier_key=r.dossier_key, status=r.status, birth_date=r.birth_date,
                                     objects_break_glass=r.objects_break_glass,
                                     objects_regulation=r.objects_regulation)
        decision = decide(ctx.actor, dossier_facts, Standing(), today, ctx.services.matrix, ctx.settings.majority_age)
        if decision.may_add(REIMBURSEMENT_CLASS):
            out[ins] = r.dossier_key
    return out


_STAGE_COLUMNS = ("dossier_key", "line_hash", "care_date", "kind", "code_system", "code", "label", "prescriber",
                  "amount_cents")


def _insert_pg(conn: Connection, rows: list[tuple[uuid.UUID, ClaimLine]], now: dt.datetime) -> Counter[Any]:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE IF NOT EXISTS claim_stage (dossier_key uuid, line_hash text, "
                    "care_date date, kind text, code_system text, code text, label text, prescriber text, "
                    "amount_cents integer) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY claim_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN") as copy:
            copy.write(_copy_text(rows))
        cur.execute(
            "WITH ins AS (INSERT INTO claim_line (dossier_key, line_hash, care_date, kind, code_system, code, label, "
            "prescriber, amount_cents, ingested_at) "
            "SELECT s.dossier_key, s.line_hash, s.care_date, s.kind, s.code_system, s.code, s.label, s.prescriber, "
            "s.amount_cents, %s FROM claim_stage s "
            "JOIN dossier d ON d.dossier_key = s.dossier_key AND d.status = 'active' "
            "ON CONFLICT DO NOTHING RETURNING dossier_key) "
            "SELECT dossier_key, count(*) FROM ins GROUP BY dossier_key", (audit_log.utc(now),))
        return Counter({k: int(n) for k, n in cur.fetchall()})


def _copy_text(rows: list[tuple[uuid.UUID, ClaimLine]]) -> str:
    """The batch in COPY's text format, built as one string (much cheaper than a row at a time). Fields hold no tab,
    newline or carriage return (labels have their whitespace collapsed, the other fields are checked), so only a
    backslash needs escaping."""
    keys: dict[uuid.UUID, str] = {}
    days: dict[dt.date, str] = {}  # few distinct dates: format each once
    out = []
    for key, ln in rows:
        k = keys.get(key)
        if k is None:
            k = keys[key] = str(key)
        day = days.get(ln.care_date)
        if day is None:
            day = days[ln.care_date] = ln.care_date.isoformat()
        label = ln.label.replace("\\", "\\\\") if "\\" in ln.label else ln.label
        out.append(f"{k}\t{ln.line_hash}\t{day}\t{ln.kind}\t{ln.code_system}\t{ln.code}\t"
                   f"{label}\t{ln.prescriber or NULL}\t{NULL if ln.amount_cents is None else ln.amount_cents}\n")
    return "".join(out)


NULL = "\\N"
_INSERT_SQLITE = insert(claim_line).prefix_with("OR IGNORE")


def _insert_sqlite(conn: Connection, rows: list[tuple[uuid.UUID, ClaimLine]], now: dt.datetime) -> Counter[Any]:
    by_dossier: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for key, ln in rows:
        by_dossier.setdefault(key, []).append({
            "dossier_key": key, "line_hash": ln.line_hash, "care_date": ln.care_date, "kind": ln.kind,
            "code_system": ln.code_system, "code": ln.code, "label": ln.label, "prescriber": ln.prescriber,
            "amount_cents": ln.amount_cents, "ingested_at": now})
    out: Counter[Any] = Counter()
    for key, params in by_dossier.items():
        out[key] = conn.execute(_INSERT_SQLITE, params).rowcount
    return out
