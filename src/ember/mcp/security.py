"""DNS-rebinding protection for the MCP endpoint: a Host allow-list and an Origin allow-list.

A web page on ``http://evil.example`` whose DNS name is re-pointed at 127.0.0.1 reaches a
local MCP server with ``Host: evil.example:PORT`` and ``Origin: http://evil.example:PORT``
(or no ``Origin`` at all): the page controls both, so comparing Origin with Host proves
nothing.  What the page cannot control is that its host name is its own, so (like the
official SDK's ``TransportSecuritySettings``):

* ``Host`` must be a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any port), the
  IP address the connection arrived on (the bound address: an IP literal cannot be
  rebound), or one of ``allowed_hosts``; anything else gets **421 Misdirected Request**;
* ``Origin``, when present, must be in ``allowed_origins`` — by default the loopback origins
  (``http(s)://localhost|127.0.0.1|[::1]`` with any port); a configured list replaces that
  default; anything else gets **403**.  A request
  without ``Origin`` (not sent by a browser) passes this check.

Host patterns: ``"api.example.com"`` (any port), ``"api.example.com:8443"`` (that port),
``"api.example.com:*"`` (any port, the SDK's spelling), ``"*"`` (any host — disables the
check).  Origin patterns: ``"https://app.example.com"`` (exact, default port),
``"https://app.example.com:*"`` (any port), ``"*"`` (any origin).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ember.exceptions import ConfigError

#: host names that only ever mean this machine
LOOPBACK_HOSTS = frozenset(("localhost", "127.0.0.1", "[::1]"))


def split_host(value: str) -> tuple[str, str] | None:
    """``"Example.com:80"`` -> ``("example.com", "80")``; ``None`` when malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in " /\\@?#\t,"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[:end + 1], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, sep, port = value.partition(":")
        if ":" in port or (sep and not port):
            return None
    if not host or (port and not (port.isdigit() and len(port) <= 5)):
        return None
    return host, port


def _ip_literal(ip: str) -> str | None:
    """``ip`` as it appears in a Host header (IPv6 in brackets), None when not an IP."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return f"[{addr}]" if addr.version == 6 else str(addr)


def local_ip(request: Any) -> str | None:
    """The local address of the connection ``request`` arrived on (None if unknown)."""
    # NOTE: the cycle's conn is the sink the request arrived through (ember.http.sink)
    conn = getattr(getattr(request, "_cycle", None), "conn", None)
    transport = getattr(conn, "_transport", None)
    try:
        sockname = transport.get_extra_info("sockname") if transport is not None else None
    except Exception:  # a transport that is already closing
        return None
    return sockname[0] if isinstance(sockname, tuple) and sockname else None


def _host_patterns(hosts: Iterable[str] | None) -> tuple[frozenset[str], bool]:
    if hosts is None:
        return frozenset(), False
    if isinstance(hosts, str):
        raise ConfigError("allowed_hosts must be a list of host names, e.g. "
                          "['mcp.example.com'], not a string")
    out: set[str] = set()
    for h in hosts:
        if not isinstance(h, str) or not h.strip():
            raise ConfigError(f"allowed_hosts: {h!r} is not a host name")
        if h.strip() == "*":
            return frozenset(), True
        text = h.strip().lower()
        wildcard = text.endswith(":*")
        parts = split_host(text[:-2] if wildcard else text)
        if parts is None:
            raise ConfigError(f"allowed_hosts: {h!r} is not a host name (optionally with "
                              ":port or :*)")
        out.add(parts[0] if wildcard or not parts[1] else f"{parts[0]}:{parts[1]}")
    return frozenset(out), False


def _origin_patterns(origins: Iterable[str] | None) -> tuple[frozenset[str], bool]:
    if origins is None:
        return frozenset(), False
    if isinstance(origins, str):
        raise ConfigError("allowed_origins must be a list of origins, e.g. "
                          "['https://app.example.com'], not a string")
    out: set[str] = set()
    for o in origins:
        if not isinstance(o, str) or not o.strip():
            raise ConfigError(f"allowed_origins: {o!r} is not an origin")
        if o.strip() == "*":
            return frozenset(), True
        out.add(o.strip().lower().rstrip("/"))
    return frozenset(out), False


class HostOriginGuard:
    """Decides whether a request's ``Host`` and ``Origin`` may reach the MCP endpoint."""

    def __init__(self, allowed_hosts: Iterable[str] | None = None,
                 allowed_origins: Iterable[str] | None = None) -> None:
        self._hosts, self._any_host = _host_patterns(allowed_hosts)
        self._origins, self._any_origin = _origin_patterns(allowed_origins)
        self._loopback_origins = allowed_origins is None

    def host_ok(self, host: str | None, local_ip: str | None = None) -> bool:
        """Whether ``host`` (a ``Host`` header value) names this server.

        ``local_ip`` is the address the connection arrived on, if known.
        """
        if self._any_host:
            return True
        parts = split_host(host) if host else None
        if parts is None:
            return False
        name, port = parts
        if name in LOOPBACK_HOSTS or name in self._hosts or \
                (bool(port) and f"{name}:{port}" in self._hosts):
            return True
        return local_ip is not None and name == _ip_literal(local_ip)

    def origin_ok(self, origin: str | None) -> bool:
        """Whether a browser page at ``origin`` may call the endpoint (None: not a browser)."""
        if origin is None or self._any_origin:
            return True
        text = origin.strip().lower().rstrip("/")
        if text in self._origins:
            return True
        try:
            parts = urlsplit(text)
            _ = parts.port  # NOTE: raises for a malformed or out-of-range port
        except ValueError:  # e.g. "http://[::1" or a port out of range
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path \
                or parts.query or parts.fragment or parts.username is not None:
            return False
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if f"{parts.scheme}://{host}:*" in self._origins:
            return True
        return self._loopback_origins and host in LOOPBACK_HOSTS
