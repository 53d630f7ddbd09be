"""One settings object, read from environment variables.

Every setting is documented in ``docs/CONFIGURATION.md``. The embedded default (no variable set) keeps everything in
``var/`` beside the working directory: a SQLite database, the document files, the master key and the token key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)) or default)


def _rate(name: str, default: str) -> tuple[int, int]:
    """A rate limit written ``count/seconds`` ("20/300": 20 hits in any 300 seconds); a count of 0 turns it off."""
    text = _env(name, default) or default
    count, sep, seconds = text.partition("/")
    try:
        limit = (int(count), int(seconds))
    except ValueError:
        limit = (-1, 0)
    if not sep or limit[0] < 0 or limit[1] < 1:
        raise ValueError(f"{name} must read count/seconds, e.g. {default}")
    return limit


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in (_env(name) or "").split(",") if v.strip())


@dataclass
class Settings:
    var_dir: Path = field(default_factory=lambda: Path(_env("CARNET_VAR_DIR", "var") or "var").resolve())
    database_url: str | None = field(default_factory=lambda: _env("CARNET_DATABASE_URL"))
    blob_url: str | None = field(default_factory=lambda: _env("CARNET_BLOB_URL"))
    # a transaction that wrote a blob commits within this many seconds of its start, or rolls back (503)
    transaction_seconds: int = field(default_factory=lambda: _int("CARNET_TRANSACTION_SECONDS", 600))
    # the blob garbage collector: blobs no row references are removed once older than the grace period
    blob_gc_grace_hours: float = field(default_factory=lambda: float(_env("CARNET_BLOB_GC_GRACE_HOURS", "24") or 24))
    blob_gc_interval_hours: float = field(default_factory=lambda: float(_env("CARNET_BLOB_GC_INTERVAL_HOURS", "6")
                                                                        or 0))
    # audit checkpoints (docs/AUDIT.md): where they are written once, the key that signs them, how often
    checkpoint_url: str | None = field(default_factory=lambda: _env("CARNET_CHECKPOINT_URL"))
    checkpoint_key: str | None = field(default_factory=lambda: _env("CARNET_CHECKPOINT_KEY"))
    checkpoint_public_key: str | None = field(default_factory=lambda: _env("CARNET_CHECKPOINT_PUBLIC_KEY"))
    checkpoint_key_file: str | None = field(default_factory=lambda: _env("CARNET_CHECKPOINT_KEY_FILE"))
    checkpoint_seconds: int = field(default_factory=lambda: _int("CARNET_CHECKPOINT_SECONDS", 60))
    # the audit's monthly partitions (PostgreSQL) made ahead by the worker, and where archived months are written
    audit_partitions_ahead: int = field(default_factory=lambda: _int("CARNET_AUDIT_PARTITIONS_AHEAD", 3))
    audit_archive_url: str | None = field(default_factory=lambda: _env("CARNET_AUDIT_ARCHIVE_URL"))
    master_key: str | None = field(default_factory=lambda: _env("CARNET_MASTER_KEY"))
    master_key_file: str | None = field(default_factory=lambda: _env("CARNET_MASTER_KEY_FILE"))
    token_key_file: str | None = field(default_factory=lambda: _env("CARNET_TOKEN_KEY_FILE"))
    base_url: str = field(default_factory=lambda: (_env("CARNET_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/"))
    max_document_bytes: int = field(default_factory=lambda: int(_env("CARNET_MAX_DOCUMENT_BYTES", str(20 * 1024 * 1024))
                                                                 or 0))
    retention_years: int = field(default_factory=lambda: int(_env("CARNET_RETENTION_YEARS", "10") or 10))
    majority_age: int = field(default_factory=lambda: int(_env("CARNET_MAJORITY_AGE", "18") or 18))
    invisible_patient_days: int = field(default_factory=lambda: int(_env("CARNET_INVISIBLE_PATIENT_DAYS", "30") or 30))
    # the patient is told that a document awaits its announcement this many days after its deposit
    announcement_notice_days: int = field(default_factory=lambda: _int("CARNET_ANNOUNCEMENT_NOTICE_DAYS", 14))
    habilitation_file: str | None = field(default_factory=lambda: _env("CARNET_HABILITATION_FILE"))
    trend_rules_file: str | None = field(default_factory=lambda: _env("CARNET_TREND_RULES_FILE"))  # issue 17 §3
    token_lifetime: int = field(default_factory=lambda: int(_env("CARNET_TOKEN_LIFETIME", "300") or 300))
    page_size: int = field(default_factory=lambda: int(_env("CARNET_PAGE_SIZE", "20") or 20))
    max_page_size: int = 200
    # Assurance Maladie's care history keeps this many months (older claim lines are skipped, filtered, purged)
    claims_months: int = field(default_factory=lambda: _int("CARNET_CLAIMS_MONTHS", 24))
    # --- people's accounts and the portals (issue 4) ---
    # the one time zone the portals show every date and time in (an IANA name; instants are stored in UTC)
    display_timezone: str = field(default_factory=lambda: _env("CARNET_DISPLAY_TIMEZONE", "Europe/Paris") or "")
    cookie_secure: bool = field(default_factory=lambda: _env("CARNET_COOKIE_SECURE", "true") != "false")
    session_idle_minutes: int = field(default_factory=lambda: _int("CARNET_SESSION_IDLE_MINUTES", 30))
    session_max_hours: int = field(default_factory=lambda: _int("CARNET_SESSION_MAX_HOURS", 12))
    code_minutes: int = field(default_factory=lambda: _int("CARNET_CODE_MINUTES", 10))  # sign-in and reset codes
    activation_days: int = field(default_factory=lambda: _int("CARNET_ACTIVATION_DAYS", 90))  # activation codes
    # --- sign-in throttling and per-address rate limits (issue 15 §3, docs/PORTAL.md "Throttling") ---
    # failures from one address on one identifier before each further try waits (then 1, 2, 4… delays)
    max_failed_attempts: int = field(default_factory=lambda: _int("CARNET_MAX_FAILED_ATTEMPTS", 5))
    # failures from one address, on any identifiers, before it waits
    max_failed_per_address: int = field(default_factory=lambda: _int("CARNET_MAX_FAILED_PER_ADDRESS", 30))
    # failures on one identifier, from every address, before each address that failed on it gets one try per delay
    max_failed_per_identifier: int = field(default_factory=lambda: _int("CARNET_MAX_FAILED_PER_IDENTIFIER", 100))
    throttle_delay_seconds: int = field(default_factory=lambda: _int("CARNET_THROTTLE_DELAY_SECONDS", 60))
    throttle_max_delay_seconds: int = field(default_factory=lambda: _int("CARNET_THROTTLE_MAX_DELAY_SECONDS", 3600))
    throttle_forget_hours: int = field(default_factory=lambda: _int("CARNET_THROTTLE_FORGET_HOURS", 24))
    throttle_notice_hours: int = field(default_factory=lambda: _int("CARNET_THROTTLE_NOTICE_HOURS", 24))
    rate_sign_in: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_SIGN_IN", "20/300"))
    rate_code: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_CODE", "20/300"))
    rate_activate: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_ACTIVATE", "10/900"))
    rate_reset: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_RESET", "10/900"))
    rate_token: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_TOKEN", "300/60"))
    # codes sent to one identifier (reset) or one account (a new sign-in code), whatever the address
    rate_code_sending: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_CODE_SENDING", "5/900"))
    # addresses (or networks, CIDR) of the reverse proxies whose X-Forwarded-For is believed
    trusted_proxies: tuple[str, ...] = field(default_factory=lambda: _list("CARNET_TRUSTED_PROXIES"))
    # SMART Health Links (carnet.sharing): wrong passcodes a link survives in its life; manifest requests an address
    # may make a minute (counted in the rate_limit table every node shares, carnet.throttle)
    shl_passcode_attempts: int = field(default_factory=lambda: _int("CARNET_SHL_PASSCODE_ATTEMPTS", 5))
    shl_requests_per_minute: int = field(default_factory=lambda: _int("CARNET_SHL_REQUESTS_PER_MINUTE", 30))
    # access codes (carnet.codes, issue 13 §1): default validity; wrong codes a dossier takes within the freeze period
    # before its codes freeze for that period; attempts an address may make (shared by every node)
    access_code_hours: int = field(default_factory=lambda: _int("CARNET_ACCESS_CODE_HOURS", 24))
    access_code_attempts: int = field(default_factory=lambda: _int("CARNET_ACCESS_CODE_ATTEMPTS", 5))
    access_code_freeze_minutes: int = field(default_factory=lambda: _int("CARNET_ACCESS_CODE_FREEZE_MINUTES", 60))
    rate_access_code: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_ACCESS_CODE", "10/300"))
    # a pharmacist's prescription look-ups (number + INS, or code), counted per pharmacist (carnet.prescribing)
    rate_prescription: tuple[int, int] = field(default_factory=lambda: _rate("CARNET_RATE_PRESCRIPTION", "60/300"))
    # e-prescriptions (carnet.prescribing, docs/PRESCRIPTIONS.md): where the prescribers' signing keys come from
    # ("demo": made per demo professional in var/prescriber-keys/; else a directory of <national id>.p12), the
    # passphrase of those files, the CA certificates validation trusts; the dispensing windows in days
    prescriber_keys: str = field(default_factory=lambda: _env("CARNET_PRESCRIBER_KEYS", "demo") or "demo")
    prescriber_keys_passphrase_file: str | None = field(
        default_factory=lambda: _env("CARNET_PRESCRIBER_KEYS_PASSPHRASE_FILE"))
    prescriber_trust: str | None = field(default_factory=lambda: _env("CARNET_PRESCRIBER_TRUST"))
    prescription_first_dispense_days: int = field(
        default_factory=lambda: _int("CARNET_PRESCRIPTION_FIRST_DISPENSE_DAYS", 90))
    prescription_valid_days: int = field(default_factory=lambda: _int("CARNET_PRESCRIPTION_VALID_DAYS", 365))
    access_request_hours: int = field(default_factory=lambda: _int("CARNET_ACCESS_REQUEST_HOURS", 24))
    refresh_token_days: int = field(default_factory=lambda: _int("CARNET_REFRESH_TOKEN_DAYS", 90))
    # --- notifications: email over SMTP (files in var/mail when no host is set), SMS through a gateway ---
    smtp_host: str | None = field(default_factory=lambda: _env("CARNET_SMTP_HOST"))
    smtp_port: int = field(default_factory=lambda: _int("CARNET_SMTP_PORT", 25))
    smtp_user: str | None = field(default_factory=lambda: _env("CARNET_SMTP_USER"))
    smtp_password: str | None = field(default_factory=lambda: _env("CARNET_SMTP_PASSWORD"))
    smtp_starttls: bool = field(default_factory=lambda: _env("CARNET_SMTP_STARTTLS", "false") == "true")
    mail_from: str = field(default_factory=lambda: _env("CARNET_MAIL_FROM", "Carnet <no-reply@carnet.invalid>") or "")
    sms_gateway: str = field(default_factory=lambda: _env("CARNET_SMS_GATEWAY", "file") or "file")
    # --- the clinician portal (issue 3): Pro Santé Connect, or the built-in demo identity provider when unset ---
    psc_issuer: str | None = field(default_factory=lambda: (_env("CARNET_PSC_ISSUER") or "").rstrip("/") or None)
    psc_client_id: str = field(default_factory=lambda: _env("CARNET_PSC_CLIENT_ID", "carnet-pro-portal") or "")
    psc_client_secret: str | None = field(default_factory=lambda: _env("CARNET_PSC_CLIENT_SECRET"))
    # the built-in demo identity provider's signing key (every node of a several-node demo must read the same file)
    demo_idp_key_file: str | None = field(default_factory=lambda: _env("CARNET_DEMO_IDP_KEY_FILE"))
    # national ids of the professionals who review emergency accesses (/pro/review)
    reviewers: frozenset[str] = field(default_factory=lambda: frozenset(
        v.strip() for v in (_env("CARNET_REVIEWERS") or "").split(",") if v.strip()))

    # --- teleconsultation (issue 12 §1, docs/TELECONSULTATION.md): WebRTC between the two browsers ---
    # STUN/TURN servers handed to both browsers, as the JSON list RTCPeerConnection takes ([{"urls": ...}]); none:
    # host candidates only (loopback, one LAN)
    ice_servers: str = field(default_factory=lambda: _env("CARNET_ICE_SERVERS", "[]") or "[]")
    # coturn's REST API shared secret (``static-auth-secret``): Carnet gives each side a time-limited TURN credential
    # for CARNET_TURN_URLS (comma-separated), valid CARNET_TURN_TTL seconds
    turn_secret: str | None = field(default_factory=lambda: _env("CARNET_TURN_SECRET"))
    turn_urls: tuple[str, ...] = field(default_factory=lambda: _list("CARNET_TURN_URLS"))
    turn_ttl: int = field(default_factory=lambda: _int("CARNET_TURN_TTL", 3600))
    # how often an open signalling socket looks for its peer's messages in the database (every node relays through it)
    signal_poll_ms: int = field(default_factory=lambda: _int("CARNET_SIGNAL_POLL_MS", 150))

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:  # a misspelt zone stops the start, not the first page that shows a date
            ZoneInfo(self.display_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"CARNET_DISPLAY_TIMEZONE: unknown time zone {self.display_timezone!r}") from None
        import json

        try:  # a malformed list of ICE servers stops the start, not the first consultation
            servers = json.loads(self.ice_servers)
        except ValueError:
            raise ValueError("CARNET_ICE_SERVERS: not JSON (a list of {\"urls\": ...} objects)") from None
        if not isinstance(servers, list) or not all(isinstance(s, dict) and s.get("urls") for s in servers):
            raise ValueError("CARNET_ICE_SERVERS: a JSON list of objects, each with \"urls\"")

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'carnet.db'}"

    @cached_property
    def effective_blob_url(self) -> str:
        return self.blob_url or str(self.var_dir / "blobs")

    @cached_property
    def effective_checkpoint_url(self) -> str:
        """Beside the documents: ``<blob url>/checkpoints`` on S3, else ``var/checkpoints``."""
        if self.checkpoint_url:
            return self.checkpoint_url
        if self.blob_url and self.blob_url.lower().startswith("s3://"):
            return f"{self.blob_url.rstrip('/')}/checkpoints"
        return str(self.var_dir / "checkpoints")

    @property
    def effective_audit_archive_url(self) -> str:
        """Beside the documents: ``<blob url>/audit-archive`` on S3, else ``var/audit-archive``."""
        if self.audit_archive_url:
            return self.audit_archive_url
        if self.blob_url and self.blob_url.lower().startswith("s3://"):
            return f"{self.blob_url.rstrip('/')}/audit-archive"
        return str(self.var_dir / "audit-archive")

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/oauth/token"

    def ensure_var(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
