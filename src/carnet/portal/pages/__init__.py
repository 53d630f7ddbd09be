"""The portal's pages, one module per screen; importing this package registers them with :mod:`carnet.portal.web`."""

from carnet.portal.pages import (  # noqa: F401
    access,
    access_codes,
    auth,
    authorize,
    care_history,
    documents,
    dossier,
    history,
    home,
    measures,
    prescriptions,
    requests,
    settings,
    sharing,
    teleconsult,
    trends,
)
