"""Client address resolution behind reverse proxies.

``X-Forwarded-For`` and ``Forwarded`` are client-controlled, so they are only
believed when the direct peer is a configured trusted proxy
(``Ember(trusted_proxies=["10.0.0.1", "10.0.0.0/8"])``); the right-most address
that is not itself a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from ember.datastructures import Address, Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(proxies: Iterable[str] | None) -> tuple[Network, ...]:
    """Turn addresses / CIDRs into networks; a bad entry is a ValueError naming it."""
    nets = []
    for p in proxies or ():
        try:
            nets.append(ipaddress.ip_network(p.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {p!r} is not an IP address or CIDR") from None
    return tuple(nets)


def _is_trusted(host: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _forwarded_for(headers: Headers) -> list[str]:
    hops: list[str] = []
    for value in headers.getall("forwarded"):
        for element in value.split(","):
            for pair in element.split(";"):
                k, _, v = pair.strip().partition("=")
                if k.lower() == "for" and v:
                    v = v.strip('"')
                    if v.startswith("["):
                        v = v[1 : v.find("]")] if "]" in v else v[1:]
                    elif v.count(":") == 1:
                        v = v.split(":")[0]
                    hops.append(v)
    if hops:
        return hops
    for value in headers.getall("x-forwarded-for"):
        hops.extend(h.strip() for h in value.split(",") if h.strip())
    return hops


def client_address(peer: tuple[str, int], headers: Headers, trusted: Any) -> Address:
    """The client of a request, honouring forwarding headers only from ``trusted``."""
    host, port = peer[0], peer[1]
    if not trusted or not _is_trusted(host, trusted):
        return Address(host, port)
    for hop in reversed(_forwarded_for(headers)):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        if not _is_trusted(hop, trusted):
            return Address(hop, 0)
    return Address(host, port)
