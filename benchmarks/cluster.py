"""What ``load.py`` measures against: N ``carnet serve`` nodes over one database and one blob store, and the S3
server that holds the blobs when the store is ``s3``.

A node stands for a machine (docs/SCALE.md, "Several nodes"): its own port and its own var dir
(``<var-dir>/node<i>``, where its log goes), and the settings every node must share, passed explicitly: the database
URL, the blob store (``CARNET_BLOB_URL``), the master key ring (``CARNET_MASTER_KEY``, read from the key file the fill
created in the var dir) and the token signing key (``CARNET_TOKEN_KEY_FILE``). Every node gets the same
``CARNET_BASE_URL`` (the first node's address, standing for the load balancer's name): it is the issuer and audience
of the tokens and the audience of the client assertions, whichever node answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shared_keys(var_dir: Path) -> dict[str, str]:
    """The master key ring (as a ``CARNET_MASTER_KEY`` spec, current key last) and the token key file of the var dir,
    created there if missing: the fill and every node use the same ones."""
    from carnet.auth.keys import ServerKey
    from carnet.blobs.crypto import KeyRing

    KeyRing.load_or_create(var_dir / "master-key.json")
    ring = json.loads((var_dir / "master-key.json").read_text())
    kids = [k for k in ring["keys"] if k != ring["current"]] + [ring["current"]]
    token_key = var_dir / "token-key.pem"
    ServerKey.load_or_create(token_key)
    return {"CARNET_MASTER_KEY": ",".join(f"{k}:{ring['keys'][k]}" for k in kids),
            "CARNET_TOKEN_KEY_FILE": str(token_key)}


@dataclass
class Cluster:
    """Running nodes: ``bases[i]`` is node i's address; ``public`` is the shared ``CARNET_BASE_URL``."""

    bases: list[str]
    public: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_cluster(db_url: str, var_dir: Path, nodes: int, workers_per_node: int, blob_url: str,
                  extra_env: dict[str, str] | None = None, name: str = "") -> Cluster:
    """Start ``nodes`` ``carnet serve --workers workers_per_node`` processes on free ports and wait until every one
    answers ``/health/ready`` (its database and blob store reachable). ``name`` prefixes the nodes' var dirs (two
    clusters running at once)."""
    import httpx

    ports = [free_port() for _ in range(nodes)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(extra_env or {}, **shared_keys(var_dir), CARNET_DATABASE_URL=db_url, CARNET_BLOB_URL=blob_url,
               CARNET_BASE_URL=bases[0])
    cluster = Cluster(bases, bases[0])
    for i, port in enumerate(ports):
        node_dir = var_dir / f"{name}node{i}"
        node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (node_dir / "server.log").open("ab") as log:  # the per-request log lines, kept out of the terminal
            cluster.procs.append(subprocess.Popen(
                [sys.executable, "-m", "carnet.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(workers_per_node)],
                env={**env, "CARNET_VAR_DIR": str(node_dir)}, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.time() + 90
    waiting = list(zip(bases, cluster.procs, strict=True))
    while waiting and time.time() < deadline:
        base, proc = waiting[0]
        if proc.poll() is not None:
            cluster.stop()
            raise SystemExit(f"carnet serve exited with {proc.returncode} (see {var_dir}/node*/server.log)")
        try:
            if httpx.get(f"{base}/health/ready", timeout=5).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    if waiting:
        cluster.stop()
        raise SystemExit(f"carnet serve did not become ready within 90 s (see {var_dir}/node*/server.log)")
    time.sleep(1.0 if workers_per_node > 1 else 0.2)  # let every worker of every node finish starting
    return cluster


class S3:
    """The object store of the ``s3`` configurations: moto's standalone server (the venv's ``moto_server``) started
    here on a free port, or an endpoint given (credentials and region from the usual ``AWS_*`` variables)."""

    def __init__(self, url: str, endpoint: str | None) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.s3server import S3Server

        self.url = url
        self.server = S3Server(endpoint=endpoint.rstrip("/"), external=True) if endpoint else S3Server.moto()
        self.bucket = url.removeprefix("s3://").split("/", 1)[0]
        client = self.server.client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception:  # noqa: BLE001 - missing (404) or not ours yet: create it
            client.create_bucket(Bucket=self.bucket)

    @property
    def label(self) -> str:
        return f"an S3 endpoint ({self.server.endpoint})" if self.server.external else \
            f"moto_server ({self.server.endpoint})"

    def env(self) -> dict[str, str]:
        """The AWS settings a node (or ``carnet blobs migrate``) reaches the store with."""
        env = self.server.env()
        if self.server.external and os.environ.get("AWS_REGION"):
            env["AWS_REGION"] = os.environ["AWS_REGION"]
        return env

    def migrate_from(self, var_dir: Path) -> dict[str, Any]:
        """``carnet blobs migrate --to <url>`` from the var dir's local blobs (resumable: blobs already there with
        the same hash are skipped); its output goes to ``<var-dir>/migrate.log``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
        env.update(self.env(), CARNET_VAR_DIR=str(var_dir), COLUMNS="120")
        log_path = var_dir / "migrate.log"
        t0 = time.perf_counter()
        with log_path.open("wb") as log:
            rc = subprocess.call([sys.executable, "-m", "carnet.cli", "blobs", "migrate", "--to", self.url],
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - t0
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        summary = next((ln.strip() for ln in reversed(lines) if " copied (" in ln), lines[-1] if lines else "")
        if rc != 0:
            raise SystemExit(f"carnet blobs migrate failed ({rc}): {summary} (see {log_path})")
        print(f"migrate: {summary} in {seconds:.1f} s", flush=True)
        return {"to": self.url, "store": self.label, "seconds": round(seconds, 1), "summary": summary}

    def stop(self) -> None:
        if not self.server.external:
            self.server.stop()
