"""Files on disk as responses: zero-copy ``sendfile``, Range requests, validators.

:class:`FileResponse` does no I/O when it is built: the file is opened and
``fstat``-ed when the response is sent, so what goes out always matches one
snapshot of the file (size, ``Last-Modified`` and ``ETag`` come from the same
``fstat`` as the bytes).  A file that is missing at that moment is a ``404``
(``{"detail": "Not Found"}``, like the app's own 404), a directory too; a file
the server may not read is a ``403``.  These answers are produced by the
response itself, so the app's custom exception handlers do not see them.

With ``root=``, ``path`` is an untrusted relative path (say, from the URL): it is
resolved with :func:`os.path.realpath` (symlinks included) and anything that
lands outside ``root`` — ``..`` segments, absolute paths, backslashes, NUL
bytes, symlinks pointing out — is a ``404``.  :meth:`FileResponse.safe` is the
same thing spelled as a constructor.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from ember.responses import Response

_NOT_FOUND = b'{"detail":"Not Found"}'
_FORBIDDEN = b'{"detail":"Forbidden"}'
_MAX_RANGES = 64  # NOTE: more than this in one Range header is ignored (200), as Apache does
_UNSAFE_FILENAME = str.maketrans({c: "_" for c in '"\\' + "".join(map(chr, range(32))) + "\x7f"})


class FileResponse(Response):
    """Send a file: ``Content-Length``, ``ETag``, ``Last-Modified``, Range and 304.

    - ``filename`` adds ``Content-Disposition`` (``content_disposition_type``,
      ``"attachment"`` by default, or ``"inline"``); non-ASCII names are sent as
      RFC 6266/5987 ``filename*=UTF-8''…`` with an ASCII fallback.
    - ``media_type`` defaults to a guess from ``filename`` or ``path``.
    - ``root``: treat ``path`` as untrusted and relative to ``root`` (see module doc).
    - ``chunk_size``: the size of each ``sendfile`` step; the stream can be
      cancelled (client gone) between steps.

    Conditional requests: ``If-None-Match`` (weak comparison, ``*``) and, when it
    is absent, ``If-Modified-Since`` answer ``304`` to GET and HEAD.  ``Range``
    (GET only): one range is a ``206`` with ``Content-Range``; several are a
    ``206 multipart/byteranges`` (overlapping ranges are merged); none
    satisfiable is a ``416`` with ``Content-Range: bytes */size``; a malformed
    header is ignored (RFC 9110 §14.2) and the whole file sent.  ``If-Range``
    honours the range only when its date equals ``Last-Modified``: the ETag is
    weak, and a weak tag never matches ``If-Range``'s strong comparison.
    """

    streaming = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
        root: str | os.PathLike[str] | None = None,
        chunk_size: int = 256 * 1024,
        background: Any = None,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
        if content_disposition_type not in ("attachment", "inline"):
            raise ValueError("content_disposition_type must be 'attachment' or 'inline'")
        self.path: str | None = safe_join(root, path) if root is not None else os.fspath(path)
        self.filename = filename
        self.chunk_size = chunk_size
        if media_type is None:
            guess_from = filename or (self.path or "")
            media_type = mimetypes.guess_type(guess_from, strict=False)[0]
            media_type = media_type or "application/octet-stream"
        super().__init__(None, status_code, headers, media_type, background)
        if filename is not None:
            self._headers["content-disposition"] = content_disposition(
                filename, content_disposition_type)

    @classmethod
    def safe(cls, root: str | os.PathLike[str], user_path: str, **kwargs: Any) -> FileResponse:
        """``FileResponse(user_path, root=root, ...)``: a 404 unless inside ``root``."""
        return cls(user_path, root=root, **kwargs)

    # -- sending -------------------------------------------------------------

    async def stream_to(self, out: Any) -> None:
        """Open, ``fstat`` and send (or 304/206/416) according to the request."""
        if self.path is None:
            await _simple(out, 404, _NOT_FOUND)
            return
        try:
            # PERF: open/fstat run inline; on a local disk they cost microseconds,
            # less than a hop to a thread.
            # NOTE: O_NONBLOCK so that a FIFO under root cannot hang the loop in open();
            # it has no effect on regular files, and anything else is refused below.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            file = os.fdopen(fd, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
            await _simple(out, 404, _NOT_FOUND)
            return
        except PermissionError:
            await _simple(out, 403, _FORBIDDEN)
            return
        except OSError:  # symlink loops, names too long, ...: nothing servable there
            await _simple(out, 404, _NOT_FOUND)
            return
        try:
            st = os.fstat(file.fileno())
            if not stat.S_ISREG(st.st_mode):
                await _simple(out, 404, _NOT_FOUND)
                return
            await self._send(out, file, st)
        finally:
            file.close()

    async def _send(self, out: Any, file: Any, st: os.stat_result) -> None:
        request = out.request
        size = st.st_size
        last_modified = format_datetime(
            datetime.fromtimestamp(int(st.st_mtime), UTC), usegmt=True)
        etag = f'W/"{st.st_mtime_ns:x}-{size:x}"'
        headers = [(n, v) for n, v in self.raw_headers
                   if n not in (b"etag", b"last-modified", b"accept-ranges", b"content-range")]
        headers.append((b"last-modified", last_modified.encode("latin-1")))
        headers.append((b"etag", etag.encode("latin-1")))
        method = request.method
        if (self.status_code == 200 and method in ("GET", "HEAD")
                and _not_modified(request.headers, etag, int(st.st_mtime))):
            keep = (b"etag", b"last-modified", b"cache-control", b"expires", b"vary",
                    b"content-location", b"date")
            out.start(304, [(n, v) for n, v in headers if n in keep])
            await out.end()
            return
        if self.status_code != 200:
            out.start(self.status_code, headers, size)
            await self._copy(out, file, 0, size)
            await out.end()
            return
        headers.append((b"accept-ranges", b"bytes"))
        ranges = None
        range_header = request.headers.get("range") if method == "GET" else None
        if range_header is not None and _if_range_ok(request.headers.get("if-range"),
                                                     last_modified):
            ranges = parse_ranges(range_header, size)
        if ranges is None:
            out.start(200, headers, size)
            await self._copy(out, file, 0, size)
        elif not ranges:
            headers = [(n, v) for n, v in headers if n != b"content-type"]
            headers.append((b"content-range", f"bytes */{size}".encode("latin-1")))
            headers.append((b"content-type", b"application/json"))
            body = b'{"detail":"Range Not Satisfiable"}'
            out.start(416, headers, len(body))
            await out.write(body)
        elif len(ranges) == 1:
            start, end = ranges[0]
            headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode("latin-1")))
            out.start(206, headers, end - start)
            await self._copy(out, file, start, end - start)
        else:
            await self._send_multipart(out, file, headers, ranges, size)
        await out.end()

    async def _send_multipart(self, out: Any, file: Any, headers: list[tuple[bytes, bytes]],
                              ranges: list[tuple[int, int]], size: int) -> None:
        boundary = secrets.token_hex(16)
        ctype = b"application/octet-stream"
        for name, value in headers:
            if name == b"content-type":
                ctype = value
        heads = [
            b"--%s\r\ncontent-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n\r\n"
            % (boundary.encode(), ctype, start, end - 1, size)
            for start, end in ranges
        ]
        tail = b"\r\n--%s--\r\n" % boundary.encode()
        length = sum(len(h) for h in heads) + sum(e - s for s, e in ranges)
        length += 2 * (len(ranges) - 1) + len(tail)
        headers = [(n, v) for n, v in headers if n != b"content-type"]
        headers.append((b"content-type", b"multipart/byteranges; boundary=" + boundary.encode()))
        out.start(206, headers, length)
        for i, ((start, end), head) in enumerate(zip(ranges, heads, strict=True)):
            await out.write(head if i == 0 else b"\r\n" + head)
            await self._copy(out, file, start, end - start)
        await out.write(tail)

    async def _copy(self, out: Any, file: Any, offset: int, count: int) -> None:
        if out.request.method == "HEAD":
            return  # NOTE: the head carries Content-Length; no body, no disk reads
        step = self.chunk_size
        end = offset + count
        while offset < end:
            n = min(step, end - offset)
            await out.sendfile(file, offset, n)
            offset += n
        if os.fstat(file.fileno()).st_size < end:
            # NOTE: the file shrank while we sent it: fewer bytes went out than the
            # Content-Length promised; failing makes the server drop the connection.
            raise RuntimeError(f"{self.path} was truncated while being sent")


# -- helpers -------------------------------------------------------------------


async def _simple(out: Any, status: int, body: bytes) -> None:
    out.start(status, [(b"content-type", b"application/json")], len(body))
    await out.write(body)
    await out.end()


def safe_join(root: str | os.PathLike[str], user_path: str | os.PathLike[str]) -> str | None:
    """The real path of ``user_path`` under ``root``, or ``None`` when it escapes."""
    path = os.fspath(user_path)
    if not isinstance(path, str) or "\x00" in path or "\\" in path:
        return None
    if os.path.isabs(path) or path.startswith("~"):
        return None
    base = os.path.realpath(os.fspath(root))
    full = os.path.realpath(os.path.join(base, path))
    try:
        if os.path.commonpath((base, full)) != base:
            return None
    except ValueError:
        return None
    return full


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``attachment; filename="…"`` with ``filename*=UTF-8''…`` for non-ASCII names."""
    name = os.path.basename(filename.replace("\\", "/")) or "download"
    fallback = name.translate(_UNSAFE_FILENAME)
    try:
        fallback.encode("ascii")
    except UnicodeEncodeError:
        fallback = fallback.encode("ascii", "replace").decode("ascii").replace("?", "_")
        return (f'{disposition}; filename="{fallback}"; '
                f"filename*=UTF-8''{quote(name, safe='')}")
    if fallback != name:
        return (f'{disposition}; filename="{fallback}"; '
                f"filename*=UTF-8''{quote(name, safe='')}")
    return f'{disposition}; filename="{name}"'


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Parse ``Range`` into sorted, merged ``[start, end)`` pairs.

    ``None``: the header is malformed or not ``bytes`` (ignore it, send 200);
    ``[]``: well-formed but nothing satisfiable (416).
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > _MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for part in parts:
        if not part:
            continue  # NOTE: RFC 9110 list syntax allows empty elements
        first, dash, last = part.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
            return None
        if not first.isascii() or not last.isascii():
            return None
        if first:
            start = int(first)
            if last:
                end = int(last) + 1
                if end <= start:
                    return None
            else:
                end = size
            if start >= size:
                continue
            ranges.append((start, min(end, size)))
        elif last:
            suffix = int(last)
            if suffix > 0 and size > 0:
                ranges.append((max(size - suffix, 0), size))
        else:
            return None
    if not ranges and not any(parts):
        return None
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _etag_list(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def _weak_match(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def _not_modified(headers: Any, etag: str, mtime: int) -> bool:
    """RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it."""
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = _etag_list(inm)
        return "*" in tags or any(_weak_match(tag, etag) for tag in tags)
    ims = headers.get("if-modified-since")
    if ims is None:
        return False
    try:
        since = parsedate_to_datetime(ims)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False  # NOTE: not an HTTP-date (those are always GMT)
    return mtime <= int(since.timestamp())


def _if_range_ok(value: str | None, last_modified: str) -> bool:
    """True when the Range may be honoured: no If-Range, or its date matches."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return False  # NOTE: our ETag is weak; If-Range compares strongly
    return value == last_modified
