"""Every message id of the portals has a French translation (French is the default language)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from carnet.portal import i18n

PORTAL = Path(i18n.__file__).parent
# The portals (the clinician portal's pages are in carnet.pro), and the modules whose refusals the portals show
# (AccountError messages are message ids).
SOURCES = [PORTAL, PORTAL.parent / "accounts", PORTAL.parent / "pro"]
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "AccountError": None,
            "N_": None}


def message_ids() -> dict[str, str]:
    found: dict[str, str] = {}
    for source in SOURCES:
        for filename, lineno, message, _comments, context in extract_from_dir(
                str(source), METHODS, keywords=KEYWORDS,
                options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}):
            text = message[0] if isinstance(message, tuple) else message
            if text:  # a message with a context is looked up as "context\x04id" (gettext's convention)
                found.setdefault(f"{context}\x04{text}" if context else text, f"{source.name}/{filename}:{lineno}")
    return found


def test_the_extraction_finds_the_message_ids_of_templates_and_code() -> None:
    ids = message_ids()
    assert "Sign in" in ids and "Skip to content" in ids and "This identifier or password is not right." in ids


def test_every_message_id_has_a_french_translation() -> None:
    french = i18n._catalogue("fr")
    missing = {text: where for text, where in message_ids().items() if text not in french}
    assert not missing, "\n".join(f"{where}: {text}" for text, where in sorted(missing.items(), key=lambda i: i[1]))


def test_english_is_the_message_id_and_french_the_default() -> None:
    assert i18n.negotiate(None, None) == "fr"
    assert i18n.negotiate(None, "en-GB,en;q=0.9") == "en"
    assert i18n.negotiate("fr", "en") == "fr"
    assert i18n.language("en").gettext("Sign in") == "Sign in"
    assert i18n.language("fr").gettext("Sign in") != "Sign in"


def test_one_clock_and_day_first_dates_in_both_languages() -> None:
    import datetime as dt

    late = dt.datetime(2026, 12, 4, 23, 30, tzinfo=dt.UTC)  # already the 5th in Paris
    fr, en = i18n.language("fr").format, i18n.language("en").format
    assert fr.datetime(late, "short") == "05/12/2026 00:30" and fr.date(late, "long") == "5 décembre 2026"
    assert en.datetime(late, "short") == "05/12/2026, 00:30" and en.date(late, "long") == "5 December 2026"
    assert fr.when(late) == "05/12/2026 00:30 (heure de Paris)" and en.when(late).endswith("(Paris time)")
    assert fr.day("2026-12-04") == "4 déc. 2026" and en.day("2026-12-04T23:30:00Z") == "5 Dec 2026"
    assert fr.day("not a date") == ""
    reunion = i18n.language("fr", "Indian/Reunion").format
    assert reunion.datetime(late, "short") == "05/12/2026 03:30" and "Réunion" in reunion.zone_label


def test_a_display_time_zone_that_does_not_exist_stops_the_start(tmp_path: Path) -> None:
    import pytest

    from carnet.config import Settings

    assert Settings(var_dir=tmp_path).display_timezone == "Europe/Paris"
    with pytest.raises(ValueError, match="CARNET_DISPLAY_TIMEZONE"):
        Settings(var_dir=tmp_path, display_timezone="Europe/Pariss")


def test_a_message_with_a_context_has_its_own_translation() -> None:
    fr = i18n.language("fr")
    assert (fr.pgettext("female", "born on"), fr.pgettext("male", "born on"), fr.gettext("born on")) == \
        ("née le", "né le", "né(e) le")
    assert i18n.language("en").pgettext("female", "born on") == "born on"
