"""Only allow-listed fields reach a log line."""

from __future__ import annotations

from carnet.logs import ALLOWED, allow_list


def test_fields_outside_the_allow_list_are_dropped_and_counted() -> None:
    event = {"event": "request", "status": 200, "patient": "100103690200014", "family": "Lefèvre"}
    out = allow_list(None, "info", event)
    assert out == {"event": "request", "status": 200, "dropped": 2}
    assert set(out) <= ALLOWED
