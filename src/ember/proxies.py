"""Client address and scheme resolution behind reverse proxies.

Forwarding headers are client-controlled, so they are only believed when the direct
peer is a configured trusted proxy (``Ember(trusted_proxies=["10.0.0.1", "10.0.0.0/8"])``),
and then only **one** header is read — the one the proxy sets, chosen with
``Ember(forwarded_header=...)``:

* ``"x-forwarded-for"`` (default): ``X-Forwarded-For``; the scheme from
  ``X-Forwarded-Proto``;
* ``"forwarded"``: RFC 7239 ``Forwarded: for=...;proto=...``;
* ``"x-real-ip"``: ``X-Real-IP`` (one address); the scheme from ``X-Forwarded-Proto``.

The other headers are ignored even when present: a proxy that appends to
``X-Forwarded-For`` passes a client's own ``Forwarded: for=1.2.3.4`` through untouched,
and believing it would let every request pick its own address (and rate-limit bucket).
In a list of hops the client is the right-most address that is not itself a trusted
proxy (the left part was written by the client and proves nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from ember.datastructures import Address, Headers
from ember.exceptions import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the headers ``forwarded_header`` may name
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def parse_trusted(proxies: Iterable[str] | None) -> tuple[Network, ...]:
    """Turn addresses / CIDRs into networks; a bad entry is a ValueError naming it."""
    if isinstance(proxies, str):
        raise ConfigError("trusted_proxies must be a list, e.g. ['10.0.0.1'], not a string")
    nets = []
    for p in proxies or ():
        try:
            nets.append(ipaddress.ip_network(p.strip(), strict=False))
        except (ValueError, AttributeError):
            raise ValueError(f"trusted_proxies: {p!r} is not an IP address or CIDR") from None
    return tuple(nets)


def check_forwarded_header(name: Any) -> str:
    """``name`` lower-cased if it is one of :data:`FORWARDED_HEADERS` (else ConfigError)."""
    if not isinstance(name, str) or name.strip().lower() not in FORWARDED_HEADERS:
        raise ConfigError(f"forwarded_header must be one of {', '.join(FORWARDED_HEADERS)}; "
                          f"got {name!r}")
    return name.strip().lower()


def _is_trusted(host: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _strip_port(hop: str) -> str:
    hop = hop.strip().strip('"')
    if hop.startswith("["):
        return hop[1:hop.find("]")] if "]" in hop else hop[1:]
    if hop.count(":") == 1:
        return hop.split(":")[0]
    return hop


def _forwarded_pairs(headers: Headers) -> list[dict[str, str]]:
    elements = []
    for value in headers.getall("forwarded"):
        for element in value.split(","):
            pairs = {}
            for pair in element.split(";"):
                k, _, v = pair.strip().partition("=")
                if k:
                    pairs[k.lower()] = v.strip().strip('"')
            elements.append(pairs)
    return elements


def _hops(headers: Headers, header: str) -> list[str]:
    if header == "forwarded":
        return [_strip_port(e.get("for", "")) for e in _forwarded_pairs(headers)]
    if header == "x-real-ip":
        values = headers.getall("x-real-ip")
        return [_strip_port(values[-1])] if values else []
    return [_strip_port(h) for value in headers.getall("x-forwarded-for")
            for h in value.split(",")]


def client_address(peer: tuple[str, int], headers: Headers, trusted: Any,
                   header: str = "x-forwarded-for") -> Address:
    """The client of a request, honouring ``header`` only from ``trusted`` peers."""
    host, port = peer[0], peer[1]
    if not trusted or not _is_trusted(host, trusted):
        return Address(host, port)
    for hop in reversed(_hops(headers, header)):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # NOTE: garbage (or "unknown") ends the chain we can believe
        if not _is_trusted(hop, trusted):
            return Address(hop, 0)
    return Address(host, port)


def forwarded_scheme(peer: tuple[str, int] | None, headers: Headers, trusted: Any,
                     header: str = "x-forwarded-for") -> str | None:
    """``"https"``/``"http"`` as the trusted proxy in front of us reported it, else None."""
    if peer is None or not trusted or not _is_trusted(peer[0], trusted):
        return None
    if header == "forwarded":
        elements = _forwarded_pairs(headers)
        proto = elements[-1].get("proto", "") if elements else ""
    else:
        values = headers.getall("x-forwarded-proto")
        proto = values[-1].split(",")[-1] if values else ""
    proto = proto.strip().lower()
    return proto if proto in ("http", "https") else None


def is_secure(request: Any) -> bool:
    """Whether ``request`` reached us over TLS, directly or via a trusted proxy."""
    if request.scheme in ("https", "wss"):
        return True
    app = getattr(request, "app", None)
    trusted = getattr(app, "trusted_proxies", None)
    if not trusted:
        return False
    header = getattr(app, "forwarded_header", "x-forwarded-for")
    return forwarded_scheme(request._peer, request.headers, trusted, header) == "https"
