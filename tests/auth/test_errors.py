"""Tests for carnet.auth.errors: the OAuth refusal."""

from __future__ import annotations

import pytest

from carnet.auth.errors import TokenError

# --------------------------------------------------------------------------------------------------------------------
# Errors


def test_a_token_error_becomes_an_oauth_error_body():
    error = TokenError("invalid_client", "this client is disabled")

    assert error.as_response() == {"error": "invalid_client", "error_description": "this client is disabled"}
    assert error.http_status == 401
    assert TokenError("invalid_request", "x").http_status == 400
    assert TokenError("insufficient_scope", "x").http_status == 403


def test_a_token_error_knows_only_oauth_error_codes():
    with pytest.raises(ValueError):
        TokenError("forbidden", "x")
