"""People's accounts: invitation with a one-time activation code, activation, two-step sign-in, password reset.

- A dossier exists before its owner ever signs in (DOMAIN.md). When it is created, an ``invited`` account is made for
  its owner (identifier: the INS) and an activation code goes out of band (a letter; also email/SMS when the Patient
  resource carries them). A legal representative recorded on a dossier gets an account too (identifier: their
  email, or a generated one sent by letter); a representative who already has an account is simply linked to the new
  dossier, so one account acts on several dossiers.
- Activation: identifier + activation code (+ birth date for a patient), then a password and where sign-in codes go.
- Sign-in: identifier + password, then a 6-digit one-time code sent by email or SMS. Codes expire
  (``CARNET_CODE_MINUTES``), are single-use, allow 5 tries each.
- Reset: a code sent to the account's channel, then a new password; every session and app token is revoked.

No account is ever locked (issue 15 §3). Every failed step counts in :mod:`carnet.throttle` against the identifier
*as typed* and the client's address, so that an identifier nobody has is counted, slowed and answered exactly like
one that exists: a sign-in always spends one Argon2 verification (a dummy hash when there is no active account),
looks at the throttle only after that, and answers one message for an unknown identifier, a wrong password or an
account that is not active. A try that must wait raises :class:`SlowDown` (the same for every identifier) without
being looked at; the account holder is told by the worker that sign-ins to their account are being slowed.

These functions work on the account tables in the caller's connection; the one dossier-side effect (the audit record
"account.activate" on each dossier the account acts on) goes through :class:`~carnet.context.Context`.
"""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, insert, select, update

from carnet import throttle
from carnet.access.actors import Actor, ActorKind
from carnet.accounts import secrets
from carnet.accounts.secrets import N_
from carnet.accounts.sessions import PORTAL_CLIENT, revoke_everywhere
from carnet.context import Context, Services
from carnet.db.tables import account, account_code, account_dossier, account_login, dossier
from carnet.ids import new_id

CODE_TRIES = 5
NOBODY = uuid.UUID(int=0)  # the account id looked up for an identifier no account has: the same queries run
WRONG_PASSWORD = N_("This identifier or password is not right.")
WRONG_ACTIVATION = N_("This identifier and activation code do not match.")
WRONG_CODE = N_("This code is not right or has expired.")


class AccountError(Exception):
    """A refusal shown to the person: ``message`` is an English message id the portal translates. What was written
    before it (a failure counted) is kept."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SlowDown(AccountError):
    """Too many tries: wait ``retry_after`` seconds. Raised alike for every identifier, known or not."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many tries. Wait a little, then try again.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Invitation:
    account_id: uuid.UUID
    login: str
    code: str | None  # None when an existing account was linked


@dataclass(frozen=True)
class CodeSent:
    account_id: uuid.UUID
    channel: str  # email | sms
    address: str  # the full address, for delivery; show ``masked`` to people
    masked: str
    code: str
    lang: str


def normalise_login(login: str) -> str:
    text = login.strip()
    if "@" in text:
        return text.lower()
    return "".join(text.split()).upper()


def mask(address: str) -> str:
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}•••@{domain}"
    return f"•••• {address[-2:]}" if len(address) >= 2 else "••••"


def by_login(conn: Connection, login: str) -> Any:
    """The account signing in with ``login``: two single-shard reads on Citus (the login's row, then its account),
    never a join of tables distributed by different keys (docs/SCALE.md)."""
    account_id = conn.execute(select(account_login.c.account_id)
                              .where(account_login.c.login == normalise_login(login))).scalar()
    if account_id is None:
        return None
    return conn.execute(select(account).where(account.c.account_id == account_id)).first()


def new_code(conn: Connection, account_id: uuid.UUID, purpose: str, channel: str, now: dt.datetime,
             lifetime: dt.timedelta) -> str:
    """Issue a code, ending every earlier unused code of the same purpose (only the latest one works)."""
    conn.execute(update(account_code).where(and_(
        account_code.c.account_id == account_id, account_code.c.purpose == purpose, account_code.c.used_at.is_(None),
        account_code.c.expires_at > now)).values(expires_at=now))
    code = secrets.activation_code() if purpose == "activation" else secrets.numeric_code()
    code_id = new_id()
    conn.execute(insert(account_code).values(
        account_id=account_id, code_id=code_id, purpose=purpose, code_hash=secrets.code_hash(code_id, code),
        channel=channel, created_at=now, expires_at=now + lifetime, attempts=0))
    return code


