"""Nodes killed with ``SIGKILL`` while ITI-65 and ITI-105 publications are in flight, round after round (issue 15 §8):
several ``carnet serve`` processes over one PostgreSQL database and one blob store (a directory, or S3), and the
embedded default (SQLite, one process). Afterwards every acknowledged document is served by ITI-68 with its exact
bytes, a publication that got no answer is either whole or absent, no row is half-written, no row lacks its blob
(an orphan blob is allowed: the garbage collector's), and ``carnet audit verify`` is clean.

``CARNET_CRASH_ROUNDS`` raises the number of rounds (4 by default, so that the test stays under a minute in CI).
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from carnet.db.tables import document_identifier
from tests.conftest import World
from tests.scale.consistency import audit_verify, check
from tests.scale.nodes import PUBLIC, Node, Sent, binary, clean_env, drill_database, pdf, send, token, token_key_file

ROUNDS = int(os.environ.get("CARNET_CRASH_ROUNDS", "4"))
CLIENTS = 4
SIZES = (2_000, 40_000, 400_000, 1_500_000)  # the last is several streamed segments


@dataclass
class Drill:
    services: Services
    env: dict[str, str]
    nodes: list[Node]
    root: Path


@pytest.fixture(params=["postgresql-3-nodes", "sqlite-1-node", "postgresql-s3-2-nodes", "postgresql-2-workers"])
def drill(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Drill]:
    """``postgresql-2-workers``: one node of two worker processes (``carnet serve --workers 2``), whose workers are
    killed instead of whole nodes; the node replaces them."""
    kind: str = request.param
    url, drop = drill_database(kind, tmp_path)
    token_key = token_key_file(tmp_path)
    master = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    blob_url = str(tmp_path / "blobs")
    extra: dict[str, str] = {}
    if kind.endswith("s3-2-nodes"):
        s3 = request.getfixturevalue("s3_server")
        extra = s3.env()
        for k, v in extra.items():
            monkeypatch.setenv(k, v)
        blob_url = f"s3://{s3.new_bucket()}/blobs"
    env = clean_env(CARNET_DATABASE_URL=url, CARNET_BLOB_URL=blob_url, CARNET_MASTER_KEY=master,
                    CARNET_TOKEN_KEY_FILE=str(token_key), **extra)
    settings = Settings(var_dir=tmp_path / "test", database_url=url, blob_url=blob_url, master_key=master,
                        token_key_file=str(token_key), base_url=PUBLIC)
    services = build_services(settings, make_engine(url, pool_size=2))
    if kind.endswith("workers"):
        nodes = [Node(tmp_path, env, "node0", workers=2)]
    else:
        nodes = [Node(tmp_path, env, f"node{i}") for i in range(int(kind.split("-")[-2]))]
    try:
        for n in nodes:
            n.start(wait=False)
        for n in nodes:
            n.wait_ready()
        yield Drill(services, env, nodes, tmp_path)
    finally:
        for n in nodes:
            n.stop()
        services.engine.dispose()
        if drop is not None:
            drop()


def _clients(drill: Drill, world: World, stop: threading.Event, sent: list[Sent]) -> None:
    """Run until ``stop``: each client publishes, by turns ITI-65 and ITI-105, to whichever node is up; what was
    sent and answered goes to ``sent`` as it happens."""
    def client(i: int) -> None:
        rng = random.Random(i)  # noqa: S311 - test data, not a secret
        with httpx.Client(timeout=30) as http:
            access = None
            while not stop.is_set():
                up = [n for n in drill.nodes if n.proc is not None and n.proc.poll() is None]
                if not up:
                    time.sleep(0.05)
                    continue
                node = rng.choice(up)
                try:
                    access = access or token(http, node.base, world)
                except (httpx.TransportError, AssertionError):
                    time.sleep(0.05)
                    continue
                kind = ("ITI-65", "ITI-105")[rng.randrange(2)]
                s = send(http, node.base, access, world, kind, pdf(rng.choice(SIZES)))
                if s.reached:
                    sent.append(s)
                else:
                    time.sleep(0.02)
                if s.status == 401:
                    access = None

    with ThreadPoolExecutor(CLIENTS) as pool:
        for f in [pool.submit(client, i) for i in range(CLIENTS)]:
            f.result()


def _wait_for_workers(node: Node, killed: set[int], timeout: float = 180) -> None:
    """The node's worker processes, the ``killed`` ones left aside, are back to their number, and it answers (a
    worker's start takes seconds: it imports Carnet and builds the app)."""
    def alive() -> list[int]:
        return [p for p in node.worker_pids() if p not in killed]

    deadline = time.monotonic() + timeout
    while len(alive()) < node.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    if len(alive()) < node.workers:
        import subprocess
        assert node.proc is not None
        diag = subprocess.run(["ps", "-o", "pid,ppid,stat,etime,wchan:20,args", "--ppid", str(node.proc.pid), "-p",
                               str(node.proc.pid)], capture_output=True, text=True).stdout
        log = (node.root / f"{node.name}.log").read_text()
        tail = "\n".join(line for line in log.splitlines() if '"request"' not in line)[-3000:]
        raise AssertionError(f"a killed worker was not replaced: {node.worker_pids()}\n{diag}\n{tail}")
    node.wait_ready(timeout)


