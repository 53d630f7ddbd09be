"""Only allow-listed fields reach a log line."""

from __future__ import annotations

import os

from carnet.logs import ALLOWED, allow_list


def test_fields_outside_the_allow_list_are_dropped_and_counted() -> None:
    event = {"event": "request", "status": 200, "patient": "100103690200014", "family": "Lefèvre"}
    out = allow_list(None, "info", event)
    assert out == {"event": "request", "status": 200, "dropped": 2}
    assert set(out) <= ALLOWED


WRITER = """
import structlog
from carnet.logs import configure
configure(True)
log = structlog.get_logger("carnet")
for i in range(3000):
    log.info("request", interaction="search-type", resource="DocumentReference", status=200, ms=float(i))
"""


def test_processes_sharing_standard_error_never_cut_each_others_lines() -> None:
    """A node's server processes share one standard error (a pipe, read by the journal or a container runtime): each
    line leaves in one write, so that the collector reads whole JSON lines however the processes interleave."""
    import json
    import subprocess
    import sys

    read, write = os.pipe()
    try:
        procs = [subprocess.Popen([sys.executable, "-c", WRITER], stderr=write, stdout=subprocess.DEVNULL)
                 for _ in range(4)]
    finally:
        os.close(write)
    chunks = []
    with os.fdopen(read, "rb") as pipe:
        while piece := pipe.read(65536):
            chunks.append(piece)
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 4 * 3000
    events = [json.loads(line) for line in lines]  # every line whole
    assert {e["event"] for e in events} == {"request"} and all(set(e) <= ALLOWED for e in events)
    assert events[0]["timestamp"].endswith("Z") and len(events[0]["timestamp"]) == len("2026-12-05T12:45:38.012345Z")


def test_the_timestamp_is_utc_to_the_microsecond() -> None:
    import datetime

    from carnet.logs import timestamp

    before = datetime.datetime.now(datetime.timezone.utc)
    stamped = timestamp(None, "info", {})["timestamp"]
    after = datetime.datetime.now(datetime.timezone.utc)
    when = datetime.datetime.strptime(stamped, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert before <= when <= after