def _live_code(conn: Connection, account_id: uuid.UUID, purpose: str, now: dt.datetime) -> Any:
    return conn.execute(select(account_code).where(and_(
        account_code.c.account_id == account_id, account_code.c.purpose == purpose, account_code.c.used_at.is_(None),
        account_code.c.expires_at > now)).order_by(account_code.c.created_at.desc()).limit(1)).first()


def code_would_match(conn: Connection, account_id: uuid.UUID, purpose: str, presented: str, now: dt.datetime) -> bool:
    """Whether ``presented`` is the live code, without spending it nor counting a try."""
    row = _live_code(conn, account_id, purpose, now)
    return row is not None and row.attempts < CODE_TRIES and secrets.code_matches(row.code_id, row.code_hash,
                                                                                   presented)


def check_code(conn: Connection, account_id: uuid.UUID, purpose: str, presented: str, now: dt.datetime) -> bool:
    """True (and the code is spent) if ``presented`` is the live code; each wrong try counts, 5 burn the code."""
    row = _live_code(conn, account_id, purpose, now)
    if row is None:
        return False
    # Several nodes may check the same code at once: every write is conditional on the row as it is now (live,
    # tries counted in SQL), so a right code is spent by exactly one request and no wrong try goes uncounted.
    key = and_(account_code.c.account_id == account_id, account_code.c.code_id == row.code_id,
               account_code.c.used_at.is_(None))
    if row.attempts >= CODE_TRIES:
        return False
    if secrets.code_matches(row.code_id, row.code_hash, presented):
        return conn.execute(update(account_code).where(key, account_code.c.attempts < CODE_TRIES)
                            .values(used_at=now, attempts=account_code.c.attempts + 1)).rowcount == 1
    conn.execute(update(account_code).where(key).values(attempts=account_code.c.attempts + 1))
    conn.execute(update(account_code).where(key, account_code.c.attempts >= CODE_TRIES).values(used_at=now))
    return False


def invite(conn: Connection, now: dt.datetime, services: Services, *, kind: str, login: str | None,
           display_name: str, email: str | None = None, phone: str | None = None, lang: str = "fr") -> Invitation:
    """An ``invited`` account with a fresh activation code; an existing account for ``login`` is reused (a code is
    issued only if it was never activated)."""
    if login:
        existing = by_login(conn, login)
        if existing is not None:
            code = None
            if existing.status == "invited":
                code = new_code(conn, existing.account_id, "activation", "post", now,
                                dt.timedelta(days=services.settings.activation_days))
            return Invitation(existing.account_id, existing.login, code)
    login = normalise_login(login) if login else f"R{pysecrets.randbelow(10**9):09d}"
    account_id = new_id()
    conn.execute(insert(account).values(
        account_id=account_id, kind=kind, login=login, display_name=display_name[:300], email=email, phone=phone,
        otp_channel="email" if email or not phone else "sms", password_hash=None, status="invited",
        lang=lang, created_at=now))
    conn.execute(insert(account_login).values(login=login, account_id=account_id))
    code = new_code(conn, account_id, "activation", "post", now, dt.timedelta(days=services.settings.activation_days))
    return Invitation(account_id, login, code)


def default_notify() -> dict[str, list[str]]:
    try:
        from carnet.notify.outbox import default_prefs
    except ImportError:  # pragma: no cover - the notify package ships with Carnet
        return {}
    return dict(default_prefs())


def link(conn: Connection, account_id: uuid.UUID, dossier_key: uuid.UUID, role: str, now: dt.datetime,
         representative_id: uuid.UUID | None = None) -> None:
    exists = conn.execute(select(account_dossier.c.account_id).where(and_(
        account_dossier.c.dossier_key == dossier_key, account_dossier.c.account_id == account_id))).first()
    if exists is not None:
        conn.execute(update(account_dossier).where(and_(
            account_dossier.c.dossier_key == dossier_key, account_dossier.c.account_id == account_id)).values(
            ended_at=None, role=role, representative_id=representative_id))
        return
    conn.execute(insert(account_dossier).values(
        dossier_key=dossier_key, account_id=account_id, role=role, representative_id=representative_id, since=now,
        notify=default_notify()))