def test_documents_acknowledged_while_nodes_are_killed_are_whole_and_the_audit_verifies(drill: Drill) -> None:
    world = World(drill.services, None)  # type: ignore[arg-type]  # tokens come from the nodes
    stop = threading.Event()
    rng = random.Random(15)  # noqa: S311
    sent: list[Sent] = []
    runner = threading.Thread(target=_clients, args=(drill, world, stop, sent))
    runner.start()
    rounds = 0
    try:
        # at least ROUNDS rounds, and more (up to twice as many) until a kill has cut a request short
        while rounds < ROUNDS or (rounds < 2 * ROUNDS and all(s.status for s in sent)):
            time.sleep(rng.uniform(0.5, 1.5))
            if drill.nodes[0].workers > 1:  # kill workers: the node replaces them, its port keeps answering
                killed = drill.nodes[0].kill9_workers(rng.randint(1, 2))
                _wait_for_workers(drill.nodes[0], set(killed))
                rounds += 1
                continue
            victims = rng.sample(drill.nodes, rng.randint(1, max(1, len(drill.nodes) - 1)))
            for n in victims:
                n.kill9()
            for n in victims:
                n.start(wait=False)
            for n in victims:
                n.wait_ready()
            rounds += 1
    finally:
        stop.set()
        runner.join()
    acked = [s for s in sent if s.acknowledged]
    unanswered = [s for s in sent if s.status is None]
    errors = [s.status for s in sent if s.status is not None and not s.acknowledged]
    print(f"{rounds} rounds, {sum(n.kills for n in drill.nodes)} kills, {len(sent)} sent, {len(acked)} "
          f"acknowledged, {len(unanswered)} cut short, other answers {errors}")
    assert acked and unanswered, "the drill must have acknowledged documents and cut some requests short"
    assert not errors, f"nodes that were up answered {errors}"

    http = httpx.Client(timeout=30)
    base = drill.nodes[0].base
    access = token(http, base, world)
    for s in acked:  # every acknowledged document, its exact bytes
        assert s.document_id is not None
        got = binary(http, base, access, s.document_id)
        assert got.status_code == 200, (s.kind, got.status_code)
        assert got.content == s.data, f"{s.kind} document {s.document_id}: bytes differ"
    with drill.services.engine.connect() as conn:
        present = {r.master_identifier: r.document_id for r in conn.execute(select(document_identifier).where(
            document_identifier.c.master_identifier.in_([s.master for s in unanswered])))}
    for s in unanswered:  # no answer: whole (its exact bytes) or absent
        if s.master in present:
            got = binary(http, base, access, str(present[s.master]))
            assert got.status_code == 200 and got.content == s.data
    http.close()

    findings = check(drill.services.engine, drill.services.blobs)
    print(f"{findings.documents} documents, {findings.orphan_blobs} orphan blobs (for the garbage collector), "
          f"{len(present)} of the cut-short publications committed")
    assert findings.problems == []
    assert findings.documents == len(acked) + len(present)
    verified = audit_verify({**drill.env, "CARNET_VAR_DIR": str(drill.root / "node0")}, str(drill.root))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert " 0 problems" in verified.stdout
