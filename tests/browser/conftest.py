"""Browser tests: Debian's Chromium driven by Playwright against a real Carnet server (uvicorn in a thread), with
one-time codes read from a real SMTP exchange (an in-process aiosmtpd server).

Chromium is `/usr/bin/chromium` (Debian package `chromium`; `.ci/run` installs it when absent). Without it the
browser tests are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import dataclasses
import email
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller

from carnet.app import create_app
from carnet.context import Services
from tests.servers import free_port, wait_healthy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


class Mailbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def code_for(self, address: str, after: int = 0, timeout: float = 10) -> str:
        """The one-time code of the first message to ``address`` received after the ``after``-th message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for msg in self.messages[after:]:
                    if msg["To"] == address:
                        body = msg.get_payload(decode=True)
                        assert isinstance(body, bytes)
                        m = re.search(r"\b(\d{6})\b", body.decode())
                        if m:
                            return m.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no code mailed to {address}")

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture(scope="session")
def live(services: Services, mailbox: Mailbox) -> Iterator[tuple[str, Services]]:
    """A real server on a free port, sharing the test database, sending email to the aiosmtpd server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = dataclasses.replace(services.settings, smtp_host="127.0.0.1",
                                   smtp_port=mailbox.port, base_url=base)  # type: ignore[attr-defined]
    live_services = dataclasses.replace(services, settings=settings)
    server = uvicorn.Server(uvicorn.Config(create_app(live_services), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_healthy(base, thread.is_alive), "the server did not start"
    yield base, live_services
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is required under CI=true (Debian package chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 360, "height": 780}, locale="fr-FR")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
