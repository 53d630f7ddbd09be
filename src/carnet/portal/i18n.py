"""Languages of the portals: French by default, English too.

Templates and code are written with English message ids (``_("Documents")``); the French catalogue translates them.
A catalogue is every ``.po`` file in ``locales/<lang>/LC_MESSAGES/`` (one per screen family, so that screens are
translated independently), read with Babel when the process starts: no compiled ``.mo`` file is kept in the
repository. ``tests/portal/test_i18n.py`` extracts the ids from templates and code with Babel and fails when one has
no French translation.

Dates and times: one display time zone for every page of both portals (``CARNET_DISPLAY_TIMEZONE``, Europe/Paris by
default; instants are stored in UTC) and one format per language, day first in both: French as written in France
(``fr_FR``), English as written in Britain (``en_GB``), never the US month-first order. :class:`DisplayFormat`
converts every instant to the display zone before formatting it, a date included (23:30 UTC is already tomorrow in
Paris); :meth:`DisplayFormat.when` adds the zone's name ("heure de Paris") where a time is shown in a sentence.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import get_timezone_location
from babel.messages.pofile import read_po
from babel.support import Format

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("fr", "en")
DEFAULT = "fr"
LABELS = {"fr": "Français", "en": "English"}
#: The Babel locale of each language: day-first dates in both (en_GB, not the US en).
LOCALES_OF = {"fr": "fr_FR", "en": "en_GB"}
DISPLAY_TIMEZONE = "Europe/Paris"


def N_(message: str) -> str:  # noqa: N802 - marks a message id for extraction, translated where it is shown
    return message


class DisplayFormat(Format):
    """Babel's formats for one language, every instant shown in the display time zone."""

    zone: ZoneInfo
    zone_label: str  # "heure de Paris", "Paris time"

    def date(self, date: Any = None, format: Any = "medium") -> str:  # noqa: A002 - Babel's name
        return super().date(self.local_day(date), format)

    def local_day(self, value: Any) -> Any:
        """A day to show: an instant's day in the display zone; an ISO string (``2026-12-04``, an instant) parsed."""
        if isinstance(value, str):
            text = value.strip().replace("Z", "+00:00")
            try:
                value = dt.datetime.fromisoformat(text) if "T" in text else dt.date.fromisoformat(text[:10])
            except ValueError:
                return None
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            return aware.astimezone(self.zone).date()
        return value

    def day(self, value: Any, format: Any = "medium") -> str:  # noqa: A002 - Babel's name
        """A day, from a date, an instant or an ISO string; empty when there is none or it cannot be read."""
        found = self.local_day(value)
        return super().date(found, format) if found is not None else ""

    def when(self, value: dt.datetime, format: Any = "short") -> str:  # noqa: A002 - Babel's name
        """An instant in a sentence, with the zone it is shown in: "04/12/2026 15:05 (heure de Paris)"."""
        return f"{self.datetime(value, format)} ({self.zone_label})"


@dataclass(frozen=True)
class Language:
    code: str
    gettext: Callable[[str], str]
    ngettext: Callable[[str, str, int], str]
    format: DisplayFormat
    pgettext: Callable[[str, str], str]  # a message whose translation depends on a context ("female", "male")


@functools.cache
def _catalogue(code: str) -> dict[str, str | tuple[str, ...]]:
    table: dict[str, str | tuple[str, ...]] = {}
    for path in sorted((LOCALES / code / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            _merge(table, read_po(f, locale=code))
    return table


def _merge(table: dict[str, str | tuple[str, ...]], catalog: object) -> None:
    for message in catalog:  # type: ignore[attr-defined]
        if not message.id or message.fuzzy:
            continue
        key = message.id[0] if isinstance(message.id, tuple | list) else message.id
        if message.context:  # gettext's convention: a message with a context is "context\x04id"
            key = f"{message.context}\x04{key}"
        if isinstance(message.string, tuple | list):
            if all(message.string):
                table[str(key)] = tuple(str(s) for s in message.string)
        elif message.string:
            table[str(key)] = str(message.string)


@functools.cache
def language(code: str, zone_name: str = DISPLAY_TIMEZONE) -> Language:
    """The language ``code`` (French when unknown), its dates and times shown in the time zone ``zone_name``."""
    code = code if code in LANGUAGES else DEFAULT
    table = _catalogue(code)

    def gettext(message: str) -> str:
        found = table.get(message)
        return found if isinstance(found, str) else message

    def ngettext(singular: str, plural: str, n: int) -> str:
        found = table.get(singular)
        if isinstance(found, tuple):
            return found[0] if n == 1 or (code == "fr" and n in (0, 1)) else found[-1]
        return singular if n == 1 else plural

    def pgettext(context: str, message: str) -> str:
        found = table.get(f"{context}\x04{message}", table.get(message))
        return found if isinstance(found, str) else message

    zone = ZoneInfo(zone_name)
    fmt = DisplayFormat(LOCALES_OF[code], tzinfo=zone)
    fmt.zone = zone
    city = get_timezone_location(zone_name, locale=LOCALES_OF[code], return_city=True)
    fmt.zone_label = gettext("{city} time").format(city=city)
    return Language(code=code, gettext=gettext, ngettext=ngettext, format=fmt, pgettext=pgettext)


def negotiate(cookie: str | None, accept_language: str | None, preferred: str | None = None) -> str:
    """The language for a request: an explicit choice (cookie), then the account's, then the browser's, then French."""
    for choice in (cookie, preferred):
        if choice in LANGUAGES:
            return str(choice)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT
