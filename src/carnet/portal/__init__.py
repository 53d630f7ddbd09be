"""The web portals: server-rendered pages over the same services as the FHIR API (see docs/PORTAL.md)."""
