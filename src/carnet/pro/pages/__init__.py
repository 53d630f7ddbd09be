"""The clinician portal's pages (importing this package registers them)."""

import carnet.pro.pages.access_codes
import carnet.pro.pages.dossier
import carnet.pro.pages.inbox
import carnet.pro.pages.measures
import carnet.pro.pages.prescriptions
import carnet.pro.pages.requests
import carnet.pro.pages.review
import carnet.pro.pages.signin
import carnet.pro.pages.teleconsult  # noqa: F401
