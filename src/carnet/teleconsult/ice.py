"""The STUN/TURN servers each browser is given (``CARNET_ICE_SERVERS``), and time-limited TURN credentials in the
scheme of coturn's REST API (``use-auth-secret`` / ``static-auth-secret``): the user name is ``<expiry>:<label>`` (a
Unix time), the password the base64 of HMAC-SHA1 of that name under the shared secret. coturn checks both without
calling Carnet; a credential is worth nothing after its expiry (docs/TELECONSULTATION.md, "Production")."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from carnet.config import Settings


def turn_credential(secret: str, label: str, expires: int) -> tuple[str, str]:
    username = f"{expires}:{label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()  # noqa: S324 - coturn's scheme
    return username, base64.b64encode(digest).decode()


def servers(settings: Settings, label: str, now: dt.datetime) -> list[dict[str, Any]]:
    """What ``RTCPeerConnection({iceServers})`` takes: the configured servers, then the TURN servers with a
    credential for this connection (``label``: its random id, which says nothing of who is calling)."""
    out: list[dict[str, Any]] = list(json.loads(settings.ice_servers))
    if settings.turn_secret and settings.turn_urls:
        username, credential = turn_credential(settings.turn_secret, label, int(now.timestamp()) + settings.turn_ttl)
        out.append({"urls": list(settings.turn_urls), "username": username, "credential": credential})
    return out
