# cython: annotation_typing=False
"""Checks on a parsed HTTP/1.1 request head, before a cycle exists (pure-Python reference).

Compiled by Cython as ``_heads_c``; the compiled connection calls :func:`check_head`
as a C function.  The parser has already checked the syntax; these are the rules of
the message as a whole (RFC 9110 / RFC 9112), each refused with
:class:`~ember.http.errors.HttpParserError` naming what is wrong: exactly one valid
``Host`` (optional in HTTP/1.0), no ``CONNECT``, ``Transfer-Encoding`` only in
HTTP/1.1 and only ``chunked``.
"""

from __future__ import annotations

import re
from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember.http.errors import HttpParserError

# Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal or a
# reg-name (unreserved / pct-encoded / sub-delims), no userinfo; empty is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")
_host_chars = bytearray(256)
for _c in bytearray(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;="):
    _host_chars[_c] = 1
_HOST_CHARS = bytes(_host_chars)


def _valid_host(value: bytes) -> bool:
    """True for a valid Host field value (see _HOST)."""
    if cython.compiled:
        # PERF: a table scan in C for the usual reg-name[:port]; the regex decides the rest
        r = _c_host_check(value, _HOST_CHARS)  # noqa: F821 - defined in _heads_c.pxd
        if r >= 0:
            return r == 1
    return _HOST.fullmatch(value) is not None


def check_head(method: str, minor: int, headers: list, chunked: Any) -> None:
    """Raise :class:`HttpParserError` (400 or 501, with the reason) for a head no
    handler may see."""
    hosts = 0
    host = None
    for name, value in headers:
        if name == b"host":
            hosts += 1
            host = value
    if hosts > 1:  # RFC 9110 §7.2 / RFC 9112 §3.2: any version
        raise HttpParserError(400, "multiple Host headers")
    if hosts == 0 and minor == 1:  # NOTE: Host is optional in HTTP/1.0
        raise HttpParserError(400, "missing Host header")
    # RFC 9112 §3.2: a Host with an invalid value is a 400 (issue 23)
    if host is not None and not _valid_host(host):
        raise HttpParserError(400, "invalid Host header")
    if method == "CONNECT":
        raise HttpParserError(501, "CONNECT is not supported")
    if chunked:
        if minor == 0:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
            raise HttpParserError(400, "Transfer-Encoding is not allowed in HTTP/1.0")
        for name, value in headers:
            if name == b"transfer-encoding" and value.lower().strip() != b"chunked":
                raise HttpParserError(501, "unsupported transfer coding")


__all__ = ["check_head"]
