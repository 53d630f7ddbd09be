"""The portals keep their own Content-Security-Policy (``style-src 'self'``, ``script-src 'self'``): Chromium reports no
violation on the pages of either portal (htmx would add an inline ``<style>`` of its own unless told not to; its
rules are in carnet.css). The listener is shown to catch a violation."""

from __future__ import annotations

from typing import Any

from carnet.context import Services
from tests.browser import test_clinician_paths as clinician
from tests.browser import test_patient_paths as patient
from tests.browser.conftest import Mailbox
from tests.conftest import World

VIEWER_LINK = ("eyJ1cmwiOiJodHRwczovL3gueS9zaGwveCIsImtleSI6InJ4VGdZbE9hS0pQRnRjRWQwcWNjZU44d0VVNHA5NFNxQXdJV1F"
               "lNnVYN1EifQ")  # {"url": "https://x.y/shl/x", "key": ...}: the viewer shows its form


class Violations:
    """What Chromium reports about the CSP on the console (``Refused to apply inline style …``)."""

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("console", self._console)

    def _console(self, msg: Any) -> None:
        if "Content Security Policy" in msg.text:
            self.seen.append(f"{msg.location.get('url', '')}: {msg.text[:200]}")


def visit(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(50)  # htmx runs after DOMContentLoaded; its inline style would be reported by now


def test_a_violation_would_be_reported(page: Any, live: tuple[str, Services]) -> None:
    base, _ = live
    seen = Violations(page)
    visit(page, base + "/portal/sign-in")
    page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>p { color: red }</style>')")
    page.wait_for_timeout(100)
    assert any("style-src" in v for v in seen.seen), seen.seen


def test_no_page_of_either_portal_breaks_its_content_security_policy(
        page: Any, live: tuple[str, Services], world: World, mailbox: Mailbox) -> None:
    base, services = live
    seen = Violations(page)
    person = patient.Person(world, services)
    visit(page, base + "/portal/sign-in")
    patient.sign_in(page, base, person, mailbox)
    for path in ("/portal/", "/portal/documents", "/portal/access", "/portal/history", "/portal/settings",
                 "/portal/sharing", "/portal/measures", "/shl/view#shlink:/" + VIEWER_LINK):
        visit(page, base + path)
    page.context.clear_cookies()
    nid, button = clinician.new_professional(world)
    clinician.grant(world, nid)
    clinician.sign_in(page, base, button)
    for path in ("/pro/", f"/pro/dossier/{world.dossier}", "/pro/inbox"):
        visit(page, base + path)
    assert not seen.seen, "\n".join(seen.seen)
