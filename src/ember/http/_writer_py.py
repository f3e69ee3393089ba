# cython: annotation_typing=False
"""Response serialisation: status line, headers and body in one buffer.

Pure-Python reference, compiled as ``_writer_c`` by Cython.  The caller hands
over already-validated raw header pairs (``ember.datastructures`` refuses CR,
LF and NUL when headers are set), so this module only frames.
"""

from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember.status import REASON_PHRASES

_STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {REASON_PHRASES.get(code, '')}\r\n".encode("latin-1")
    for code in range(100, 600)
}
SERVER_HEADER = b"server: ember\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_CT_TEXT = b"text/plain; charset=utf-8"
_CT_OCTET = b"application/octet-stream"
_CT_JSON = b"application/json"
_json_dumps = None  # ember.responses.json_dumps, imported on first use (import stays light)


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
    if cython.compiled and type(body) is bytes and type(headers) is list and type(
            date_header) is bytes:
        # PERF: one allocation, no list of pieces, no %-formatting of the length.
        out = _c_response(status_line(status_code), date_header, headers, body,  # noqa: F821
                          status_code < 200 or status_code == 204 or status_code == 304,
                          head_only, keep_alive, http_minor)
        if out is not None:
            return out
    if status_code < 200 or status_code == 204 or status_code == 304:
        parts = encode_head(status_code, headers, -1, keep_alive, http_minor, date_header, False)
        return b"".join(parts)
    parts = encode_head(status_code, headers, len(body), keep_alive, http_minor, date_header, False)
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def app_framing(
    status_code: int, headers: list, content_length: int, head_only: bool, streaming: bool
) -> object:
    """Check the framing fields an app set against what the response is.

    The engine owns ``Content-Length``, ``Transfer-Encoding`` and ``Connection``
    (RFC 9112 §6, §9.6): the writer computes them.  Returns None when ``headers``
    holds none of them (the common case, one pass in C when compiled).  Otherwise
    returns ``(headers, content_length, close)``: the headers without those fields,
    the length to write (an app's ``Content-Length`` on HEAD or 304 describes the
    GET: it is kept when the engine has no body to measure) and whether the app
    asked for ``Connection: close``.  A value that conflicts raises ValueError
    naming it, before anything is sent.  ``content_length`` < 0 means "not known"
    (a stream, chunked on HTTP/1.1); ``streaming`` is True for a streamed body.
    """
    found = False
    for pair in headers:
        name = pair[0]
        n = len(name)
        if (n == 14 and name == b"content-length") or (n == 17 and name == b"transfer-encoding") \
                or (n == 10 and name == b"connection"):
            found = True
            break
    if not found:
        return None
    return _check_framing(status_code, headers, content_length, head_only, streaming)


def _check_framing(
    status_code: int, headers: list, content_length: int, head_only: bool, streaming: bool
) -> tuple:
    kept = []
    app_length = -1
    chunked = False
    close = False
    for name, value in headers:
        if name == b"content-length":
            text = value.strip(b" \t")
            if not text.isdigit() or len(text) > 18:
                raise ValueError(f"invalid Content-Length header {value!r} set by the app")
            length = int(text)
            if app_length >= 0 and length != app_length:
                raise ValueError("two different Content-Length headers set by the app")
            app_length = length
        elif name == b"transfer-encoding":
            if value.strip(b" \t").lower() != b"chunked":
                raise ValueError(f"Transfer-Encoding {value!r} set by the app: only the "
                                 "server frames the body (chunked, on a stream)")
            chunked = True
        elif name == b"connection":
            for token in value.lower().split(b","):
                if token.strip(b" \t") == b"close":
                    close = True
        else:
            kept.append((name, value))
    no_body = status_code < 200 or status_code == 204
    if no_body or (status_code == 304 and app_length < 0):
        content_length = -1
    if chunked:
        if no_body or status_code == 304 or not streaming or content_length >= 0:
            raise ValueError("Transfer-Encoding: chunked set by the app on a response that "
                             "is not a stream of unknown length")
        if app_length >= 0:
            raise ValueError("both Content-Length and Transfer-Encoding set by the app")
    if app_length >= 0:
        if no_body:
            if app_length != 0:
                raise ValueError(f"Content-Length set by the app on a {status_code} "
                                 "response, which has no body")
        elif status_code == 304 or (head_only and content_length <= 0):
            content_length = app_length  # NOTE: describes the GET (RFC 9110 §8.6)
        elif app_length != content_length:
            if content_length < 0:
                raise ValueError("Content-Length set by the app on a stream of unknown "
                                 "length (pass the length to start() instead)")
            raise ValueError(f"Content-Length {app_length} set by the app, but the body "
                             f"is {content_length} bytes")
    return (kept, content_length, close)


