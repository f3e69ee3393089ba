"""The :class:`TestResponse` a test client gives: status, headers, body read whole or
as it arrives (bytes, lines, SSE events), sync or async."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ember._sse_decode import SSEDecoder, SSEEvent
from ember.datastructures import Headers

if TYPE_CHECKING:
    from ember.testing._client import TestClient

_EOF = b""


class TestResponse:
    """A response as the client saw it on the wire."""

    __test__ = False  # not a pytest test class

    def __init__(self, status_code: int, reason: str, http_version: str,
                 raw_headers: list[tuple[bytes, bytes]], client: TestClient,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 framing: tuple[str, int], request_method: str) -> None:
        self.status_code = status_code
        self.reason_phrase = reason
        self.http_version = http_version
        self.headers = Headers(raw_headers)
        self.raw_headers = raw_headers
        self.request_method = request_method
        self._client = client
        self._reader = reader
        self._writer = writer
        self._framing = framing
        self._content: bytes | None = None
        self._chunk_left = 0
        self._done = framing[0] == "none"

    # -- body, read incrementally -------------------------------------------------

    async def _next_chunk(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        if self._done:
            return _EOF
        kind, remaining = self._framing
        reader = self._reader
        if kind == "length":
            if remaining <= 0:
                self._done = True
                return _EOF
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionError(f"connection closed with {remaining} body bytes missing")
            self._framing = (kind, remaining - len(data))
            return data
        if kind == "close":
            data = await reader.read(65536)
            if not data:
                self._done = True
            return data
        # chunked
        line = await reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed inside chunked framing")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass  # trailers
            self._done = True
            return _EOF
        data = await reader.readexactly(size + 2)
        return data[:-2]

    async def aread(self) -> bytes:
        """The whole body (cached)."""
        if self._content is None:
            parts = []
            while True:
                chunk = await self._next_chunk()
                if not chunk:
                    break
                parts.append(chunk)
            self._content = b"".join(parts)
            await self.aclose()
        return self._content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive."""
        try:
            while True:
                chunk = await self._next_chunk()
                if not chunk:
                    break
                yield chunk
        finally:
            await self.aclose()

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Decoded lines as they arrive (without line endings)."""
        buf = b""
        async for chunk in self.aiter_bytes():
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.rstrip(b"\r").decode("utf-8")
        if buf:
            yield buf.decode("utf-8")

    async def aiter_events(self) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events as dicts: ``event``, ``data``, ``id``, ``retry`` (comments dropped)."""
        decoder = SSEDecoder(blocks=True)
        async for chunk in self.aiter_bytes():
            for event in decoder.feed(chunk):
                yield _event_dict(event)

    async def aclose(self) -> None:
        """Close the connection (early: the server sees a disconnect)."""
        if not self._writer.is_closing():
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    # -- sync twins -----------------------------------------------------------------

    def read(self) -> bytes:
        """The whole body (sync)."""
        return self._client._run(self.aread())

    def iter_bytes(self) -> Iterator[bytes]:
        """Body chunks as they arrive (sync)."""
        try:
            while True:
                chunk = self._client._run(self._next_chunk())
                if not chunk:
                    break
                yield chunk
        finally:
            self.close()

    def iter_lines(self) -> Iterator[str]:
        """Decoded lines (sync)."""
        return self._sync(self.aiter_lines())

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Server-sent events (sync)."""
        return self._sync(self.aiter_events())

    def _sync(self, agen: Any) -> Iterator[Any]:
        """Drive an async iterator of this response from sync code; closes it at the end."""
        try:
            while True:
                try:
                    yield self._client._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._client._run(agen.aclose())
            self.close()

    def close(self) -> None:
        """Close the connection."""
        self._client._run(self.aclose())

    @property
    def content(self) -> bytes:
        """The body; read it first with ``read()`` when streaming."""
        if self._content is None:
            raise RuntimeError("the body was not read yet; call read() / await aread()")
        return self._content

    @property
    def text(self) -> str:
        """The body decoded (charset from Content-Type, else UTF-8)."""
        ctype = self.headers.get("content-type", "")
        charset = "utf-8"
        if "charset=" in ctype:
            charset = ctype.split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (integers of any size stay exact)."""
        from ember._json import loads

        return loads(self.content)

    def events(self) -> list[dict[str, Any]]:
        """All server-sent events of a fully read body."""
        return _sync_events(self.content)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies set by this response."""
        out = {}
        for value in self.headers.getall("set-cookie"):
            pair = value.split(";", 1)[0]
            if "=" in pair:
                k, v = pair.split("=", 1)
                out[k.strip()] = v.strip().strip('"')
        return out

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code}]>"


def _event_dict(event: SSEEvent) -> dict[str, Any]:
    """The test client's view of one event: ``id`` and ``retry`` only when its block set them."""
    out: dict[str, Any] = {"event": event.event}
    if event.id is not None:
        out["id"] = event.id
    if event.retry is not None:
        out["retry"] = event.retry
    out["data"] = event.data
    return out


def _sync_events(body: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder(blocks=True)
    # NOTE: a fully read body: an unterminated last event is shown too (flush)
    return [_event_dict(e) for e in decoder.feed(body) + decoder.flush()]



__all__ = ["TestResponse"]
