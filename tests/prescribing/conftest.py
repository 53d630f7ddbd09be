"""The clinician portal's test client, for the prescription pages."""

from tests.pro.conftest import browser  # noqa: F401 - the fixture, shared with tests/pro