class ActingLink(NamedTuple):
    """How an account acts on a dossier today: the dossier's INS, and the representative record it acts as (None when
    it acts as the owner)."""

    ins: str
    representative_id: uuid.UUID | None


def acting_link(conn: Connection, account_id: uuid.UUID, dossier_key: uuid.UUID) -> ActingLink | None:
    """How the account acts on the dossier, when the account is active and still linked to the dossier; else None.

    What a patient app's grant rests on (:mod:`carnet.auth.smart` asks it through its callers, reading no account
    nor dossier table itself): checked when a code or a refresh token is exchanged, and on every API request."""
    row = conn.execute(
        select(dossier.c.ins, account_dossier.c.representative_id)
        .select_from(account_dossier.join(dossier, dossier.c.dossier_key == account_dossier.c.dossier_key))
        .where(and_(account_dossier.c.dossier_key == dossier_key, account_dossier.c.account_id == account_id,
                    account_dossier.c.ended_at.is_(None)))).first()
    if row is None:  # then the account (another shard on Citus: two single-shard reads, no join across keys)
        return None
    status = conn.execute(select(account.c.status).where(account.c.account_id == account_id)).scalar()
    return ActingLink(row.ins, row.representative_id) if status == "active" else None


def dossier_names(conn: Connection, dossier_keys: Collection[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """The (given, family) names on each of these dossiers: which dossier an account's app reads, in its own words."""
    if not dossier_keys:
        return {}
    rows = conn.execute(select(dossier.c.dossier_key, dossier.c.given, dossier.c.family)
                        .where(dossier.c.dossier_key.in_(list(dossier_keys))))
    return {r.dossier_key: (r.given, r.family) for r in rows}


def _letter(ctx: Context, dossier_key: uuid.UUID, invitation: Invitation, name: str) -> None:
    """The activation letter (and email/SMS when an address is known), through the outbox: sent only if the
    transaction that created the account commits."""
    if invitation.code is None:
        return
    try:
        from carnet.notify.outbox import enqueue_direct
    except ImportError:  # pragma: no cover
        return
    row = ctx.conn.execute(select(account.c.email, account.c.phone, account.c.lang)
                           .where(account.c.account_id == invitation.account_id)).first()
    params = {"name": name, "login": invitation.login, "code": invitation.code,
              "url": f"{ctx.settings.base_url}/portal/activate"}
    lang = row.lang if row is not None else "fr"
    enqueue_direct(ctx, dossier_key, "post", name, "activation", params, lang)
    if row is not None and row.email:
        enqueue_direct(ctx, dossier_key, "email", row.email, "activation", params, lang)
    elif row is not None and row.phone:
        enqueue_direct(ctx, dossier_key, "sms", row.phone, "activation", params, lang)


def invite_owner(ctx: Context, dossier_key: uuid.UUID, resource: dict[str, Any]) -> Invitation:
    """Called when a dossier is created: its owner's account (identifier: the INS) and the activation letter."""
    from carnet.access.policy import age_on

    row = ctx.conn.execute(select(dossier.c.ins, dossier.c.given, dossier.c.family, dossier.c.birth_date)
                           .where(dossier.c.dossier_key == dossier_key)).one()
    email, phone = _telecom(resource)
    name = f"{row.given} {row.family}"
    inv = invite(ctx.conn, ctx.now, ctx.services, kind="patient", login=row.ins, display_name=name, email=email,
                 phone=phone)
    link(ctx.conn, inv.account_id, dossier_key, "owner", ctx.now)
    if age_on(row.birth_date, ctx.now.date()) >= ctx.settings.majority_age:
        _letter(ctx, dossier_key, inv, name)  # a minor's dossier is run by their representatives: no letter
    return inv


def invite_representative(ctx: Context, dossier_key: uuid.UUID, representative_id: uuid.UUID, given: str,
                          family: str, resource: dict[str, Any] | None = None) -> Invitation:
    email, phone = _telecom(resource or {})
    name = f"{given} {family}"
    inv = invite(ctx.conn, ctx.now, ctx.services, kind="representative", login=email, display_name=name,
                 email=email, phone=phone)
    link(ctx.conn, inv.account_id, dossier_key, "representative", ctx.now, representative_id)
    _letter(ctx, dossier_key, inv, name)
    return inv


def _telecom(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    email = phone = None
    for t in resource.get("telecom") or []:
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            continue
        if t.get("system") == "email" and email is None and "@" in t["value"]:
            email = t["value"].strip().lower()[:320]
        if t.get("system") in ("phone", "sms") and phone is None:
            phone = "".join(ch for ch in t["value"] if ch.isdigit() or ch == "+")[:32] or None
    return email, phone


def _throttle(conn: Connection, services: Services, login: str, address: str) -> throttle.Subject:
    """The counters of this try; :class:`SlowDown` if it must wait (before anything of it is looked at)."""
    who = throttle.subject(services, normalise_login(login), address)
    wait = throttle.wait_for(conn, services, who)
    if wait:
        raise SlowDown(wait)
    return who


def normalise_contact(email: str | None, phone: str | None) -> tuple[str, str]:
    """An email address as typed, trimmed and lower-cased; a mobile number kept to its digits and "+"."""
    return (email or "").strip().lower(), "".join(ch for ch in (phone or "") if ch.isdigit() or ch == "+")


def _require_code_address(channel: str, email: str | None, phone: str | None) -> None:
    if (channel == "email" and not email) or (channel == "sms" and not phone):
        raise AccountError("Give the email address or mobile number where your sign-in codes should go.")


def _birth_date_matches(conn: Connection, row: Any, birth_date: dt.date | None) -> bool:
    if row.kind != "patient":
        return True
    own = conn.execute(select(dossier.c.birth_date).select_from(account_dossier.join(
        dossier, dossier.c.dossier_key == account_dossier.c.dossier_key)).where(and_(
            account_dossier.c.account_id == row.account_id, account_dossier.c.role == "owner"))).first()
    return own is not None and birth_date == own.birth_date


def activate(services: Services, conn: Connection, now: dt.datetime, *, login: str, code: str,
             birth_date: dt.date | None, password: str, email: str | None, phone: str | None,
             otp_channel: str, address: str = "unknown") -> uuid.UUID:
    """Activate an invited account. Raises :class:`AccountError` with a message id; a wrong code (or birth date)
    counts as a failure (:mod:`carnet.throttle`). Whatever the identifier, the same checks answer the same words:
    the password rule is checked first against the identifier typed; against the account holder's name only once
    the code and birth date proved who is asking (so the answer reveals no name), and then without spending the
    code."""
    problem = secrets.password_problem(password, normalise_login(login))
    if problem:  # checked before the code, so that a refused password does not spend it
        raise AccountError(problem)
    who = _throttle(conn, services, login, address)
    row = by_login(conn, login)
    known = row is not None and row.status == "invited"
    account_id = row.account_id if known else NOBODY
    email, phone = normalise_contact(email, phone)
    channel = otp_channel if otp_channel in ("email", "sms") else "email"
    proven = code_would_match(conn, account_id, "activation", code, now) and known and _birth_date_matches(
        conn, row, birth_date)
    if proven:  # refusals that must not spend the code, and may speak of the account now
        email, phone = email or row.email, phone or row.phone
        problem = secrets.password_problem(password, row.login, *row.display_name.split())
        if problem:
            raise AccountError(problem)
        _require_code_address(channel, email, phone)
    if not (check_code(conn, account_id, "activation", code, now) and proven):
        throttle.record_failure(conn, services, who, None)
        raise AccountError(WRONG_ACTIVATION)
    conn.execute(update(account).where(account.c.account_id == row.account_id).values(
        status="active", password_hash=secrets.hash_password(password), email=email, phone=phone,
        otp_channel=channel, activated_at=now, password_changed_at=now))
    throttle.forget_pair(conn, who)
    for link_row in conn.execute(select(account_dossier).where(and_(
            account_dossier.c.account_id == row.account_id, account_dossier.c.ended_at.is_(None)))).all():
        actor = _actor_for_link(conn, link_row, row.display_name)
        Context(services, conn, actor, now).audit(link_row.dossier_key, "E", "account.activate",
                                                  entity_type="Patient", entity_id=str(link_row.dossier_key))
    return row.account_id


def _actor_for_link(conn: Connection, link_row: Any, display: str) -> Actor:
    if link_row.role == "representative":
        ins = conn.execute(select(dossier.c.ins).where(dossier.c.dossier_key == link_row.dossier_key)).scalar_one()
        return Actor(kind=ActorKind.REPRESENTATIVE, id=str(link_row.representative_id), display=display,
                     acting_for=ins, client_id=PORTAL_CLIENT)
    ins = conn.execute(select(dossier.c.ins).where(dossier.c.dossier_key == link_row.dossier_key)).scalar_one()
    return Actor(kind=ActorKind.PATIENT, id=ins, display=display, client_id=PORTAL_CLIENT)


def _code_for(conn: Connection, row: Any, purpose: str, now: dt.datetime, services: Services) -> CodeSent:
    channel = row.otp_channel if row.otp_channel in ("email", "sms") else "email"
    address = row.email if channel == "email" else row.phone
    if not address:
        channel, address = ("sms", row.phone) if row.phone else ("email", row.email)
    if not address:
        raise AccountError("No email address or mobile number is recorded for this account.")
    code = new_code(conn, row.account_id, purpose, channel, now, dt.timedelta(minutes=services.settings.code_minutes))
    return CodeSent(row.account_id, channel, address, mask(address), code, row.lang)


def start_sign_in(services: Services, conn: Connection, now: dt.datetime, login: str, password: str,
                  address: str = "unknown") -> CodeSent:
    """Check the password; on success issue the sign-in code (the caller sends it after committing).

    The same work and the same answer whatever the identifier: one Argon2 verification (against a dummy hash when
    no active account has this identifier), then the throttle (:class:`SlowDown`, without saying whether the
    password was right), then one message for every failure, counted against the identifier typed."""
    row = by_login(conn, login)
    known = row is not None and row.status == "active"
    ok, rehash = secrets.verify_password(row.password_hash if known else None, password)
    who = _throttle(conn, services, login, address)
    if not (known and ok):
        throttle.record_failure(conn, services, who, row.account_id if known else None)
        raise AccountError(WRONG_PASSWORD)
    if rehash:
        conn.execute(update(account).where(account.c.account_id == row.account_id).values(
            password_hash=secrets.hash_password(password)))
    return _code_for(conn, row, "sign_in", now, services)


def resend_sign_in(services: Services, conn: Connection, now: dt.datetime, account_id: uuid.UUID) -> CodeSent:
    """A new sign-in code, within ``CARNET_RATE_CODE_SENDING`` codes per account (:class:`SlowDown` past it)."""
    wait = throttle.hit_in(conn, services, "code_sending", f"account:{account_id}")
    if wait:
        raise SlowDown(wait)
    row = conn.execute(select(account).where(account.c.account_id == account_id)).one()
    return _code_for(conn, row, "sign_in", now, services)


def finish_sign_in(services: Services, conn: Connection, now: dt.datetime, account_id: uuid.UUID, code: str,
                   address: str = "unknown") -> None:
    """The one-time code. A wrong one counts as a failure of the account's identifier from this address; the right
    one completes the sign-in and clears this address's failures on the identifier."""
    row = conn.execute(select(account).where(account.c.account_id == account_id)).one()
    who = _throttle(conn, services, row.login, address)
    if not check_code(conn, account_id, "sign_in", code, now):
        throttle.record_failure(conn, services, who, account_id)
        raise AccountError(WRONG_CODE)
    throttle.forget_pair(conn, who)
    conn.execute(update(account).where(account.c.account_id == account_id).values(last_sign_in_at=now))


def start_reset(services: Services, conn: Connection, now: dt.datetime, login: str) -> CodeSent | None:
    """A reset code for an active account, or None (the page answers the same either way). At most
    ``CARNET_RATE_CODE_SENDING`` codes per identifier typed, known or not (past it: None, silently)."""
    if throttle.hit_in(conn, services, "code_sending", f"login:{normalise_login(login)}"):
        return None
    row = by_login(conn, login)
    if row is None or row.status != "active":
        return None
    return _code_for(conn, row, "reset", now, services)


def finish_reset(services: Services, conn: Connection, now: dt.datetime, login: str, code: str,
                 password: str, address: str = "unknown") -> uuid.UUID:
    """The reset code and the new password. A wrong code counts as a failure of the identifier typed; a password
    the rule refuses is said only once the code is proven, and does not spend it."""
    who = _throttle(conn, services, login, address)
    row = by_login(conn, login)
    known = row is not None and row.status == "active"
    account_id = row.account_id if known else NOBODY
    if code_would_match(conn, account_id, "reset", code, now) and known:
        problem = secrets.password_problem(password, row.login, *row.display_name.split())
        if problem:
            raise AccountError(problem)
    if not (check_code(conn, account_id, "reset", code, now) and known):
        throttle.record_failure(conn, services, who, row.account_id if known else None)
        raise AccountError(WRONG_CODE)
    _set_password(conn, row, password, now)
    throttle.forget_pair(conn, who)
    return row.account_id


def _set_password(conn: Connection, row: Any, password: str, now: dt.datetime, *,
                  keep_session: str | None = None) -> None:
    """A new password (the rule checked first); every other session and app token of the account ends."""
    problem = secrets.password_problem(password, row.login, *row.display_name.split())
    if problem:
        raise AccountError(problem)
    conn.execute(update(account).where(account.c.account_id == row.account_id).values(
        password_hash=secrets.hash_password(password), password_changed_at=now))
    revoke_everywhere(conn, row.account_id, now, keep_session=keep_session)


def check_current_password(services: Services, conn: Connection, now: dt.datetime, account_id: uuid.UUID,
                           password: str, address: str = "unknown") -> Any:
    """The account row if ``password`` is its current password, for changes made from a signed-in session. A wrong
    one counts as a failure, as at sign-in (:mod:`carnet.throttle`), so a left-open session cannot be used to guess
    it."""
    row = conn.execute(select(account).where(account.c.account_id == account_id)).one()
    ok, _ = secrets.verify_password(row.password_hash, password)
    who = _throttle(conn, services, row.login, address)
    if not ok:
        throttle.record_failure(conn, services, who, account_id)
        raise AccountError("Your current password is not right.")
    return row


def change_password(services: Services, conn: Connection, now: dt.datetime, account_id: uuid.UUID, current: str,
                    new: str, session_hash: str, address: str = "unknown") -> None:
    """Change the password from a signed-in session: the current one is checked; the other sessions and the apps
    of the account end, this session goes on."""
    row = check_current_password(services, conn, now, account_id, current, address)
    _set_password(conn, row, new, now, keep_session=session_hash)


def change_contact(services: Services, conn: Connection, now: dt.datetime, account_id: uuid.UUID, current: str,
                   email: str | None, phone: str | None, otp_channel: str, address: str = "unknown") -> None:
    """Change the account's email address, mobile number and sign-in code channel from a signed-in session: the
    current password is checked first (a wrong one counts as a failed attempt), then the new details."""
    check_current_password(services, conn, now, account_id, current, address)
    email, phone = normalise_contact(email, phone)
    if email and ("@" not in email or len(email) > 320 or " " in email):
        raise AccountError("This email address is not valid.")
    if phone and not 8 <= len(phone) <= 16:
        raise AccountError("This mobile number is not valid.")
    if otp_channel not in ("email", "sms"):
        raise AccountError("Give the email address or mobile number where your sign-in codes should go.")
    _require_code_address(otp_channel, email, phone)
    conn.execute(update(account).where(account.c.account_id == account_id).values(
        email=email or None, phone=phone or None, otp_channel=otp_channel))


def send(services: Services, sent: CodeSent, purpose: str) -> None:
    """Deliver a one-time code at once (not through the outbox: the person is waiting for it)."""
    from carnet.notify.channels import channels_for

    subject, text = code_message(purpose, sent.code, sent.lang, sent.channel)
    channels_for(services.settings).send(sent.channel, sent.address, subject, text, str(new_id()))


_CODE_TEXT = {
    "fr": {"sign_in": ("Votre code de connexion Carnet", "Votre code de connexion à Carnet : {code}. Il est valable "
                       "quelques minutes. Ne le communiquez à personne : Carnet ne vous le demandera jamais."),
           "reset": ("Réinitialiser votre mot de passe Carnet", "Votre code pour choisir un nouveau mot de passe "
                     "Carnet : {code}. Si vous n'avez rien demandé, ignorez ce message."),
           },
    "en": {"sign_in": ("Your Carnet sign-in code", "Your Carnet sign-in code: {code}. It is valid for a few minutes. "
                       "Never share it: Carnet will never ask you for it."),
           "reset": ("Reset your Carnet password", "Your code to choose a new Carnet password: {code}. If you did not "
                     "ask for it, ignore this message."),
           },
}


def code_message(purpose: str, code: str, lang: str, channel: str) -> tuple[str, str]:
    subject, text = _CODE_TEXT.get(lang, _CODE_TEXT["fr"])[purpose]
    return subject, text.format(code=code)
