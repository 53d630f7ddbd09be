"""The one refusal of Carnet's OAuth side: :class:`TokenError`, an OAuth error code and a description safe to show."""

from __future__ import annotations

__all__ = ["TokenError", "invalid_client", "invalid_token"]

_OAUTH_ERRORS = frozenset({
    # RFC 6749 §5.2
    "invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "unauthorized_client",
    "unsupported_grant_type",
    # RFC 6750 §3.1, for the resource server
    "invalid_token", "insufficient_scope",
    # RFC 7009 §2.2.1, for the revocation endpoint
    "unsupported_token_type",
})


class TokenError(Exception):
    """A refusal with an OAuth error code (RFC 6749 §5.2, RFC 6750 §3.1) and a description safe to show.

    ``description`` names what is wrong (a claim, a header) but never repeats token contents.
    """

    def __init__(self, error: str, description: str) -> None:
        if error not in _OAUTH_ERRORS:
            raise ValueError(f"unknown OAuth error code {error!r}")
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    @property
    def http_status(self) -> int:
        """401 for ``invalid_client`` (as SMART's reference servers answer) and ``invalid_token``, 403 for
        ``insufficient_scope``, 400 otherwise (RFC 6749 §5.2, RFC 6750 §3.1)."""
        if self.error in ("invalid_client", "invalid_token"):
            return 401
        if self.error == "insufficient_scope":
            return 403
        return 400

    def as_response(self) -> dict[str, str]:
        """The JSON body of an OAuth error response."""
        return {"error": self.error, "error_description": self.description}


def invalid_client(description: str) -> TokenError:
    return TokenError("invalid_client", description)


def invalid_token(description: str) -> TokenError:
    return TokenError("invalid_token", description)

