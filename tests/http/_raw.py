"""Raw-socket exchanges that return as soon as the answer is complete (no idle waits)."""

from __future__ import annotations

import re
import socket


def _complete(out: bytes, head_only: bool) -> bool:
    end = out.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = out[:end].lower()
    status = int(head[9:12])
    body = out[end + 4:]
    if head_only or status < 200 or status in (204, 304):
        return True
    if b"\r\ntransfer-encoding: chunked" in head:
        return body.endswith(b"0\r\n\r\n")
    m = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if m is None:
        return False  # close-delimited: read until EOF
    return len(body) >= int(m.group(1))


def exchange(port: int, data: bytes, *, head_only: bool = False,
             guard: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data``; read the first response, then whatever else comes within 0.2 s.

    Returns (bytes read, whether the server closed).  A server that closes right after
    its answer is seen closing; one that keeps the connection open costs 0.2 s, not the
    hang guard.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=guard) as s:
        s.sendall(data)
        out = b""
        while not _complete(out, head_only):
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
        s.settimeout(0.2)
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return out, False
            if not chunk:
                return out, True
            out += chunk
