"""Real ``carnet serve`` nodes for the crash, rotation and restore drills: start one, wait until it is ready, kill it
with ``SIGKILL`` (no shutdown, no flush), stop the rest politely; and what the drills send them (ITI-65 transaction
bundles and ITI-105 simplified publishes, with a token from the node's own token endpoint)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from carnet.auth.assertions import make_client_assertion
from carnet.auth.keys import ServerKey
from carnet.db.migrate import upgrade
from tests.conftest import World, fresh_postgres_database, provide_bundle, require_postgres
from tests.servers import free_port
from tests.test_examples import carnet

PUBLIC = "http://carnet.test"  # every node's CARNET_BASE_URL, and the Host a load balancer would forward
HOST = {"Host": "carnet.test"}
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(CARNET_BASE_URL=PUBLIC, **settings)
    return env


def drill_database(kind: str, root: Path) -> tuple[str, Callable[[], None] | None]:
    """A migrated database for a drill: a fresh PostgreSQL database when ``kind`` starts with ``postgresql`` (with the
    function that drops it), else a SQLite file under ``root``."""
    drop = None
    if kind.startswith("postgresql"):
        require_postgres()
        url, drop = fresh_postgres_database()
    else:
        url = f"sqlite:///{root / 'carnet.db'}"
    upgrade(url)
    return url, drop


def token_key_file(root: Path) -> Path:
    """The token-signing key every node of a drill shares (a private file, as ``carnet serve`` wants it)."""
    path = root / "token-key.pem"
    path.write_bytes(ServerKey.generate().to_pem())
    path.chmod(0o600)
    return path


@dataclass
class Node:
    """One ``carnet serve`` process on a port of its own, with its own ``CARNET_VAR_DIR``."""

    root: Path
    env: dict[str, str]
    name: str
    port: int = field(default_factory=free_port)
    workers: int = 1  # carnet serve --workers
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Node:
        env = {"CARNET_VAR_DIR": str(self.root / self.name), **self.env}
        with (self.root / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(carnet("serve", "--port", str(self.port), "--workers", str(self.workers)),
                                         cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.base}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"node {self.name} did not become ready (exit code {self.proc.poll()}); see "
                    f"{self.root / (self.name + '.log')}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes of a ``--workers`` node (its children started by multiprocessing)."""
        assert self.proc is not None
        pids = []
        for entry in Path("/proc").iterdir():  # every process whose parent is the node (as pgrep -P does)
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
                if int(ppid) == self.proc.pid and state != "Z" and b"spawn_main" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except (OSError, ValueError):
                pass  # gone meanwhile
        return pids

    def kill9_workers(self, n: int) -> list[int]:
        """SIGKILL ``n`` of the node's workers (the node replaces them); their pids."""
        killed = []
        for pid in self.worker_pids()[:n]:
            try:
                os.kill(pid, signal.SIGKILL)
                self.kills += 1
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def token(http: httpx.Client, base: str, world: World, role: str = "gp") -> str:
    assertion = make_client_assertion(world.key, world.client_ids["professional"], f"{PUBLIC}/oauth/token",
                                      int(time.time()), jti=str(uuid.uuid4()), professional_id=world.pros[role])
    r = http.post(f"{base}/oauth/token", headers=HOST, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION, "client_assertion": assertion})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@dataclass
class Sent:
    """One publication a client sent: what it carried, and what the node answered (``None``: no answer)."""

    kind: str  # ITI-65 | ITI-105
    master: str
    data: bytes
    status: int | None = None
    document_id: str | None = None
    reached: bool = True  # False: the connection was refused (the node was down), nothing was sent

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def pdf(size: int) -> bytes:
    body = os.urandom(max(0, size - 16))
    return b"%PDF-1.4\n" + body + b"\n%%EOF\n"


def document(world: World, data: bytes, master: str, loinc: str = "11488-4", ctype: str = "application/pdf",
             title: str = "Compte rendu") -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "status": "current",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
            "type": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": f"Patient/{world.dossier}"},
            "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(data).decode(),
                                        "title": title}}]}


def send(http: httpx.Client, base: str, access: str, world: World, kind: str, data: bytes,
         loinc: str = "11488-4", ctype: str = "application/pdf") -> Sent:
    """Publish ``data`` through ITI-65 or ITI-105; a transport error (the node died with the request in flight) leaves
    ``status`` None."""
    sent = Sent(kind, f"urn:uuid:{uuid.uuid4()}", data)
    doc = document(world, data, sent.master, loinc, ctype)
    headers = {**HOST, "Authorization": f"Bearer {access}", "Accept": "application/fhir+json"}
    try:
        if kind == "ITI-105":
            r = http.post(f"{base}/fhir/DocumentReference", json=doc, headers=headers)
            if r.status_code == 201:
                sent.document_id = r.json()["id"]
        else:
            u = uuid.uuid4()
            bundle = provide_bundle(doc, data, ids=(f"urn:uuid:{u}-l", f"urn:uuid:{u}-d", f"urn:uuid:{u}-b"))
            r = http.post(f"{base}/fhir", json=bundle, headers=headers)
            if r.status_code == 200:
                sent.document_id = next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                                        if e["response"]["location"].startswith("DocumentReference/"))
        sent.status = r.status_code
    except httpx.ConnectError:
        sent.reached = False
    except httpx.TransportError:
        pass
    return sent


def binary(http: httpx.Client, base: str, access: str, document_id: str) -> httpx.Response:
    """ITI-68: the document's bytes as they were published."""
    return http.get(f"{base}/fhir/Binary/{document_id}",
                    headers={**HOST, "Authorization": f"Bearer {access}", "Accept": "application/octet-stream"})
