"""Which client a request comes from: the peer, unless it is a trusted proxy (CARNET_TRUSTED_PROXIES)."""

from __future__ import annotations

import pytest

from carnet.throttle import client_address, trusted_networks


def scope(peer: str | None, *forwarded: str) -> dict[str, object]:
    return {"client": (peer, 1234) if peer else None,
            "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_address(scope("192.0.2.10", "198.51.100.1"), ()) == "192.0.2.10"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address(scope("192.0.2.10", "198.51.100.1"), ("10.0.0.0/8",)) == "192.0.2.10"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    proxies = ("10.0.0.0/8", "192.0.2.5")
    # the client wrote a fake first entry; our proxies appended the real client and each other
    assert client_address(scope("10.0.0.2", "6.6.6.6, 203.0.113.7, 192.0.2.5"), proxies) == "203.0.113.7"
    assert client_address(scope("10.0.0.2", "6.6.6.6", "203.0.113.7"), proxies) == "203.0.113.7"


def test_an_unreadable_hop_stops_the_walk_at_the_last_trusted_proxy() -> None:
    assert client_address(scope("10.0.0.2", "203.0.113.7, garbage"), ("10.0.0.0/8",)) == "10.0.0.2"


def test_an_ipv6_client_counts_for_its_64_and_a_mapped_ipv4_as_ipv4() -> None:
    assert client_address(scope("2001:db8:1:2:aaaa::1"), ()) == "2001:db8:1:2::/64"
    assert client_address(scope("2001:db8:1:2:bbbb::9"), ()) == "2001:db8:1:2::/64"
    assert client_address(scope("::ffff:192.0.2.3"), ()) == "192.0.2.3"
    assert client_address(scope("10.0.0.2", "[2001:db8::7]:443"), ("10.0.0.2",)) == "2001:db8::/64"


def test_no_peer_is_one_bucket_of_its_own() -> None:
    assert client_address(scope(None), ()) == "unknown"


def test_a_mistyped_trusted_proxy_is_refused() -> None:
    with pytest.raises(ValueError, match="CARNET_TRUSTED_PROXIES"):
        trusted_networks(("10.0.0.300",))
