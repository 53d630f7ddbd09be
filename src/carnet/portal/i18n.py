"""Languages of the portals: French by default, English too.

Templates and code are written with English message ids (``_("Documents")``); the French catalogue translates them.
A catalogue is every ``.po`` file in ``locales/<lang>/LC_MESSAGES/`` (one per screen family, so that screens are
translated independently), read with Babel when the process starts: no compiled ``.mo`` file is kept in the
repository. ``tests/portal/test_i18n.py`` extracts the ids from templates and code with Babel and fails when one has
no French translation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po
from babel.support import Format

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("fr", "en")
DEFAULT = "fr"
LABELS = {"fr": "Français", "en": "English"}


def N_(message: str) -> str:  # noqa: N802 - marks a message id for extraction, translated where it is shown
    return message


@dataclass(frozen=True)
class Language:
    code: str
    gettext: Callable[[str], str]
    ngettext: Callable[[str, str, int], str]
    format: Format


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
        if isinstance(message.string, tuple | list):
            if all(message.string):
                table[str(key)] = tuple(str(s) for s in message.string)
        elif message.string:
            table[str(key)] = str(message.string)


@functools.cache
def language(code: str) -> Language:
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

    return Language(code=code, gettext=gettext, ngettext=ngettext, format=Format(code))


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
