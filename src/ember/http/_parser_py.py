# cython: annotation_typing=False
"""Incremental HTTP/1.1 request parser (RFC 9112), the pure-Python reference.

The same file is compiled by Cython as ``_parser_c`` (``_parser_c.pxd`` types
it); ``ember.http.parser`` picks the compiled twin unless ``EMBER_NO_EXTENSIONS``
is set.  Any split of the input bytes gives the same events.

Events go to the owner object passed in, looked up once at construction:

* ``on_headers(method, target, http_minor, headers, keep_alive, chunked,
  content_length, upgrade, expect)`` -- ``headers`` is a list of
  ``(lowercase_name, value)`` byte pairs, in order, with OWS stripped; a true
  return value means the owner switched protocols (the parser then stops and
  keeps the remaining bytes for :meth:`take_buffer`);
* ``on_body(chunk)`` -- zero or more times;
* ``on_message_complete()``.

Anything RFC 9112 forbids raises :class:`~ember.http.errors.HttpParserError`
with the status to answer; the connection must then be closed, because the
message boundaries can no longer be trusted (request smuggling).  Where llhttp
is more lenient than the RFC we follow the RFC and say so in
``tests/http/test_parser_differential.py``.
"""

from __future__ import annotations

import re

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember.http.errors import HttpParserError

# llhttp's method table (the parser inside Node.js): anything else is 501.
KNOWN_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
    b"PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE "
    b"QUERY".split()
)
_METHOD_STR = {m: m.decode("ascii") for m in KNOWN_METHODS}

# request-line = method SP request-target SP HTTP-version   (RFC 9112 §3)
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP/(\d)\.(\d)")
_TOKEN_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ ")
# field-line = field-name ":" OWS field-value OWS; values: VCHAR / obs-text / SP / HTAB
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
_DIGITS = re.compile(rb"[0-9]+")
# absolute-form / authority-form (RFC 9112 §3.2.2-3): host (reg-name or IP-literal), port
_HOST_PORT = rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]*)?"
_ABSOLUTE = re.compile(rb"[Hh][Tt][Tt][Pp][Ss]?://" + _HOST_PORT + rb"(?:[/?][\x21-\x7e]*)?")
_AUTHORITY = re.compile(_HOST_PORT)
# chunk = chunk-size [ chunk-ext ] CRLF ; chunk-ext = *( ";" token [ "=" ( token / quoted ) ] )
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)((?:;[^\x00-\x08\x0a-\x1f\x7f]*)?)")
_CHUNK_EXT = re.compile(
    rb"(?:;[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*"
    rb"(?:=[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|\"(?:[^\"\\\x00-\x08\x0a-\x1f\x7f]|\\.)*\"))?)*"
)

