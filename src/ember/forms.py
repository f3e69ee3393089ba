"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

``await request.form()`` parses as the body streams in — multipart with our own
incremental parser, file parts spooled to disk past ``spool_max_size`` — with
limits on the number of fields and files and on each part's size.  Malformed
bodies are a 400 that says what is wrong, oversized ones a 413, other content
types a 415.  Hostile file names are neutralised: ``UploadFile.filename`` is a
bare name without directories or control characters (the original is kept in
``raw_filename``).  Temporary files are closed on error and by ``form.close()``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote

from ember.datastructures import Headers
from ember.exceptions import HTTPException

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^\s;,]{1,70}))', re.I)
_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def sanitize_filename(name: str) -> str:
    """A bare, printable file name (no directories, no control characters)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*')
    name = name.strip(" .")
    return name or "upload"


class UploadFile:
    """An uploaded file, spooled to disk past a size."""

    def __init__(self, filename: str, content_type: str, headers: Headers,
                 spool_max_size: int) -> None:
        self.raw_filename = filename
        self.filename = sanitize_filename(filename)
        self.content_type = content_type
        self.headers = headers
        self.file = tempfile.SpooledTemporaryFile(max_size=spool_max_size)  # noqa: SIM115
        self.size = 0

    @property
    def in_memory(self) -> bool:
        """False once the content was spooled to a temporary file on disk."""
        return not getattr(self.file, "_rolled", False)

    async def read(self, size: int = -1) -> bytes:
        """Read from the current position."""
        return self.file.read(size)

    async def seek(self, offset: int) -> None:
        """Move the position."""
        self.file.seek(offset)

    async def write(self, data: bytes) -> None:
        """Append data (used while parsing)."""
        self.file.write(data)
        self.size += len(data)

    async def close(self) -> None:
        """Delete the temporary file."""
        self.file.close()

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size})"


class FormData:
    """Multi-valued form fields: ``get`` (first), ``getall``, ``items``, ``[]``."""

    def __init__(self, items: list[tuple[str, Any]] | None = None) -> None:
        self._items: list[tuple[str, Any]] = list(items or [])

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of ``key``."""
        for k, v in self._items:
            if k == key:
                return v
        return default

    def getall(self, key: str) -> list[Any]:
        """Every value of ``key``."""
        return [v for k, v in self._items if k == key]

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: list[str] = []
        for k, _ in self._items:
            if k not in seen:
                seen.append(k)
        return iter(seen)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, Any]]:
        """All ``(key, value)`` pairs in order."""
        return list(self._items)

    def multi_items(self) -> list[tuple[str, Any]]:
        """Alias of :meth:`items`."""
        return list(self._items)

    async def close(self) -> None:
        """Close every uploaded file."""
        for _, v in self._items:
            if isinstance(v, UploadFile):
                await v.close()

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"


