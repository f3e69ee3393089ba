"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

``await request.form()`` parses as the body streams in — multipart with our own
incremental parser (:class:`MultipartParser`), file parts spooled to disk past
``spool_max_size`` — with limits on the number of fields and files and on each
part's size.  Malformed bodies are a 400 that says what is wrong, oversized ones
a 413, other content types a 415.  Hostile file names are neutralised:
``UploadFile.filename`` is a bare name without directories or control
characters (the original is kept in ``raw_filename``).  Temporary files are
closed on error, by ``await form.close()`` (or ``async with``), and at the
latest when the :class:`UploadFile` is garbage collected.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from ember.datastructures import Headers
from ember.exceptions import HTTPException

_MIB = 1024 * 1024
_MAX_HEADER_BLOCK = 16 * 1024  # bytes of headers in one part
_MAX_PART_HEADERS = 32
_MAX_PREAMBLE = 64 * 1024  # bytes skipped before the first boundary
_MISSING: Any = object()
_RESERVED = re.compile(r"(?i)(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?\Z")


def sanitize_filename(name: str) -> str:
    """A bare, printable file name: no directories, control or reserved characters.

    ``"../../etc/passwd"`` → ``"passwd"``, ``"C:\\\\x\\\\evil.exe"`` → ``"evil.exe"``;
    leading/trailing dots and spaces go (no hidden files, no ``..``); Windows
    device names get a ``_`` prefix; at most 255 UTF-8 bytes, extension kept.
    A name with nothing left becomes ``"upload"``; an empty name stays empty
    (a browser's "no file chosen").
    """
    if not name:
        return ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*')
    name = name.strip(" .")
    if not name:
        return "upload"
    if _RESERVED.match(name):
        name = "_" + name
    if len(name.encode("utf-8")) > 255:
        stem, dot, ext = name.rpartition(".")
        if not dot or len(ext) > 16:
            stem, ext = name, ""
        keep = 255 - len(ext.encode("utf-8")) - (1 if ext else 0)
        stem = stem.encode("utf-8")[:keep].decode("utf-8", "ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name


def parse_options(value: str) -> tuple[str, dict[str, str]]:
    """``'form-data; name="a"; filename="b"'`` → ``("form-data", {"name": "a", ...})``.

    Quoted strings honour ``\\"`` and ``\\\\`` only: browsers send Windows paths
    with raw backslashes.  Parameter names are lower-cased; the first wins.
    """
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        j = i
        while j < n and rest[j] not in "=;":
            j += 1
        key = rest[i:j].strip().lower()
        if j >= n or rest[j] == ";":
            i = j
            continue
        j += 1
        while j < n and rest[j] in " \t":
            j += 1
        if j < n and rest[j] == '"':
            j += 1
            out: list[str] = []
            while j < n and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < n and rest[j + 1] in '"\\':
                    j += 1
                out.append(rest[j])
                j += 1
            if j >= n:
                raise ValueError("unterminated quoted string")
            val = "".join(out)
            while j < n and rest[j] != ";":
                j += 1
        else:
            k = rest.find(";", j)
            k = n if k < 0 else k
            val = rest[j:k].strip()
            j = k
        if key:
            params.setdefault(key, val)
        i = j
    return main.strip().lower(), params


def _ext_value(value: str) -> str | None:
    """Decode an RFC 8187 ``charset'lang'pct-encoded`` value; None if invalid."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return None
    charset = parts[0].strip() or "utf-8"
    try:
        return unquote(parts[2], encoding=charset, errors="strict")
    except (LookupError, UnicodeDecodeError):
        return None


class UploadFile:
    """An uploaded file: ``filename`` (sanitised), ``raw_filename``, ``content_type``,
    ``headers``, ``size`` and ``file`` (a ``SpooledTemporaryFile``).

    Reads and writes run in a thread once the file has spooled to disk.
    """

    def __init__(self, filename: str, content_type: str = "application/octet-stream",
                 headers: Headers | Mapping[str, str] | None = None, file: Any = None,
                 size: int = 0, *, spool_max_size: int = _MIB) -> None:
        self.raw_filename = filename
        self.filename = sanitize_filename(filename)
        self.content_type = content_type
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        if file is None:
            file = tempfile.SpooledTemporaryFile(max_size=spool_max_size)  # noqa: SIM115
        self.file = file
        self.size = size
        # NOTE: the file is closed when this object dies, even if nobody calls close().
        self._finalizer = weakref.finalize(self, file.close)

    @property
    def in_memory(self) -> bool:
        """False once the content was spooled to a temporary file on disk."""
        return not getattr(self.file, "_rolled", False)

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self.in_memory:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all by default) from the current position."""
        return await self._run(self.file.read, size)

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position; returns the new one."""
        return self.file.seek(offset, whence)

    async def write(self, data: bytes) -> None:
        """Append data (the parser uses this; ``size`` grows with it)."""
        await self._run(self.file.write, data)
        self.size += len(data)

    async def close(self) -> None:
        """Close (and so delete) the temporary file."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return bool(self.file.closed)

    def __repr__(self) -> str:
        return (f"UploadFile(filename={self.filename!r}, content_type={self.content_type!r}, "
                f"size={self.size})")


class FormData(Mapping[str, Any]):
    """Multi-valued form fields (``str``) and files (:class:`UploadFile`).

    Like ``QueryParams``: ``form["k"]`` / ``get`` give the first value, ``getall``
    every value, ``multi_items()`` every pair in order.  ``await form.close()``
    (or ``async with form:``) deletes the uploaded files' temporary files.
    """

    __slots__ = ("_dict", "_list")

    def __init__(self, items: list[tuple[str, Any]] | Mapping[str, Any] | None = None) -> None:
        if isinstance(items, Mapping):
            items = list(items.items())
        self._list: list[tuple[str, Any]] = list(items or [])
        d: dict[str, list[Any]] = {}
        for k, v in self._list:
            d.setdefault(k, []).append(v)
        self._dict = d

    def __getitem__(self, key: str) -> Any:
        return self._dict[key][0]

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of ``key``, or ``default``."""
        values = self._dict.get(key)
        return values[0] if values else default

    def getall(self, key: str, default: Any = _MISSING) -> list[Any]:
        """Every value of ``key`` in order; ``[]`` when absent unless a default is given."""
        values = self._dict.get(key)
        if values is None:
            return [] if default is _MISSING else default
        return list(values)

    getlist = getall

    def multi_items(self) -> list[tuple[str, Any]]:
        """Every ``(key, value)`` pair, repeated keys included, in body order."""
        return list(self._list)

    def files(self) -> list[UploadFile]:
        """Every uploaded file."""
        return [v for _, v in self._list if isinstance(v, UploadFile)]

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    async def close(self) -> None:
        """Close every uploaded file."""
        for upload in self.files():
            await upload.close()

    async def __aenter__(self) -> FormData:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"FormData({self._list!r})"


class MultipartParser:
    """Incremental ``multipart/form-data`` framing (RFC 7578, RFC 2046 §5.1).

    ``feed(bytes)`` returns events: ``("part", Headers)``, ``("data", bytes)``,
    ``("end_part",)`` and ``("end",)`` after the closing delimiter; ``eof()``
    raises when the body stopped before it.  Framing errors are
    ``HTTPException(400)``.  Memory stays bounded by the chunk size: part data is
    handed out as it arrives, keeping back only what could start a delimiter.
    """

    def __init__(self, boundary: bytes) -> None:
        self._delim = b"\r\n--" + boundary
        # NOTE: the first delimiter needs no CRLF before it; pretend there is one.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"
        self._skipped = 0

    @property
    def done(self) -> bool:
        """True once the closing delimiter was seen (the rest is epilogue)."""
        return self._state == "epilogue"

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        """Consume more bytes; return what they completed."""
        events: list[tuple[Any, ...]] = []
        buf = self._buf
        if self._state == "epilogue":
            return events
        buf += data
        delim = self._delim
        while True:
            state = self._state
            if state == "body":
                idx = buf.find(delim)
                if idx < 0:
                    cut = len(buf) - len(delim) + 1
                    if cut > 0:
                        events.append(("data", bytes(buf[:cut])))
                        del buf[:cut]
                    return events
                if idx:
                    events.append(("data", bytes(buf[:idx])))
                events.append(("end_part",))
                del buf[: idx + len(delim)]
                self._state = "delimiter"
            elif state == "delimiter":
                if len(buf) < 2:
                    return events
                if buf[:2] == b"--":
                    self._state = "epilogue"
                    buf.clear()
                    events.append(("end",))
                    return events
                idx = buf.find(b"\r\n")
                line = buf if idx < 0 else buf[:idx]
                if line.strip(b" \t\r"):
                    raise HTTPException(400, "malformed multipart body: unexpected bytes after "
                                             "a boundary")
                if idx < 0:
                    if len(buf) > 1024:
                        raise HTTPException(400, "malformed multipart body: boundary line too "
                                                 "long")
                    return events
                del buf[: idx + 2]
                self._state = "headers"
            elif state == "headers":
                if len(buf) < 2:
                    return events
                if buf[:2] == b"\r\n":
                    block = b""
                    del buf[:2]
                else:
                    idx = buf.find(b"\r\n\r\n", 0, _MAX_HEADER_BLOCK + 4)
                    if idx < 0:
                        if len(buf) > _MAX_HEADER_BLOCK:
                            raise HTTPException(413, "multipart part headers too large")
                        return events
                    block = bytes(buf[:idx])
                    del buf[: idx + 4]
                events.append(("part", _part_headers(block)))
                self._state = "body"
            elif state == "preamble":
                idx = buf.find(delim)
                if idx < 0:
                    cut = len(buf) - len(delim) + 1
                    if cut > 0:
                        self._skipped += cut
                        del buf[:cut]
                    if self._skipped > _MAX_PREAMBLE:
                        raise HTTPException(400, "malformed multipart body: the boundary "
                                                 "never appears")
                    return events
                del buf[: idx + len(delim)]
                self._state = "delimiter"
            else:
                return events

    def eof(self) -> None:
        """The body ended: 400 unless the closing delimiter was seen."""
        if self._state == "epilogue":
            return
        if self._state == "preamble":
            raise HTTPException(400, "malformed multipart body: no boundary found")
        raise HTTPException(400, "malformed multipart body: truncated (no closing boundary)")


def _part_headers(block: bytes) -> Headers:
    raw: list[tuple[bytes, bytes]] = []
    lines = block.split(b"\r\n") if block else []
    if len(lines) > _MAX_PART_HEADERS:
        raise HTTPException(413, f"more than {_MAX_PART_HEADERS} headers in a multipart part")
    for line in lines:
        name, colon, value = line.partition(b":")
        if (not colon or not name or name != name.strip() or b" " in name
                or any(c < 33 or c > 126 for c in name) or b"\x00" in value
                or b"\r" in value or b"\n" in value):
            raise HTTPException(400, "malformed multipart part header")
        # NOTE: kept as bytes like request headers; _header_text decodes UTF-8 names.
        raw.append((name.lower(), value.strip()))
    return Headers(raw)


def _header_text(headers: Headers, name: str, default: str = "") -> str:
    value = headers.get(name)
    if value is None:
        return default
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


async def parse_form(request: Any, *, max_files: int = 1000, max_fields: int = 1000,
                     max_part_size: int = 1024 * _MIB, max_field_size: int = _MIB,
                     spool_max_size: int = _MIB) -> FormData:
    """Parse the request body as a form (see the module docstring).

    ``max_files``/``max_fields``: how many file / non-file parts (or urlencoded
    pairs) are accepted; ``max_part_size``: bytes per uploaded file;
    ``max_field_size``: bytes per non-file value; ``spool_max_size``: an upload
    stays in memory up to this size, then moves to a temporary file.  The
    server's ``max_body_size`` (or the route's ``RouteLimits``) bounds the whole body.
    """
    try:
        media, params = parse_options(request.headers.get("content-type", "") or "")
    except ValueError:
        raise HTTPException(400, "malformed Content-Type header") from None
    if media == "application/x-www-form-urlencoded":
        return await _parse_urlencoded(request, max_fields, max_field_size)
    if media == "multipart/form-data":
        boundary = params.get("boundary", "")
        if not 1 <= len(boundary) <= 70 or not boundary.isascii() or not boundary.isprintable():
            raise HTTPException(400, "multipart/form-data without a valid boundary parameter")
        return await _parse_multipart(request, boundary.encode("ascii"), max_files, max_fields,
                                      max_part_size, max_field_size, spool_max_size)
    if not media and not await request.body():
        return FormData()  # NOTE: no body at all is an empty form, not a wrong type
    raise HTTPException(415, "expected a form body (application/x-www-form-urlencoded or "
                             f"multipart/form-data), got {media or 'no content type'!r}")


async def _parse_urlencoded(request: Any, max_fields: int, max_field_size: int) -> FormData:
    body = await request.body()
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields,
                          encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise HTTPException(400, "form body is not valid percent-encoded UTF-8") from None
    except ValueError:
        raise HTTPException(413, f"too many form fields (limit {max_fields})") from None
    for key, value in pairs:
        if len(value) > max_field_size or len(key) > max_field_size:
            raise HTTPException(413, f"form field larger than {max_field_size} bytes")
    return FormData(pairs)


async def _parse_multipart(request: Any, boundary: bytes, max_files: int, max_fields: int,
                           max_part_size: int, max_field_size: int,
                           spool_max_size: int) -> FormData:
    parser = MultipartParser(boundary)
    items: list[tuple[str, Any]] = []
    uploads: list[UploadFile] = []
    files = fields = 0
    name = ""
    upload: UploadFile | None = None
    value = bytearray()
    charset = "utf-8"
    default_charset = "utf-8"
    try:
        async for chunk in request.stream():
            if parser.done:
                continue  # NOTE: drain the epilogue so the connection stays usable
            for event in parser.feed(chunk):
                kind = event[0]
                if kind == "data":
                    data = event[1]
                    if upload is not None:
                        if upload.size + len(data) > max_part_size:
                            raise HTTPException(413, "uploaded file larger than "
                                                     f"{max_part_size} bytes")
                        await upload.write(data)
                    else:
                        if len(value) + len(data) > max_field_size:
                            raise HTTPException(413, f"form field {name!r} larger than "
                                                     f"{max_field_size} bytes")
                        value += data
                elif kind == "part":
                    headers: Headers = event[1]
                    name, filename, ctype, part_charset = _describe_part(headers)
                    if filename is not None:
                        files += 1
                        if files > max_files:
                            raise HTTPException(413, f"too many files (limit {max_files})")
                        upload = UploadFile(filename, ctype or "application/octet-stream",
                                            headers, spool_max_size=spool_max_size)
                        uploads.append(upload)
                    else:
                        fields += 1
                        if fields > max_fields:
                            raise HTTPException(413, f"too many form fields (limit {max_fields})")
                        upload = None
                        value = bytearray()
                        charset = part_charset or default_charset
                elif kind == "end_part":
                    if upload is not None:
                        await upload.seek(0)
                        items.append((name, upload))
                        upload = None
                    else:
                        text = _decode_field(name, bytes(value), charset)
                        if name == "_charset_" and _known_charset(text):
                            default_charset = text  # NOTE: RFC 7578 §4.6
                        items.append((name, text))
        parser.eof()
    except BaseException:
        for u in uploads:
            await u.close()
        raise
    return FormData(items)


def _describe_part(headers: Headers) -> tuple[str, str | None, str, str | None]:
    """``(name, filename or None, content type, charset or None)`` of a part."""
    disposition = _header_text(headers, "content-disposition")
    ctype = _header_text(headers, "content-type")
    try:
        kind, params = parse_options(disposition)
        charset = parse_options(ctype)[1].get("charset")
    except ValueError:
        raise HTTPException(400, "malformed multipart part header (unterminated quote)") \
            from None
    if kind != "form-data":
        raise HTTPException(400, "multipart part without 'Content-Disposition: form-data'")
    name = params.get("name")
    if name is None:
        raise HTTPException(400, "multipart part without a field name")
    filename = params.get("filename")
    if "filename*" in params:
        filename = _ext_value(params["filename*"]) or filename
    return name, filename, ctype, charset


def _known_charset(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _decode_field(name: str, raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset)
    except LookupError:
        raise HTTPException(400, f"form field {name!r}: unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise HTTPException(400, f"form field {name!r} is not valid {charset}") from None
