"""Which client a request comes from, for the rate limits and the sign-in throttle.

The peer address of the connection (the ASGI scope's ``client``), unless that peer is one of the reverse proxies
listed in ``CARNET_TRUSTED_PROXIES`` (addresses or CIDR networks): then ``X-Forwarded-For`` is read from the right,
skipping the trusted proxies, and the first address that is not one of them is the client. A header from anyone else
is ignored (a client could write anything in it). An IPv6 client counts for its /64 network: one subscriber
commonly holds a whole /64, and would otherwise get a fresh counter per address.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """The networks of ``CARNET_TRUSTED_PROXIES``; a value that is neither an address nor a network is refused."""
    out = []
    for text in proxies:
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"CARNET_TRUSTED_PROXIES: {text!r} is not an IP address or network") from None
    return tuple(out)


def _ip(text: str | None) -> Address | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: Address, networks: Iterable[Network]) -> bool:
    return any(ip.version == n.version and ip in n for n in networks)


def _forwarded_for(scope: Mapping[str, Any]) -> list[str]:
    hops: list[str] = []
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    return hops


def bucket(ip: Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(scope: Mapping[str, Any], proxies: tuple[str, ...]) -> str:
    """The client's address as the counters key it (an IPv6 client as its /64)."""
    client = scope.get("client")
    peer_text = str(client[0]) if client else ""
    peer = _ip(peer_text)
    if peer is None:
        return peer_text or "unknown"  # a Unix socket, a test client: one bucket of its own
    networks = trusted_networks(proxies)
    if networks and _trusted(peer, networks):
        for hop in reversed(_forwarded_for(scope)):
            ip = _ip(hop)
            if ip is None:
                break  # unreadable: believe no further than the last trusted proxy
            peer = ip
            if not _trusted(ip, networks):
                break
    return bucket(peer)