def encode_framed(
    status_code: int,
    headers: list,
    body: bytes,
    content_length: int,
    keep_alive: bool,
    http_minor: int,
    date_header: bytes,
    head_only: bool,
) -> bytes:
    """:func:`encode_response` after :func:`app_framing`: ``content_length`` is the
    length it returned (an app's on HEAD or 304)."""
    if status_code < 200 or status_code == 204:
        content_length = -1
    elif status_code == 304:
        head_only = True
    parts = encode_head(status_code, headers, content_length, keep_alive, http_minor,
                        date_header, False)
    if not head_only and body:
        parts.append(body)
    return b"".join(parts)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1); empty data is skipped by callers."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def encode_simple(
    status_code: int,
    content_type: bytes,
    body: bytes,
    keep_alive: bool,
    http_minor: int,
    date_header: bytes,
    head_only: bool,
) -> bytes:
    """A whole response whose only headers are ``server``, ``date``, ``content-type``
    and ``content-length``, in one buffer (built in C when compiled).

    The bytes are exactly those of ``encode_response(status_code, [(b"content-type",
    content_type)], body, keep_alive, http_minor, date_header, head_only)``, without
    building a header list.  ``content_type`` and ``body`` must be ``bytes`` (TypeError
    otherwise; ``content_type`` is written as is, so it must come from trusted code),
    ``date_header`` is the full ``date: ...\\r\\n`` line, ``status_code`` 100-599
    (ValueError otherwise).  1xx, 204 and 304 get neither a length nor a body
    (RFC 9110 §8.6); ``head_only`` (HEAD) keeps the length and drops the body.
    """
    line = status_line(status_code)
    if type(content_type) is not bytes or type(body) is not bytes or type(date_header) is not bytes:
        raise TypeError("content_type, body and date_header must be bytes")
    no_body = status_code < 200 or status_code == 204 or status_code == 304
    if cython.compiled:
        return _c_simple(line, date_header, content_type, body, no_body, head_only,  # noqa: F821
                         keep_alive, http_minor)
    parts = [line, SERVER_HEADER, date_header, b"content-type: ", content_type, b"\r\n"]
    if not no_body:
        parts.append(b"content-length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(_CLOSE)
    elif http_minor == 0:
        parts.append(_KEEP_ALIVE)
    parts.append(b"\r\n")
    if not no_body and not head_only:
        parts.append(body)
    return b"".join(parts)


def encode_result(
    result: object, keep_alive: bool, http_minor: int, date_header: bytes, head_only: bool
) -> object:
    """The response bytes for a handler's plain return value, or None.

    Covers the values :func:`ember.responses.to_response` turns into a header-less
    200: a ``str`` (``text/plain; charset=utf-8``), ``bytes``
    (``application/octet-stream``), a ``dict`` or ``list`` (``application/json``,
    serialised by :func:`ember.responses.json_dumps`, whose errors propagate).
    Exact types only; anything else (a Response, a subclass, a tuple, None...)
    returns None and the caller takes the general path.  The bytes equal
    ``encode_response`` of ``to_response(result)``.  For the protocol: call it only
    when no middleware, cache or hook may still change the response.
    """
    global _json_dumps
    t = type(result)
    if t is str:
        return encode_simple(200, _CT_TEXT, result.encode("utf-8"), keep_alive,  # type: ignore[attr-defined]
                             http_minor, date_header, head_only)
    if t is bytes:
        return encode_simple(200, _CT_OCTET, result, keep_alive, http_minor,  # type: ignore[arg-type]
                             date_header, head_only)
    if t is dict or t is list:
        if _json_dumps is None:
            from ember.responses import json_dumps

            _json_dumps = json_dumps
        return encode_simple(200, _CT_JSON, _json_dumps(result), keep_alive, http_minor,
                             date_header, head_only)
    return None
