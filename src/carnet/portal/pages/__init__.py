"""The portal's pages, one module per screen; importing this package registers them with :mod:`carnet.portal.web`."""

from carnet.portal.pages import access, auth, authorize, documents, dossier, history, home, requests, settings  # noqa: F401
