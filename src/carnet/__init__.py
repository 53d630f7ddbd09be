"""Carnet: an open-source shared medical record server."""

__version__ = "0.1.0"
