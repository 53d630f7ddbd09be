"""The patient portal assembled: importing :mod:`carnet.portal.pages` registers every page with
:mod:`carnet.portal.web`, which knows no page (the pages import it, never the other way)."""

from __future__ import annotations

from starlette.routing import Mount, Route

from carnet.context import Services
from carnet.portal import pages, web  # noqa: F401  # importing the pages registers them


def routes(services: Services) -> list[Route | Mount]:
    return web.routes(services)
