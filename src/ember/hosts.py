"""Which ``Host`` an app answers for: ``Ember(allowed_hosts=[...])``, checked before routing.

A ``Host`` header (or the authority of an absolute-form target, or a trusted proxy's
forwarded host, see :mod:`ember.proxies`) is chosen by the client.  Every absolute URL an
app builds from it (``request.url``, redirects, links in a cached page) would carry what
an attacker sent, so an app that knows its names lists them:

* ``"api.example.com"`` — that name, any port;
* ``"api.example.com:8443"`` — that name on that port only;
* ``"*.example.com"`` — any subdomain of example.com (not example.com itself: list both);
* ``"10.0.0.5"``, ``"[::1]"`` — IP literals (IPv6 in brackets);
* ``"*"`` — any host (the check is off).

Names compare case-insensitively and without one trailing dot (``Example.COM.`` is
``example.com``).  Anything else — an unlisted name, a malformed value (spaces,
``user@host``, a bad port, an unbracketed IPv6 address), an empty or missing ``Host`` — is
answered ``400`` before routing, middleware or the handler run.  Health probes
(:mod:`ember.health`) and the MCP endpoint (which applies its own stricter check and
answers 421, SPEC §6) are exempt.

``allowed_hosts=None`` (the default) allows every host; the server then logs one warning
when it binds a non-loopback address (:func:`warn_if_open`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from ember.exceptions import ConfigError
from ember.proxies import apply_forwarded, parse_host

logger = logging.getLogger("ember.hosts")

class AllowedHosts:
    """A compiled ``allowed_hosts`` list; :meth:`allows` says whether a Host value passes."""

    def __init__(self, hosts: Iterable[str]) -> None:
        if isinstance(hosts, str):
            raise ConfigError("allowed_hosts must be a list of host names, e.g. "
                              "['api.example.com', '*.example.com'], not a string")
        self.any = False
        self.exact: set[tuple[str, int | None]] = set()
        self.suffixes: list[tuple[str, int | None]] = []
        self.patterns: tuple[str, ...] = tuple(hosts)
        for pattern in self.patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigError(f"allowed_hosts: {pattern!r} is not a host name")
            text = pattern.strip()
            if text == "*":
                self.any = True
                continue
            wildcard = text.startswith("*.")
            parsed = parse_host(text[2:] if wildcard else text)
            if parsed is None or (wildcard and parsed[0].startswith("[")):
                raise ConfigError(
                    f"allowed_hosts: {pattern!r} is not a host name; use 'name', "
                    "'name:port', '*.domain', an IP address ('[::1]' for IPv6) or '*'")
            if wildcard:
                self.suffixes.append(("." + parsed[0], parsed[1]))
            else:
                self.exact.add(parsed)

    def allows(self, value: str | None) -> bool:
        """Whether ``value`` (a Host header or authority) is one of the allowed hosts."""
        if self.any:
            return True
        parsed = parse_host(value) if value else None
        if parsed is None:
            return False
        host, port = parsed
        if (host, None) in self.exact or (port is not None and (host, port) in self.exact):
            return True
        for suffix, want in self.suffixes:
            if host.endswith(suffix) and (want is None or want == port):
                return True
        return False

    def __repr__(self) -> str:
        return f"AllowedHosts({list(self.patterns)!r})"


def compile_allowed_hosts(hosts: Any) -> AllowedHosts | None:
    """``Ember(allowed_hosts=...)`` checked: None stays None, else :class:`AllowedHosts`."""
    if hosts is None:
        return None
    if not isinstance(hosts, (list, tuple, set, frozenset)):
        raise ConfigError(f"allowed_hosts must be a list of host names or None, got {hosts!r}")
    if not hosts:
        raise ConfigError("allowed_hosts=[] would refuse every request; list the names the "
                          "app serves, or pass None to allow any host")
    return AllowedHosts(hosts)


def is_loopback_bind(host: str) -> bool:
    """Whether binding ``host`` only listens on this machine."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_open(app: Any, host: str) -> bool:
    """Log one warning when ``app`` allows any Host and ``host`` is not loopback."""
    if getattr(app, "allowed_hosts", None) is not None or is_loopback_bind(host):
        return False
    logger.warning(
        "serving on %s with allowed_hosts=None: any Host header is accepted, so absolute "
        "URLs built from the request (request.url, redirects) carry what clients send; "
        "pass Ember(allowed_hosts=['your.domain', ...]) (docs/security.md)", host or "*")
    return True


#: :meth:`RequestGate.__call__`'s answer for a health probe: run it without middleware
PROBE = object()


class RequestGate:
    """What the app does to every request before routing-dependent work, when configured.

    In order: the trusted proxy's view (:func:`ember.proxies.apply_forwarded`), health
    probes (answered without middleware, never host-checked), then the ``allowed_hosts``
    check.  ``gate(request)`` returns None (go on), :data:`PROBE`, or a 400 response.
    """

    __slots__ = ("app", "hosts", "proxies")

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hosts: AllowedHosts | None = app.allowed_hosts
        self.proxies = bool(app.trusted_proxies)

    def __call__(self, request: Any) -> Any:
        app = self.app
        if self.proxies:
            apply_forwarded(request, app)
        route = request.route
        if route is not None and route in app._probe_routes:
            return PROBE
        hosts = self.hosts
        if hosts is None or (route is not None and route in app._host_exempt_routes):
            return None
        authority = request._authority
        values = [authority] if authority else request.headers.getall("host")
        if len(values) == 1 and hosts.allows(values[0]):
            return None
        return _bad_host(values)


def _bad_host(values: list[str]) -> Any:
    from ember.responses import JSONResponse

    if not values:
        detail = "missing Host header: this server only answers for its allowed_hosts"
    else:
        shown = values[0] if len(values[0]) <= 100 else values[0][:100] + "..."
        detail = f"invalid Host header {shown!r}: not one of this server's allowed_hosts"
        if values[0] == "testserver":
            detail += "; in tests use app.test_client(base_url='http://<an allowed host>')"
    return JSONResponse({"detail": detail}, 400)
