"""A request head's pseudo-header fields, read once for HTTP/2 and HTTP/3.

RFC 9113 §8.3.1 and RFC 9114 §4.3.1 define the same request pseudo-headers
(``:method``, ``:scheme``, ``:authority``, ``:path``); both transports hand their
decoded field list to :func:`split_request` and check what it returns.
"""

from __future__ import annotations


def split_request(fields: list[tuple[bytes, bytes]], scheme: str
                  ) -> tuple[str | None, bytes | None, str, list[tuple[bytes, bytes]], int]:
    """``(method, path, scheme, headers, size)`` of a decoded request head.

    ``headers`` are the regular fields in order; ``:authority`` becomes a leading
    ``host`` field when the request carries none (RFC 9113 §8.3.1: a server treats them
    alike).  ``size`` is the header list size: each field's name + value + 32 (RFC 9113
    §6.5.2, RFC 9114 §4.2.2).  ``method`` / ``path`` are None when missing: the caller
    refuses the stream.
    """
    method = path = authority = None
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    has_host = False
    for name, value in fields:
        size += len(name) + len(value) + 32
        if name.startswith(b":"):
            if name == b":method":
                method = value.decode("ascii", "replace")
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value.decode("ascii", "replace")
        else:
            if name == b"host":
                has_host = True
            headers.append((name, value))
    if authority is not None and not has_host:
        headers.insert(0, (b"host", authority))
    return method, path, scheme, headers, size
