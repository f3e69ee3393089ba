"""Response serialisation: status line, headers and body in one buffer.

Pure-Python reference, compiled as ``_writer_c`` by Cython.  The caller hands
over already-validated raw header pairs (``ember.datastructures`` refuses CR,
LF and NUL when headers are set), so this module only frames.
"""

from __future__ import annotations

from ember.status import REASON_PHRASES

_STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {REASON_PHRASES.get(code, '')}\r\n".encode("latin-1")
    for code in range(100, 600)
}
SERVER_HEADER = b"server: ember\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"


def status_line(status_code: int) -> bytes:
    """``HTTP/1.1 <code> <reason>\\r\\n``; ValueError outside 100..599."""
    line = _STATUS_LINES.get(status_code)
    if line is None:
        raise ValueError(f"invalid HTTP status code {status_code!r} (must be 100-599)")
    return line


def encode_head(
    status_code: int,
    headers: list,
    content_length: int,
    keep_alive: bool,
    http_minor: int,
    date_header: bytes,
    chunked: bool,
) -> list:
    """Return the pieces of a response head (joined by the caller with the body).

    ``content_length`` < 0 means "not known": the body is then chunked (HTTP/1.1)
    or delimited by closing the connection (HTTP/1.0, ``keep_alive`` is False).
    """
    parts = [status_line(status_code), SERVER_HEADER, date_header]
    for name, value in headers:
        parts.append(name)
        parts.append(b": ")
        parts.append(value)
        parts.append(b"\r\n")
    if content_length >= 0:
        parts.append(b"content-length: %d\r\n" % content_length)
    elif chunked:
        parts.append(_CHUNKED)
    if not keep_alive:
        parts.append(_CLOSE)
    elif http_minor == 0:
        parts.append(_KEEP_ALIVE)
    parts.append(b"\r\n")
    return parts


def encode_response(
    status_code: int,
    headers: list,
    body: bytes,
    keep_alive: bool,
    http_minor: int,
    date_header: bytes,
    head_only: bool,
) -> bytes:
    """A complete response with a known body, ready for one ``transport.write``."""
    if status_code < 200 or status_code == 204 or status_code == 304:
        parts = encode_head(status_code, headers, -1, keep_alive, http_minor, date_header, False)
        return b"".join(parts)
    parts = encode_head(status_code, headers, len(body), keep_alive, http_minor, date_header, False)
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1); empty data is skipped by callers."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