# Byte classes for the compiled scanner (RFC 9110 §5.6.2 tchar; field-value bytes).
_tchar = bytearray(256)
for _c in bytearray(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"):
    _tchar[_c] = 1
_vchar = bytearray(256)
for _c in range(256):
    _vchar[_c] = 1 if _c == 9 or 32 <= _c <= 126 or _c >= 128 else 0
_TCHAR = bytes(_tchar)
_VCHAR = bytes(_vchar)

_MAX_CONTENT_LENGTH = (1 << 63) - 1
_MAX_CHUNK_SIZE_DIGITS = 16
_MAX_CHUNK_LINE = 4096  # chunk size + extensions (oversized extensions are a DoS vector)
# chunk lines parsed per feed_data before the parser yields (``yielded``): one client
# sending 1-byte chunks cannot hold the event loop for a whole read (issue 23)
CHUNK_BUDGET = 4096

_S_HEAD = 0
_S_BODY_LENGTH = 1
_S_CHUNK_SIZE = 2
_S_CHUNK_DATA = 3
_S_CHUNK_DATA_END = 4
_S_TRAILERS = 5
_S_UPGRADED = 6
_S_ERROR = 7


def _is_head(data: bytes, pos: int) -> bool:
    """Whether the request head at ``pos`` (after any empty lines) is a HEAD request."""
    while data.startswith(b"\r\n", pos):
        pos += 2
    return data.startswith(b"HEAD ", pos)


class HttpRequestParser:
    """Turns a byte stream into request events; see the module docstring."""

    def __init__(
        self,
        owner: object,
        max_header_size: int = 16384,
        max_headers: int = 100,
        max_url_size: int = 8192,
    ) -> None:
        self._on_headers = owner.on_headers  # type: ignore[attr-defined]
        self._on_body = owner.on_body  # type: ignore[attr-defined]
        self._on_message_complete = owner.on_message_complete  # type: ignore[attr-defined]
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.max_url_size = max_url_size
        self._buf = b""
        self._state = _S_HEAD
        self._remaining = 0
        self._trailer_bytes = 0
        self.yielded = False

    @property
    def upgraded(self) -> bool:
        """True once an Upgrade/CONNECT request handed the stream to another protocol."""
        return self._state == _S_UPGRADED

    def take_buffer(self) -> bytes:
        """Bytes received past an upgrade request, for the next protocol."""
        data, self._buf = self._buf, b""
        return data

    def feed_data(self, data: bytes) -> None:
        """Parse ``data``; raises :class:`HttpParserError` on a malformed request.

        ``yielded`` is True afterwards when the work budget (:data:`CHUNK_BUDGET`) was
        spent before the end of the input: the rest is kept, and ``feed_data(b"")``
        (one loop turn later) goes on.
        """
        self.yielded = False
        if self._state >= _S_UPGRADED:
            if self._state == _S_UPGRADED:
                self._buf += data
                return
            raise HttpParserError(400, "parser is in an error state")
        if self._buf:
            data = self._buf + data
            self._buf = b""
        try:
            pos = self._parse(data)
        except HttpParserError:
            self._state = _S_ERROR
            raise
        if pos < len(data):
            self._buf = data[pos:]

    # -- state machine ---------------------------------------------------

    def _parse(self, data: bytes) -> int:
        # PERF (issue 23): the data of consecutive chunks within one read is handed over
        # in one on_body call (``pending``), so a body sent as 1-byte chunks costs one
        # callback per read, not one per byte.  Body bytes always reach the owner before
        # the message completes, and before any framing error this read raises.
        pending = None
        budget = CHUNK_BUDGET
        state = _S_ERROR  # NOTE: set by the loop; read by the error path below
        try:
            pos = 0
            end = len(data)
            while pos < end:
                state = self._state
                if state == _S_HEAD:
                    new = self._parse_head(data, pos, end)
                    if new < 0:
                        return pos
                    pos = new
                elif state == _S_BODY_LENGTH:
                    n = min(self._remaining, end - pos)
                    self._remaining -= n
                    self._on_body(data[pos : pos + n])
                    pos += n
                    if self._remaining == 0:
                        self._state = _S_HEAD
                        self._on_message_complete()
                elif state == _S_CHUNK_SIZE:
                    budget -= 1
                    if budget < 0:
                        self.yielded = True
                        break
                    new = self._parse_chunk_size(data, pos, end)
                    if new < 0:
                        break
                    pos = new
                elif state == _S_CHUNK_DATA:
                    n = min(self._remaining, end - pos)
                    self._remaining -= n
                    if pending is None:
                        pending = data[pos : pos + n]
                    else:
                        if type(pending) is bytes:
                            pending = bytearray(pending)
                        pending += data[pos : pos + n]
                    pos += n
                    if self._remaining == 0:
                        self._state = _S_CHUNK_DATA_END
                elif state == _S_CHUNK_DATA_END:
                    if end - pos < 2:
                        if data[pos] != 13:
                            raise HttpParserError(400, "expected CRLF after chunk data")
                        break
                    if data[pos] != 13 or data[pos + 1] != 10:
                        raise HttpParserError(400, "expected CRLF after chunk data")
                    pos += 2
                    self._state = _S_CHUNK_SIZE
                elif state == _S_TRAILERS:
                    if pending is not None:
                        chunk, pending = pending, None
                        self._on_body(chunk if type(chunk) is bytes else bytes(chunk))
                    new = self._parse_trailers(data, pos, end)
                    if new < 0:
                        return pos
                    pos = new
                else:  # upgraded: the rest belongs to the next protocol
                    self._buf = data[pos:]
                    return end
        except HttpParserError as exc:
            if state == _S_HEAD:  # NOTE: the refusal of a HEAD request carries no body
                exc.head_only = _is_head(data, pos)
            if pending is not None:
                # NOTE: an error in the body (413) came before this framing error
                self._on_body(pending if type(pending) is bytes else bytes(pending))
            raise
        if pending is not None:
            self._on_body(pending if type(pending) is bytes else bytes(pending))
        return pos

    def _parse_head(self, data: bytes, pos: int, end: int) -> int:
        if cython.compiled:
            # PERF: C scans (memchr) instead of bytes method calls on every request.
            pos = _c_skip_crlf(data, pos, end)  # noqa: F821 - defined in _parser_c.pxd
            if pos >= end:
                return end
            idx = _c_find_head_end(data, pos, end)  # noqa: F821
            line_end = _c_find_crlf(data, pos, end) if idx >= 0 else -1  # noqa: F821
        else:
            # RFC 9112 §2.2: ignore empty lines received before the request-line.
            while data.startswith(b"\r\n", pos):
                pos += 2
            if pos >= end:
                return end
            idx = data.find(b"\r\n\r\n", pos)
            line_end = data.find(b"\r\n", pos) if idx >= 0 else -1
        if idx < 0:
            if data[pos] == 13 and end - pos == 1:
                return -1
            self._check_partial_head(data, pos, end)
            return -1
        if line_end - pos > self.max_url_size + 32:
            raise HttpParserError(414, "request target too long")
        if idx - line_end > self.max_header_size:
            raise HttpParserError(431, "request header section too large")
        scanned = None
        if cython.compiled:
            # PERF: one C pass over the head; anything unusual goes the regex way,
            # which is the reference (and produces the precise error).
            scanned = _scan_head(data, pos, line_end, idx, self.max_headers)
        if scanned is not None:
            method_b = scanned[0]
            target = scanned[1]
            major = scanned[2]
            minor = scanned[3]
            headers = scanned[4]
        else:
            m = _REQUEST_LINE.fullmatch(data, pos, line_end)
            if m is None:
                self._reject_request_line(data[pos:line_end])
            method_b = m.group(1)
            target = m.group(2)
            major = m.group(3)[0] - 48
            minor = m.group(4)[0] - 48
            headers = None
        method = _METHOD_STR.get(method_b)
        if method is None:
            raise HttpParserError(501, "unknown request method")
        if len(target) > self.max_url_size:
            raise HttpParserError(414, "request target too long")
        if major != 1 or minor > 1:
            raise HttpParserError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        if target[0] != 47 and not self._valid_other_form(method, target):  # "/"
            raise HttpParserError(400, "invalid request target")

        keep_alive = minor == 1
        chunked = False
        content_length = -1
        upgrade = None
        expect = None
        te_seen = False
        conn_upgrade = False
        if headers is None:
            headers = []
            if idx > line_end:
                lines = data[line_end + 2 : idx].split(b"\r\n")
                if len(lines) > self.max_headers:
                    raise HttpParserError(431, "too many request headers")
                for line in lines:
                    hm = _HEADER_LINE.fullmatch(line)
                    if hm is None:
                        _reject_header_line(line)
                    headers.append((hm.group(1).lower(), hm.group(2)))
        for pair in headers:
            name = pair[0]
            # PERF: the length first: most names are none of these five.
            n = len(name)
            if n != 14 and n != 17 and n != 10 and n != 7 and n != 6:
                continue
            value = pair[1]
            if n == 14 and name == b"content-length":
                if content_length >= 0:
                    raise HttpParserError(400, "duplicate Content-Length")
                if _DIGITS.fullmatch(value) is None:
                    raise HttpParserError(400, "invalid Content-Length")
                if len(value) > 19 or int(value) > _MAX_CONTENT_LENGTH:
                    raise HttpParserError(400, "Content-Length overflow")
                content_length = int(value)
            elif n == 17 and name == b"transfer-encoding":
                if te_seen or chunked:
                    raise HttpParserError(400, "repeated Transfer-Encoding")
                te_seen = True
                chunked = _final_chunked(value)
            elif n == 10 and name == b"connection":
                tokens = value.lower()
                if b"close" in tokens and _has_token(tokens, b"close"):
                    keep_alive = False
                elif minor == 0 and _has_token(tokens, b"keep-alive"):
                    keep_alive = True
                if b"upgrade" in tokens and _has_token(tokens, b"upgrade"):
                    conn_upgrade = True
            elif n == 7 and name == b"upgrade":
                upgrade = value
            elif n == 6 and name == b"expect":
                expect = value
        if te_seen:
            if content_length >= 0:
                raise HttpParserError(400, "both Content-Length and Transfer-Encoding")
            # NOTE: a request whose final coding is not chunked has no reliable length.
            if not chunked:
                raise HttpParserError(400, "Transfer-Encoding must end with chunked")
        if not conn_upgrade:
            upgrade = None
        switch = self._on_headers(
            method, target, minor, headers, keep_alive, chunked, content_length, upgrade, expect
        )
        pos = idx + 4
        if switch:
            # The owner took the upgrade (WebSocket, h2c): the rest is not HTTP/1.1.
            self._state = _S_UPGRADED
            return pos
        if chunked:
            self._state = _S_CHUNK_SIZE
        elif content_length > 0:
            self._remaining = content_length
            self._state = _S_BODY_LENGTH
        else:
            self._on_message_complete()
        return pos

    def _check_partial_head(self, data: bytes, pos: int, end: int) -> int:
        """Refuse an incomplete head early when it is already too big or broken."""
        line_end = data.find(b"\r\n", pos, end)
        if line_end < 0:
            if end - pos > self.max_url_size + 32:
                raise HttpParserError(414, "request target too long")
            if data.find(b"\n", pos, end) >= 0:
                raise HttpParserError(400, "bare LF in request line")
            m = _TOKEN_LINE.match(data, pos, end)
            if m is None and end - pos > 64 and b" " not in data[pos : pos + 64]:
                raise HttpParserError(400, "invalid request line")
            return 0
        if end - line_end > self.max_header_size + 4:
            raise HttpParserError(431, "request header section too large")
        if data.find(b"\n\n", pos, end) >= 0 or data.find(b"\r\n\n", pos, end) >= 0:
            raise HttpParserError(400, "bare LF in request head")
        return 0

    @staticmethod
    def _valid_other_form(method: str, target: bytes) -> bool:
        if target == b"*":
            return method == "OPTIONS"  # asterisk-form (RFC 9112 §3.2.4)
        lower = target[:8].lower()
        if lower.startswith(b"http://") or lower.startswith(b"https://"):
            # absolute-form (RFC 9112 §3.2.2): an http(s) URI needs a host (RFC 9110
            # §4.2.1: MUST reject an empty one) and carries no userinfo (§4.2.4)
            return _ABSOLUTE.fullmatch(target) is not None
        if method == "CONNECT":
            return _AUTHORITY.fullmatch(target) is not None  # authority-form (§3.2.3)
        return False

    @staticmethod
    def _reject_request_line(line: bytes) -> None:
        if b"\n" in line or b"\r" in line:
            raise HttpParserError(400, "bare CR or LF in request line")
        parts = line.split(b" ")
        if len(parts) == 3 and parts[2][:5] == b"HTTP/":
            raise HttpParserError(400, "invalid HTTP version or request target")
        raise HttpParserError(400, "invalid request line")

    def _parse_chunk_size(self, data: bytes, pos: int, end: int) -> int:
        if cython.compiled:
            # PERF: a plain ``HEX CRLF`` line is read in C; anything else (extensions,
            # leading zeros, garbage, a partial line) takes the reference path below.
            size = _c_chunk_size(data, pos, end)  # noqa: F821 - defined in _parser_c.pxd
            if size > 0:
                self._remaining = size
                self._state = _S_CHUNK_DATA
                return pos + _c_hex_len(size) + 2  # noqa: F821
        line_end = data.find(b"\r\n", pos, min(end, pos + _MAX_CHUNK_LINE + 2))
        if line_end < 0:
            if end - pos > _MAX_CHUNK_LINE:
                raise HttpParserError(400, "chunk extensions too long")
            if data.find(b"\n", pos, end) >= 0:
                raise HttpParserError(400, "bare LF in chunk size line")
            return -1
        m = _CHUNK_SIZE.fullmatch(data, pos, line_end)
        if m is None:
            raise HttpParserError(400, "invalid chunk size")
        size_hex = m.group(1)
        if len(size_hex) >= _MAX_CHUNK_SIZE_DIGITS:
            # NOTE (issue 23): leading zeros are allowed (1*HEXDIG, as llhttp); a size
            # of 2^63 or more is refused here, before int() (Py_ssize_t when compiled).
            size_hex = size_hex.lstrip(b"0") or b"0"
            if len(size_hex) > _MAX_CHUNK_SIZE_DIGITS or (
                    len(size_hex) == _MAX_CHUNK_SIZE_DIGITS and size_hex[0] > 55):  # "7"
                raise HttpParserError(400, "chunk size overflow")
        ext = m.group(2)
        if ext and _CHUNK_EXT.fullmatch(ext) is None:
            raise HttpParserError(400, "invalid chunk extension")
        size = int(size_hex, 16)
        pos = line_end + 2
        if size == 0:
            self._state = _S_TRAILERS
            self._trailer_bytes = 0
        else:
            self._remaining = size
            self._state = _S_CHUNK_DATA
        return pos

    def _parse_trailers(self, data: bytes, pos: int, end: int) -> int:
        while True:
            line_end = data.find(b"\r\n", pos, end)
            if line_end < 0:
                if end - pos + self._trailer_bytes > self.max_header_size:
                    raise HttpParserError(431, "trailer section too large")
                if data.find(b"\n", pos, end) >= 0:
                    raise HttpParserError(400, "bare LF in trailers")
                return -1
            if line_end == pos:
                self._state = _S_HEAD
                self._on_message_complete()
                return pos + 2
            self._trailer_bytes += line_end - pos + 2
            if self._trailer_bytes > self.max_header_size:
                raise HttpParserError(431, "trailer section too large")
            if _HEADER_LINE.fullmatch(data, pos, line_end) is None:
                _reject_header_line(data[pos:line_end])
            # NOTE: trailer fields are validated and dropped; RFC 9110 §6.5.1 lets a
            # recipient discard them, and merging them into headers invites smuggling.
            pos = line_end + 2


@cython.boundscheck(False)
@cython.wraparound(False)
def _scan_head(data: bytes, pos: int, line_end: int, idx: int, max_headers: int) -> object:
    """The compiled fast path of the head: ``(method, target, major, minor, headers)``.

    Returns None for anything it is not sure about; the regex path then decides,
    so both twins accept and refuse exactly the same heads.  (Only compiled.)
    """
    buf = data
    tchar = _TCHAR
    vchar = _VCHAR
    # request-line: tchar+ SP 0x21-0x7e+ SP "HTTP/" DIGIT "." DIGIT
    i = pos
    while i < line_end and tchar[buf[i]]:
        i += 1
    if i == pos or i >= line_end or buf[i] != 32:
        return None
    method = data[pos:i]
    i += 1
    start = i
    while i < line_end and 0x21 <= buf[i] <= 0x7E:
        i += 1
    if i == start or line_end - i != 9 or buf[i] != 32:
        return None
    target = data[start:i]
    if (buf[i + 1] != 72 or buf[i + 2] != 84 or buf[i + 3] != 84 or buf[i + 4] != 80
            or buf[i + 5] != 47 or buf[i + 7] != 46):  # "HTTP/" d "." d
        return None
    if not (48 <= buf[i + 6] <= 57 and 48 <= buf[i + 8] <= 57):
        return None
    major = buf[i + 6] - 48
    minor = buf[i + 8] - 48
    headers = []
    count = 0
    i = line_end + 2
    while i < idx + 2:
        count += 1
        if count > max_headers:
            return None
        start = i
        upper_seen = 0
        while tchar[buf[i]]:
            if 65 <= buf[i] <= 90:
                upper_seen = 1
            i += 1
        if i == start or buf[i] != 58:  # ":"
            return None
        stop = i
        i += 1
        while buf[i] == 32 or buf[i] == 9:
            i += 1
        vstart = i
        while vchar[buf[i]]:
            i += 1
        if buf[i] != 13 or buf[i + 1] != 10:
            return None
        vend = i
        while vend > vstart and (buf[vend - 1] == 32 or buf[vend - 1] == 9):
            vend -= 1
        # NOTE: _c_lower_slice is a C helper defined in _parser_c.pxd (compiled only).
        name = _c_lower_slice(data, start, stop) if upper_seen else data[start:stop]  # noqa: F821
        headers.append((name, data[vstart:vend]))
        i += 2
    return (method, target, major, minor, headers)


def _reject_header_line(line: bytes) -> None:
    if not line:
        raise HttpParserError(400, "empty header line")
    if line[0] in (32, 9):
        raise HttpParserError(400, "obsolete line folding is not allowed")
    colon = line.find(b":")
    if colon <= 0:
        raise HttpParserError(400, "invalid header line")
    if line[colon - 1] in (32, 9):
        raise HttpParserError(400, "whitespace before colon in header")
    if b"\r" in line or b"\n" in line:
        raise HttpParserError(400, "bare CR or LF in header")
    if b"\x00" in line:
        raise HttpParserError(400, "NUL in header")
    raise HttpParserError(400, "invalid character in header")


def _final_chunked(value: bytes) -> bool:
    """True when ``chunked`` is the last coding, once (RFC 9112 §6.1)."""
    codings = [c.strip(b" \t").lower() for c in value.split(b",")]
    for c in codings:
        if not c or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*;.*)?", c):
            raise HttpParserError(400, "invalid Transfer-Encoding")
    if codings[-1] != b"chunked":
        if b"chunked" in codings:
            raise HttpParserError(400, "chunked must be the final transfer coding")
        return False
    if codings.count(b"chunked") > 1:
        raise HttpParserError(400, "chunked applied more than once")
    return True


def _has_token(value: bytes, token: bytes) -> bool:
    return any(t.strip(b" \t") == token for t in value.split(b","))
