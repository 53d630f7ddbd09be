"""Helpers for the sharing tests: a patient makes links through the real service; a recipient opens them through
the public HTTP endpoints (the test client), with the independent decoder."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.testclient import TestClient

from carnet import sharing
from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from tests.conftest import World
from tests.sharing.decoder import decrypt_jwe, parse_shlink


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def make_link(world: World, **kw: Any) -> sharing.LinkView:
    spec = sharing.LinkSpec(**{"label": "Emergency summary", "summary": True,
                               "expires_at": world.services.clock() + dt.timedelta(days=7), **kw})
    return run(world.services, patient(world), lambda ctx: sharing.create(ctx, world.dossier, spec))


def manifest_path(link: str) -> str:
    return urlsplit(parse_shlink(link)["url"]).path


def open_link(client: TestClient, link: str, **body: Any) -> Any:
    return client.post(manifest_path(link), json={"recipient": "Dr Ana Ruiz, Hospital del Mar", **body})


def decrypted_files(client: TestClient, link: str, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file of a manifest, fetched when given by ``location``, decrypted by the independent decoder."""
    key = parse_shlink(link)["key"]
    out = []
    for f in manifest["files"]:
        assert f["contentType"] == "application/fhir+json"
        token = f.get("embedded")
        if token is None:
            r = client.get(urlsplit(f["location"]).path + "?" + urlsplit(f["location"]).query)
            assert r.status_code == 200 and r.headers["content-type"] == "application/jose", r.text
            token = r.text
        header, plaintext = decrypt_jwe(token, key)
        assert header["cty"] == "application/fhir+json"
        out.append(json.loads(plaintext))
    return out
