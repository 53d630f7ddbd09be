"""The clinician portal assembled: importing :mod:`carnet.pro.pages` and :mod:`carnet.pro.demo_idp` registers their
pages with :mod:`carnet.pro.web`, which knows no page (the pages import it, never the other way)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from carnet.context import Services
from carnet.pro import demo_idp, pages, web  # noqa: F401  # importing the pages registers them
from carnet.pro.pages import teleconsult


def routes(services: Services) -> list[BaseRoute]:
    """Every clinician page; the demo identity provider's only when no real issuer is configured."""
    demo = not services.settings.psc_issuer
    out: list[BaseRoute] = [Route(path, web.endpoint(h, public, services), methods=[method])
                            for method, path, h, public in web.PAGES if demo or not path.startswith("/demo-idp")]
    if demo:
        out.extend(demo_idp.routes(services))
    out.extend(teleconsult.sockets(services))  # the teleconsultation's signalling socket
    return out
