"""The patient portal assembled: importing :mod:`carnet.portal.pages` registers every page with
:mod:`carnet.portal.web`, which knows no page (the pages import it, never the other way)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from carnet.context import Services
from carnet.portal import pages, web  # noqa: F401  # importing the pages registers them
from carnet.portal.pages import teleconsult


def routes(services: Services) -> list[BaseRoute]:
    """The pages, the static files, and the teleconsultation's signalling socket."""
    return [*web.routes(services), *teleconsult.sockets(services)]
