"""The channels a message leaves by: email (SMTP, or ``.eml`` files in ``var/mail``), SMS (a gateway; files in
``var/sms`` by default) and post (activation letters; files in ``var/post``).

Used by the outbox worker and, synchronously, by the accounts module for sign-in codes. A channel either returns
(the message was handed over), raises :class:`PermanentFailure` (resending cannot help: the address or the message is
refused) or :class:`TransientFailure` (try again later). Failure texts name the kind of failure, never an address or
any content, because the operator's ``carnet outbox list`` shows them.
"""

from __future__ import annotations

import email.utils
import importlib
import ipaddress
import os
import smtplib
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from carnet.config import Settings
from carnet.fsutil import fsync_directory

CHANNELS = ("email", "sms", "post")
SMTP_TIMEOUT = 20  # seconds


class DeliveryFailure(Exception):
    """A message could not be handed over. ``str(exc)`` is safe to show: no address, no content."""


class PermanentFailure(DeliveryFailure):
    pass


class TransientFailure(DeliveryFailure):
    pass


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write ``directory/name`` so that a reader never sees half a file: temp file, fsync, rename, fsync the
    directory. Writing the same name again replaces the file (a resend never makes a second file)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        final = directory / name
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return final


class SmsGateway(Protocol):
    """What an SMS gateway provides. ``phone`` is E.164; ``message_id`` is stable across retries, so a gateway that
    supports it can de-duplicate. Raise :class:`PermanentFailure` / :class:`TransientFailure`."""

    def send(self, phone: str, text: str, message_id: str) -> None: ...


class PostGateway(Protocol):
    """What a postal service provider provides (activation letters): a postal address and the letter's text."""

    def send(self, address: str, subject: str, text: str, message_id: str) -> None: ...


class FileSmsGateway:
    """The default gateway: one text file per message in ``var/sms/``, so a newcomer can read them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, phone: str, text: str, message_id: str) -> None:
        write_atomically(self.directory, f"{message_id}.txt", f"To: {phone}\n\n{text}\n".encode())


class FilePostGateway:
    """The default for letters: one text file per letter in ``var/post/``, to print or to hand to a provider."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, address: str, subject: str, text: str, message_id: str) -> None:
        write_atomically(self.directory, f"{message_id}.txt", f"{address}\n\n{subject}\n\n{text}\n".encode())


def _load_factory(spec: str) -> Callable[[Settings], object]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError("CARNET_SMS_GATEWAY is 'file' or 'package.module:factory'")
    factory = getattr(importlib.import_module(module), name)
    if not callable(factory):
        raise ValueError("CARNET_SMS_GATEWAY must name a callable")
    return factory


def sms_gateway_for(settings: Settings) -> SmsGateway:
    """``CARNET_SMS_GATEWAY=file`` (default) or ``package.module:factory``, a callable taking the settings and
    returning an object with the :class:`SmsGateway` method."""
    if settings.sms_gateway == "file":
        return FileSmsGateway(settings.var_dir / "sms")
    gateway = _load_factory(settings.sms_gateway)(settings)
    if not callable(getattr(gateway, "send", None)):
        raise ValueError("the SMS gateway factory must return an object with a send(phone, text, message_id) method")
    return gateway  # type: ignore[return-value]


def _mail_domain(settings: Settings) -> str:
    _, addr = email.utils.parseaddr(settings.mail_from)
    return addr.rpartition("@")[2] or "carnet.invalid"


def ehlo_name(settings: Settings) -> str:
    """The name Carnet gives itself in SMTP's EHLO: the host of ``CARNET_BASE_URL`` (an address literal for an IP).
    Left to ``smtplib``, it is ``socket.getfqdn()``, a reverse DNS lookup on every connection, which can stall a
    one-time code for many seconds when the resolver is slow or its cache cold (right after a restart): the person
    waits for that code, so no lookup stands in its way."""
    host = urllib.parse.urlsplit(settings.base_url).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


def _smtp_failure(code: int, what: str) -> DeliveryFailure:
    if 500 <= code < 600:
        return PermanentFailure(f"smtp {code} ({what})")
    return TransientFailure(f"smtp {code} ({what})")


class Channels:
    """Sends one message by one channel. Build it with :func:`channels_for`."""

    def __init__(self, settings: Settings, sms: SmsGateway, post: PostGateway) -> None:
        self.settings = settings
        self.sms = sms
        self.post = post

    def send(self, channel: str, address: str, subject: str, text: str, message_id: str) -> None:
        """Hand one message over. ``message_id`` is stable across retries (it becomes the email's Message-ID)."""
        if channel == "email":
            self._email(address, subject, text, message_id)
        elif channel == "sms":
            self.sms.send(address, text, message_id)
        elif channel == "post":
            self.post.send(address, subject, text, message_id)
        else:
            raise PermanentFailure("unknown channel")

    def email_message(self, address: str, subject: str, text: str, message_id: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.mail_from
        msg["To"] = address
        msg["Subject"] = subject
        msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        # The same Message-ID on every attempt: a receiver that saw it once can drop a repeat.
        msg["Message-ID"] = f"<{message_id}@{_mail_domain(self.settings)}>"
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
        msg.set_content(text)
        return msg

    def _email(self, address: str, subject: str, text: str, message_id: str) -> None:
        msg = self.email_message(address, subject, text, message_id)
        s = self.settings
        if not s.smtp_host:
            write_atomically(s.var_dir / "mail", f"{message_id}.eml", msg.as_bytes())
            return
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT,
                              local_hostname=ehlo_name(s)) as smtp:
                smtp.ehlo()
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _smtp_failure(max(codes) if codes else 550, "recipient refused") from None
        except smtplib.SMTPAuthenticationError as exc:
            # A configuration problem the operator can fix: retry later rather than fail every message.
            raise TransientFailure(f"smtp {exc.smtp_code} (authentication)") from None
        except smtplib.SMTPSenderRefused as exc:
            raise _smtp_failure(exc.smtp_code, "sender refused") from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_failure(exc.smtp_code, "refused") from None
        except smtplib.SMTPNotSupportedError:
            raise TransientFailure("smtp extension not supported (STARTTLS or AUTH)") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientFailure(f"connection error ({type(exc).__name__})") from None


def channels_for(settings: Settings) -> Channels:
    """The channels configured by ``settings`` (SMTP host or mail files; the SMS gateway; letters as files)."""
    return Channels(settings, sms_gateway_for(settings), FilePostGateway(settings.var_dir / "post"))