async def parse_form(request: Any, *, max_files: int = 1000, max_fields: int = 1000,
                     max_part_size: int = 1024 * 1024 * 1024, max_field_size: int = 1024 * 1024,
                     spool_max_size: int = 1024 * 1024) -> FormData:
    """Parse the request body as a form (see the module docstring)."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        body = await request.body()
        if len(body) > max_field_size * max(1, max_fields):
            raise HTTPException(413, "form body too large")
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                              max_num_fields=max_fields, errors="strict")
        except UnicodeDecodeError:
            raise HTTPException(400, "form body is not valid UTF-8") from None
        except ValueError:
            raise HTTPException(413, f"too many form fields (limit {max_fields})") from None
        for _, value in pairs:
            if len(value) > max_field_size:
                raise HTTPException(413, f"form field larger than {max_field_size} bytes")
        return FormData(pairs)
    if media == "multipart/form-data":
        m = _BOUNDARY.search(ctype)
        if m is None:
            raise HTTPException(400, "multipart/form-data without a valid boundary parameter")
        boundary = (m.group(1) or m.group(2)).encode("latin-1")
        parser = MultipartParser(boundary, max_files=max_files, max_fields=max_fields,
                                 max_part_size=max_part_size, max_field_size=max_field_size,
                                 spool_max_size=spool_max_size)
        try:
            async for chunk in request.stream():
                await parser.feed(chunk)
            return await parser.finish()
        except BaseException:
            await parser.abort()
            raise
    raise HTTPException(415, f"expected a form body (application/x-www-form-urlencoded or "
                             f"multipart/form-data), got {media or 'no content type'!r}")


class MultipartParser:
    """Incremental multipart/form-data parser (RFC 7578)."""

    def __init__(self, boundary: bytes, *, max_files: int, max_fields: int, max_part_size: int,
                 max_field_size: int, spool_max_size: int) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.buffer = b"\r\n"  # NOTE: the first delimiter has no preceding CRLF
        self.state = "preamble"
        self.items: list[tuple[str, Any]] = []
        self.max_files = max_files
        self.max_fields = max_fields
        self.max_part_size = max_part_size
        self.max_field_size = max_field_size
        self.spool_max_size = spool_max_size
        self.files = 0
        self.fields = 0
        self.current: dict[str, Any] | None = None

    async def feed(self, data: bytes) -> None:
        """Consume more body bytes."""
        self.buffer += data
        while True:
            if self.state == "preamble":
                idx = self.buffer.find(self.delimiter)
                if idx < 0:
                    keep = len(self.delimiter) + 2
                    if len(self.buffer) > 64 * 1024:
                        raise HTTPException(400, "multipart body does not start with the "
                                                 "boundary")
                    self.buffer = self.buffer[-keep:]
                    return
                self.buffer = self.buffer[idx + len(self.delimiter):]
                self.state = "after_delimiter"
            if self.state == "after_delimiter":
                if len(self.buffer) < 2:
                    return
                if self.buffer.startswith(b"--"):
                    self.state = "done"
                    return
                if not self.buffer.startswith(b"\r\n"):
                    # NOTE: transport padding (spaces/tabs) before CRLF is allowed
                    stripped = self.buffer.lstrip(b" \t")
                    if len(stripped) < 2:
                        return
                    if not stripped.startswith(b"\r\n"):
                        raise HTTPException(400, "malformed multipart delimiter line")
                    self.buffer = stripped
                self.buffer = self.buffer[2:]
                self.state = "headers"
            if self.state == "headers":
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > 16 * 1024:
                        raise HTTPException(431, "multipart part headers too large")
                    return
                await self._start_part(self.buffer[:end])
                self.buffer = self.buffer[end + 4:]
                self.state = "body"
            if self.state == "body":
                idx = self.buffer.find(self.delimiter)
                if idx < 0:
                    safe = len(self.buffer) - len(self.delimiter)
                    if safe > 0:
                        await self._part_data(self.buffer[:safe])
                        self.buffer = self.buffer[safe:]
                    return
                await self._part_data(self.buffer[:idx])
                await self._end_part()
                self.buffer = self.buffer[idx + len(self.delimiter):]
                self.state = "after_delimiter"
            if self.state == "done":
                return

    async def _start_part(self, raw: bytes) -> None:
        headers: list[tuple[bytes, bytes]] = []
        for line in raw.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name.strip() or b" " in name.strip():
                raise HTTPException(400, "malformed multipart part header")
            headers.append((name.strip().lower(), value.strip()))
        hdrs = Headers(headers)
        disposition = hdrs.get("content-disposition", "")
        if not disposition.lower().startswith("form-data"):
            raise HTTPException(400, "multipart part without 'Content-Disposition: form-data'")
        params: dict[str, str] = {}
        for m in _PARAM.finditer(disposition):
            key = m.group(1).lower()
            value = m.group(2) if m.group(2) is not None else (m.group(3) or "").strip()
            if m.group(2) is not None:
                # NOTE: browsers send backslashes raw (Windows paths); only \" is an escape
                value = value.replace('\\"', '"')
            params[key] = value
        name = params.get("name")
        if name is None:
            raise HTTPException(400, "multipart part without a field name")
        filename = params.get("filename")
        if "filename*" in params:
            enc = params["filename*"]
            if "''" in enc:
                filename = unquote(enc.split("''", 1)[1], encoding="utf-8", errors="replace")
        if filename is not None:
            self.files += 1
            if self.files > self.max_files:
                raise HTTPException(413, f"too many files (limit {self.max_files})")
            upload = UploadFile(filename, hdrs.get("content-type", "application/octet-stream"),
                                hdrs, self.spool_max_size)
            self.current = {"name": name, "file": upload, "size": 0}
        else:
            self.fields += 1
            if self.fields > self.max_fields:
                raise HTTPException(413, f"too many form fields (limit {self.max_fields})")
            self.current = {"name": name, "data": [], "size": 0}

    async def _part_data(self, data: bytes) -> None:
        cur = self.current
        if cur is None or not data:
            return
        cur["size"] += len(data)
        if "file" in cur:
            if cur["size"] > self.max_part_size:
                raise HTTPException(413, f"uploaded file larger than {self.max_part_size} bytes")
            await cur["file"].write(data)
        else:
            if cur["size"] > self.max_field_size:
                raise HTTPException(413, f"form field larger than {self.max_field_size} bytes")
            cur["data"].append(data)

    async def _end_part(self) -> None:
        cur = self.current
        if cur is None:
            return
        if "file" in cur:
            await cur["file"].seek(0)
            self.items.append((cur["name"], cur["file"]))
        else:
            raw = b"".join(cur["data"])
            try:
                self.items.append((cur["name"], raw.decode("utf-8")))
            except UnicodeDecodeError:
                raise HTTPException(400, f"form field {cur['name']!r} is not valid UTF-8") \
                    from None
        self.current = None

    async def finish(self) -> FormData:
        """The parsed form; 400 when the body ended early."""
        if self.state != "done":
            raise HTTPException(400, "multipart body ended before its closing boundary")
        return FormData(self.items)

    async def abort(self) -> None:
        """Close every temporary file after an error."""
        for _, v in self.items:
            if isinstance(v, UploadFile):
                await v.close()
        if self.current is not None and "file" in self.current:
            await self.current["file"].close()
