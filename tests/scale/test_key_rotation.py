"""``carnet keys rotate`` while clients publish and read on every node (issue 15 §8): every document published before,
during and after the rotation reads with its exact bytes on every node, at every moment; ``carnet keys rewrap`` then
``carnet keys retire`` leave one key, and still every document reads. A node started with the old key file, or with
a key of its own (its key file missing), refuses to start and says why, instead of writing documents that the other
nodes cannot open."""

from __future__ import annotations

import json
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

from carnet.blobs import KeyRing
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from carnet.db.tables import document
from tests.backup.test_drill import run
from tests.conftest import World
from tests.scale.nodes import PUBLIC, Node, Sent, binary, clean_env, drill_database, pdf, send, token, token_key_file


@dataclass
class Cluster:
    services: Services
    env: dict[str, str]
    nodes: list[Node]
    root: Path
    key_file: Path


@pytest.fixture(params=["postgresql-2-nodes", "sqlite-1-node"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url, drop = drill_database(request.param, tmp_path)
    token_key = token_key_file(tmp_path)
    key_file = tmp_path / "shared" / "master-key.json"  # one file every node reads (a shared, private mount)
    KeyRing.generate().save(key_file)
    env = clean_env(CARNET_DATABASE_URL=url, CARNET_BLOB_URL=str(tmp_path / "blobs"),
                    CARNET_MASTER_KEY_FILE=str(key_file), CARNET_TOKEN_KEY_FILE=str(token_key))
    services = build_services(Settings(var_dir=tmp_path / "test", database_url=url, blob_url=str(tmp_path / "blobs"),
                                       master_key_file=str(key_file), token_key_file=str(token_key), base_url=PUBLIC),
                              make_engine(url, pool_size=2))
    nodes = [Node(tmp_path, env, f"node{i}") for i in range(int(request.param.split("-")[1]))]
    try:
        for n in nodes:
            n.start()
        yield Cluster(services, {**env, "CARNET_VAR_DIR": str(tmp_path / "cli")}, nodes, tmp_path, key_file)
    finally:
        for n in nodes:
            n.stop()
        services.engine.dispose()
        if drop is not None:
            drop()


def _key_ids(cluster: Cluster) -> set[str]:
    with cluster.services.engine.connect() as conn:
        return set(conn.execute(select(document.c.key_id).distinct()).scalars())


def test_a_rotation_under_load_leaves_every_document_readable_on_every_node(cluster: Cluster) -> None:
    world = World(cluster.services, None)  # type: ignore[arg-type]
    http = httpx.Client(timeout=60)
    access = token(http, cluster.nodes[0].base, world)
    published: list[Sent] = []
    for i in range(6):  # before the rotation
        s = send(http, cluster.nodes[i % len(cluster.nodes)].base, access, world, ("ITI-65", "ITI-105")[i % 2],
                 pdf(20_000 + i))
        assert s.acknowledged, s.status
        published.append(s)
    lock = threading.Lock()
    stop = threading.Event()
    bad_reads: list[tuple[str, int]] = []
    reads = [0]

    def publisher(i: int) -> None:
        rng = random.Random(i)  # noqa: S311
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                s = send(c, rng.choice(cluster.nodes).base, access, world, rng.choice(("ITI-65", "ITI-105")),
                         pdf(rng.choice((3_000, 300_000, 1_200_000))))
                assert s.acknowledged, s.status
                with lock:
                    published.append(s)

    def reader(i: int) -> None:
        rng = random.Random(100 + i)  # noqa: S311
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                with lock:
                    s = rng.choice(published)
                r = binary(c, rng.choice(cluster.nodes).base, access, str(s.document_id))
                reads[0] += 1
                if r.status_code != 200 or r.content != s.data:
                    bad_reads.append((str(s.document_id), r.status_code))

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(publisher, i) for i in range(2)] + [pool.submit(reader, i) for i in range(2)]
        time.sleep(2)
        rotated = run(cluster.env, cluster.root, "keys", "rotate")
        time.sleep(2)  # publications after the rotation
        stop.set()
        for f in futures:
            f.result()
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "current key k2" in rotated.stdout
    print(f"{len(published)} documents, {reads[0]} reads during the rotation")
    assert bad_reads == []
    assert json.loads(cluster.key_file.read_text())["current"] == "k2"

    rewrapped = run(cluster.env, cluster.root, "keys", "rewrap")  # what nodes published under k1 meanwhile
    assert rewrapped.returncode == 0, rewrapped.stdout + rewrapped.stderr
    assert _key_ids(cluster) == {"k2"}
    retired = run(cluster.env, cluster.root, "keys", "retire", "k1")
    assert retired.returncode == 0, retired.stdout + retired.stderr
    assert set(json.loads(cluster.key_file.read_text())["keys"]) == {"k2"}
    for node in cluster.nodes:  # before, during and after: every document, on every node
        for s in published:
            r = binary(http, node.base, access, str(s.document_id))
            assert r.status_code == 200 and r.content == s.data, (node.name, s.kind, r.status_code)
    http.close()


def test_a_node_with_another_master_key_refuses_to_start(cluster: Cluster, tmp_path: Path) -> None:
    world = World(cluster.services, None)  # type: ignore[arg-type]
    with httpx.Client(timeout=60) as http:
        s = send(http, cluster.nodes[0].base, token(http, cluster.nodes[0].base, world), world, "ITI-105", pdf(5000))
    assert s.acknowledged
    own = {k: v for k, v in cluster.env.items() if k not in ("CARNET_MASTER_KEY_FILE", "CARNET_VAR_DIR")}
    stale = tmp_path / "stale-master-key.json"
    stale.write_bytes(cluster.key_file.read_bytes())
    stale.chmod(0o600)
    assert run(cluster.env, cluster.root, "keys", "rotate").returncode == 0
    old = {**own, "CARNET_MASTER_KEY_FILE": str(stale)}  # a copy of the key file from before the rotation
    # ``own``: no key setting, so the node makes a key of its own in its var directory
    for env, expected in ((own, "is not the key 'k1'"), (old, "lacks the master keys k2")):
        node = Node(tmp_path, env, f"odd{len(expected)}")
        node.start(wait=False)
        assert node.proc is not None
        assert node.proc.wait(timeout=60) != 0
        assert expected in (tmp_path / f"{node.name}.log").read_text()
        cli = run({**env, "CARNET_VAR_DIR": str(tmp_path / f"{node.name}-cli")}, cluster.root, "worker", "--once")
        assert cli.returncode == 2 and expected in cli.stdout.replace("\n", " "), cli.stdout
