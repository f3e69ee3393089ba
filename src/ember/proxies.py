"""Client address and scheme resolution behind reverse proxies.

Forwarding headers are client-controlled, so they are only believed when the direct
peer is a configured trusted proxy (``Ember(trusted_proxies=["10.0.0.1", "10.0.0.0/8"])``),
and then only **one** header is read — the one the proxy sets, chosen with
``Ember(forwarded_header=...)``:

* ``"x-forwarded-for"`` (default): ``X-Forwarded-For``; the scheme from
  ``X-Forwarded-Proto``, the host from ``X-Forwarded-Host``;
* ``"forwarded"``: RFC 7239 ``Forwarded: for=...;proto=...;host=...``;
* ``"x-real-ip"``: ``X-Real-IP`` (one address); the scheme from ``X-Forwarded-Proto``,
  the host from ``X-Forwarded-Host``.

Which parts are believed is ``Ember(forwarded_fields=...)``: ``("for", "proto")`` by
default; add ``"host"`` only when the proxy always *sets* the host header it forwards
(nginx: ``proxy_set_header X-Forwarded-Host $host;``) — a proxy that passes a client's
``X-Forwarded-Host`` through would let every request choose its host.  For the proxy's
requests :func:`apply_forwarded` (run by the app before routing) makes
``request.scheme``, ``request.url``, ``request.client`` and the host the cache keys and
``allowed_hosts`` use follow those values.

The other headers are ignored even when present: a proxy that appends to
``X-Forwarded-For`` passes a client's own ``Forwarded: for=1.2.3.4`` through untouched,
and believing it would let every request pick its own address (and rate-limit bucket).
In a list of hops the client is the right-most address that is not itself a trusted
proxy (the left part was written by the client and proves nothing).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from ember.datastructures import Address, Headers
from ember.exceptions import ConfigError

# NOTE: host parsing lives here, below ember.hosts, because forwarded hosts are checked
# with it (ember.hosts re-exports parse_host)
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*")
_MAX_HOST = 253


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``"Example.com.:8080"`` -> ``("example.com", 8080)``; ``None`` when malformed.

    IPv6 literals come back in brackets (``"[::1]"``), compressed and lower-cased.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text or len(text) > _MAX_HOST + 8:
        return None
    port_text = ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
            if not port_text:
                return None
        try:
            addr = ipaddress.IPv6Address(host)
        except ValueError:
            return None
        host = f"[{addr.compressed}]"
    else:
        host, sep, port_text = text.partition(":")
        if sep and not port_text:
            return None
        if host.endswith("."):
            host = host[:-1]
        if not host or len(host) > _MAX_HOST or not _NAME.fullmatch(host):
            return None
    port = None
    if port_text:
        if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5 \
                or not 0 < int(port_text) <= 65535:
            return None
        port = int(port_text)
    return host, port


Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the headers ``forwarded_header`` may name
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")

#: what ``forwarded_fields`` may name, and its default
FORWARDED_FIELDS = ("for", "proto", "host")
DEFAULT_FORWARDED_FIELDS = ("for", "proto")


def parse_trusted(proxies: Iterable[str] | None) -> tuple[Network, ...]:
    """Turn addresses / CIDRs into networks; a bad entry is a ValueError naming it."""
    if isinstance(proxies, str):
        raise ConfigError("trusted_proxies must be a list, e.g. ['10.0.0.1'], not a string")
    if proxies is not None and not isinstance(proxies, (list, tuple, set, frozenset)):
        raise ConfigError(f"trusted_proxies must be a list, e.g. ['10.0.0.1'], got {proxies!r}")
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


def check_forwarded_fields(fields: Any) -> frozenset[str]:
    """``forwarded_fields`` as a set (a ConfigError names what is wrong)."""
    if isinstance(fields, str) or not isinstance(fields, (list, tuple, set, frozenset)):
        raise ConfigError(f"forwarded_fields must be a list drawn from {FORWARDED_FIELDS}, "
                          f"e.g. ['for', 'proto'], got {fields!r}")
    out = set()
    for field in fields:
        if not isinstance(field, str) or field.strip().lower() not in FORWARDED_FIELDS:
            raise ConfigError(f"forwarded_fields: {field!r} is not one of "
                              f"{', '.join(FORWARDED_FIELDS)}")
        out.add(field.strip().lower())
    return frozenset(out)


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
    # NOTE: Traefik sends ws/wss for WebSocket upgrades (uvicorn#2258); Ember's
    # request.scheme is the HTTP one
    proto = {"wss": "https", "ws": "http"}.get(proto, proto)
    return proto if proto in ("http", "https") else None


def forwarded_host(peer: tuple[str, int] | None, headers: Headers, trusted: Any,
                   header: str = "x-forwarded-for") -> str | None:
    """The host the trusted proxy in front of us was asked for, else None.

    The value is only returned when it is a well-formed host (:func:`parse_host`);
    garbage is ignored (the request keeps its own ``Host``).
    """
    if peer is None or not trusted or not _is_trusted(peer[0], trusted):
        return None
    if header == "forwarded":
        elements = _forwarded_pairs(headers)
        value = elements[-1].get("host", "") if elements else ""
    else:
        values = headers.getall("x-forwarded-host")
        value = values[-1].split(",")[-1] if values else ""
    value = value.strip()
    return value if value and parse_host(value) is not None else None


def apply_forwarded(request: Any, app: Any) -> None:
    """Make ``request``'s scheme, host and client follow its trusted proxy (if any).

    Called once per request by the app before routing-dependent work; a request from an
    untrusted peer is left as it arrived.  ``request.url`` is built from ``scheme`` and
    ``_authority`` (which wins over ``Host``), so both follow.
    """
    peer = request._peer
    trusted = app.trusted_proxies
    if peer is None or not trusted or not _is_trusted(peer[0], trusted):
        return
    header = app.forwarded_header
    fields = app.forwarded_fields
    headers = request.headers
    if "proto" in fields:
        scheme = forwarded_scheme(peer, headers, trusted, header)
        if scheme is not None:
            request.scheme = scheme
    if "host" in fields:
        host = forwarded_host(peer, headers, trusted, header)
        if host is not None:
            # NOTE(seam): task #19's URL type is built from scheme + this authority
            request._authority = host
    if "for" not in fields:
        request._client = Address(peer[0], peer[1])


def request_host(request: Any) -> str:
    """The host ``request`` addressed, normalised (lower case, no trailing dot): the
    trusted proxy's forwarded host, else the absolute-form authority, else ``Host``."""
    value = getattr(request, "_authority", None) or request.headers.get("host") or ""
    parsed = parse_host(value)
    if parsed is None:
        return value.strip().lower()
    host, port = parsed
    return host if port is None else f"{host}:{port}"


def is_secure(request: Any) -> bool:
    """Whether ``request`` reached us over TLS, directly or via a trusted proxy."""
    if request.scheme in ("https", "wss"):
        return True
    app = getattr(request, "app", None)
    trusted = getattr(app, "trusted_proxies", None)
    if not trusted or "proto" not in getattr(app, "forwarded_fields", ("proto",)):
        return False
    header = getattr(app, "forwarded_header", "x-forwarded-for")
    return forwarded_scheme(request._peer, request.headers, trusted, header) == "https"
