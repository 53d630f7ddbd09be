"""Throttling that every node shares (issue 15 §3): per-address rate limits, and sign-in failures counted per
(identifier, address), per address and per identifier, with growing delays instead of an account lock.

- :func:`client_address`: where a request comes from (the ASGI peer; ``X-Forwarded-For`` only from the proxies
  listed in ``CARNET_TRUSTED_PROXIES``; an IPv6 address counts for its /64).
- :func:`hit` / :func:`hit_in`: one hit on a named rate limit (``CARNET_RATE_<NAME>``, a sliding window), one atomic
  upsert in the ``rate_limit`` table; the answer is how long to wait (0: go on).
- :func:`subject`, :func:`wait_for`, :func:`record_failure`, :func:`forget_pair`: the sign-in failure counters in
  ``sign_in_failure``; :func:`claim_notices` tells the worker whose account is being throttled.
- :func:`prune`: the worker's periodic sweep of expired rows.

Nothing is stored in clear: a row's key is an HMAC-SHA256 (with a key derived from the master key ring) of what it
counts, so an identifier nobody has an account for is counted exactly like one that exists. See docs/PORTAL.md
("Throttling") and docs/SCALE.md.
"""

from carnet.throttle.addresses import client_address, trusted_networks
from carnet.throttle.failures import (
    Subject,
    claim_notices,
    forget_pair,
    record_failure,
    subject,
    wait_for,
)
from carnet.throttle.keys import keyed
from carnet.throttle.limits import LIMITS, hit, hit_in, prune

__all__ = ["LIMITS", "Subject", "claim_notices", "client_address", "forget_pair", "hit", "hit_in", "keyed", "prune",
           "record_failure", "subject", "trusted_networks", "wait_for"]
