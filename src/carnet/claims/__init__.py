"""Assurance Maladie's care history: the claims file ingest, the rolling window, and its reading (issue 3 §5).

See ``docs/CLAIMS.md`` for the file format and the rules.
"""
