"""Files: zero-copy ``sendfile``, Range requests, validators and safe paths.

``FileResponse(path)`` sends a file with ``Content-Length``, a weak ``ETag``
(mtime + size), ``Last-Modified`` and ``Accept-Ranges: bytes``; answers
``If-None-Match`` / ``If-Modified-Since`` with 304; serves one range as 206 with
``Content-Range``, several as ``multipart/byteranges``, an unsatisfiable one as
416; ignores a malformed ``Range`` (RFC 9110 §14.2) and honours ``If-Range``.
``FileResponse(user_path, root=directory)`` resolves the real path and refuses
anything outside ``root`` (``..``, absolute paths, symlinks out, NUL bytes) with
404 — path traversal is impossible.  A missing file is a 404 at send time.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
import uuid
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from ember.responses import Response

_MAX_RANGES = 16


def safe_join(root: str | os.PathLike[str], user_path: str) -> str | None:
    """``root``/``user_path`` resolved, or None when it would leave ``root``."""
    if "\x00" in user_path:
        return None
    base = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(base, user_path.lstrip("/\\")))
    if candidate != base and not candidate.startswith(base + os.sep):
        return None
    return candidate


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | str | None:
    """``[(start, end_inclusive), ...]``; None to ignore the header; ``"unsatisfiable"``."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if not first:  # suffix range: the last N bytes
            if not last.isdigit():
                return None
            n = int(last)
            if n == 0:
                continue
            ranges.append((max(0, size - n), size - 1))
            continue
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        end = int(last) if last else size - 1
        if end < start:
            return None
        if start >= size:
            continue
        ranges.append((start, min(end, size - 1)))
    if len(ranges) > _MAX_RANGES:
        return None  # NOTE: too many ranges is a DoS pattern; send the whole file instead
    if not ranges:
        return "unsatisfiable"
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _content_disposition(kind: str, filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    ascii_name = "".join(c for c in ascii_name if c.isprintable()) or "download"
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


class FileResponse(Response):
    """Send a file (see the module docstring)."""

    streaming = True

    def __init__(self, path: str | os.PathLike[str], status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None,
                 filename: str | None = None, content_disposition_type: str = "attachment",
                 root: str | os.PathLike[str] | None = None, chunk_size: int = 256 * 1024,
                 background: Any = None) -> None:
        path = os.fspath(path)
        resolved: str | None = path
        if root is not None:
            resolved = safe_join(root, path)
        elif "\x00" in path:
            resolved = None
        self.path = resolved
        self.chunk_size = chunk_size
        if media_type is None:
            guess = mimetypes.guess_type(filename or path)[0]
            media_type = guess or "application/octet-stream"
        super().__init__(None, status_code, headers, media_type, background)
        if filename is not None:
            self.headers["content-disposition"] = _content_disposition(
                content_disposition_type, filename)

    async def stream_to(self, out: Any) -> None:
        """Stat, answer validators and ranges, then send (zero-copy where possible)."""
        request = out.request
        path = self.path
        try:
            if path is None:
                raise FileNotFoundError
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError
            handle = open(path, "rb")  # noqa: SIM115 - closed in finally below
        except (FileNotFoundError, NotADirectoryError, PermissionError, OSError):
            body = b'{"detail":"Not Found"}'
            out.start(404, [(b"content-type", b"application/json")], len(body))
            await out.write(body)
            await out.end()
            return
        try:
            await self._send(out, request, handle, st)
        finally:
            handle.close()

    async def _send(self, out: Any, request: Any, handle: Any, st: os.stat_result) -> None:
        size = st.st_size
        etag = 'W/"' + hashlib.md5(f"{st.st_mtime_ns}-{size}".encode(),
                                   usedforsecurity=False).hexdigest() + '"'
        last_modified = formatdate(st.st_mtime, usegmt=True)
        headers = self.headers
        headers.setdefault("etag", etag)
        headers.setdefault("last-modified", last_modified)
        headers.setdefault("accept-ranges", "bytes")
        status = self.status_code
        if status == 200 and request.method in ("GET", "HEAD"):
            if self._not_modified(request, etag, st.st_mtime):
                raw = [(k, v) for k, v in self.raw_headers
                       if k in (b"etag", b"last-modified", b"cache-control", b"vary")]
                out.start(304, raw)
                await out.end()
                return
            range_header = request.headers.get("range")
            if range_header and self._if_range_ok(request, etag, last_modified):
                ranges = parse_ranges(range_header, size)
                if ranges == "unsatisfiable":
                    raw = [(b"content-range", f"bytes */{size}".encode())]
                    out.start(416, raw, 0)
                    await out.end()
                    return
                if isinstance(ranges, list) and len(ranges) == 1:
                    start, end = ranges[0]
                    headers["content-range"] = f"bytes {start}-{end}/{size}"
                    out.start(206, self.raw_headers, end - start + 1)
                    await out.sendfile(handle, start, end - start + 1)
                    await out.end()
                    return
                if isinstance(ranges, list):
                    await self._multipart(out, handle, ranges, size)
                    return
        out.start(status, self.raw_headers, size)
        await out.sendfile(handle, 0, size)
        await out.end()

    @staticmethod
    def _not_modified(request: Any, etag: str, mtime: float) -> bool:
        inm = request.headers.get("if-none-match")
        if inm is not None:
            tags = [t.strip() for t in inm.split(",")]
            weak = etag[2:] if etag.startswith("W/") else etag
            return "*" in tags or any(t == etag or t.removeprefix("W/") == weak for t in tags)
        ims = request.headers.get("if-modified-since")
        if ims:
            try:
                since = parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
            return int(mtime) <= since
        return False

    @staticmethod
    def _if_range_ok(request: Any, etag: str, last_modified: str) -> bool:
        value = request.headers.get("if-range")
        if value is None:
            return True
        value = value.strip()
        if value.startswith(('"', "W/")):
            return False if value.startswith("W/") else value == etag  # strong compare only
        return value == last_modified

    async def _multipart(self, out: Any, handle: Any, ranges: list[tuple[int, int]],
                         size: int) -> None:
        boundary = uuid.uuid4().hex
        ctype = self.headers.get("content-type", "application/octet-stream")
        parts = []
        length = 0
        for start, end in ranges:
            head = (f"\r\n--{boundary}\r\ncontent-type: {ctype}\r\n"
                    f"content-range: bytes {start}-{end}/{size}\r\n\r\n").encode()
            parts.append((head, start, end))
            length += len(head) + end - start + 1
        tail = f"\r\n--{boundary}--\r\n".encode()
        length += len(tail)
        raw = [(k, v) for k, v in self.raw_headers if k != b"content-type"]
        raw.append((b"content-type", f"multipart/byteranges; boundary={boundary}".encode()))
        out.start(206, raw, length)
        for head, start, end in parts:
            await out.write(head)
            handle.seek(start)
            await out.write(handle.read(end - start + 1))
        await out.write(tail)
        await out.end()
