"""A test client that drives the app through the real parser and protocol.

Each request travels over a socket pair into the very ``HttpProtocol`` the
server uses, so framing, limits, keep-alive and streaming behave exactly as
in production, with no network and no port.  The client is synchronous by
default (a private event loop runs in a background thread) and asynchronous
inside ``async with app.test_client() as client`` (every method then returns
an awaitable and runs on the caller's loop)::

    with app.test_client() as client:
        assert client.get("/hello").text == "Hello, World!"

    async with app.test_client() as client:
        r = await client.post("/items", json={"name": "x"})
        async with client.stream("GET", "/events") as r:
            async for event in r.aiter_events():
                ...
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from ember._sse_decode import SSEDecoder, SSEEvent
from ember.datastructures import Headers

_EOF = b""


class WebSocketRejected(Exception):
    """The server answered a WebSocket handshake with an HTTP response."""

    def __init__(self, response: TestResponse) -> None:
        super().__init__(f"WebSocket handshake refused: HTTP {response.status_code}")
        self.response = response


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
        agen = self.aiter_lines()
        try:
            while True:
                try:
                    yield self._client._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._client._run(agen.aclose())
            self.close()

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Server-sent events (sync)."""
        agen = self.aiter_events()
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


class _StreamContext:
    """``with client.stream(...) as r`` / ``async with client.stream(...) as r``."""

    def __init__(self, client: TestClient, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self._client = client
        self._args = args
        self._kwargs = kwargs
        self._response: TestResponse | None = None

    def __enter__(self) -> TestResponse:
        self._response = self._client._run(self._client._send(*self._args, **self._kwargs))
        return self._response

    def __exit__(self, *exc: Any) -> None:
        if self._response is not None:
            self._response.close()

    async def __aenter__(self) -> TestResponse:
        self._response = await self._client._send(*self._args, **self._kwargs)
        return self._response

    async def __aexit__(self, *exc: Any) -> None:
        if self._response is not None:
            await self._response.aclose()


class TestClient:
    """Drive an app through the real protocol in-process (see the module docstring)."""

    __test__ = False

    def __init__(self, app: Any, base_url: str = "http://testserver",
                 headers: Mapping[str, str] | None = None,
                 cookies: Mapping[str, str] | None = None,
                 client_address: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] = dict(cookies or {})
        self.client_address = client_address
        self._mode = "idle"  # idle | sync | async
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state: Any = None

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> TestClient:
        self._start_thread()
        self._run(self.app.startup())
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._run(self.app.shutdown())
        finally:
            self._stop_thread()

    async def __aenter__(self) -> TestClient:
        self._mode = "async"
        await self.app.startup()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.app.shutdown()
        finally:
            self._mode = "idle"

    def _start_thread(self) -> None:
        if self._thread is not None:
            return
        from ember.server.worker import new_event_loop

        loop = new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="ember-testclient", daemon=True)
        self._thread.start()
        ready.wait()
        self._mode = "sync"

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None
        self._mode = "idle"

    def close(self) -> None:
        """Stop the background loop of a client used without ``with``."""
        self._stop_thread()

    def _run(self, coro: Any) -> Any:
        if self._mode == "async":
            raise RuntimeError("inside 'async with', await the client's methods")
        if self._thread is None:
            self._start_thread()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # -- requests ---------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send a request and read the whole response (awaitable inside ``async with``)."""
        coro = self._complete(method, url, **kwargs)
        if self._mode == "async":
            return coro
        return self._run(coro)

    def stream(self, method: str, url: str, **kwargs: Any) -> _StreamContext:
        """Send a request; the body is read as you iterate (``with``/``async with``)."""
        return _StreamContext(self, (method, url), kwargs)

    def get(self, url: str, **kw: Any) -> Any:
        """GET ``url``."""
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> Any:
        """HEAD ``url``."""
        return self.request("HEAD", url, **kw)

    def options(self, url: str, **kw: Any) -> Any:
        """OPTIONS ``url``."""
        return self.request("OPTIONS", url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        """POST ``url`` (``json=``, ``data=``, ``content=``, ``files=``)."""
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        """PUT ``url``."""
        return self.request("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        """PATCH ``url``."""
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        """DELETE ``url``."""
        return self.request("DELETE", url, **kw)

    def websocket_connect(self, url: str, subprotocols: list[str] | None = None,
                          headers: Mapping[str, str] | None = None) -> _WebSocketContext:
        """Open a WebSocket: ``with client.websocket_connect("/ws") as ws: ws.send_text(..)``.

        A refused handshake raises :class:`WebSocketRejected` with the HTTP response.
        """
        return _WebSocketContext(self, url, subprotocols, headers)

    async def _ws_connect(self, url: str, subprotocols: list[str] | None,
                          headers: Mapping[str, str] | None) -> TestWebSocket:
        import base64
        import os

        from ember.websockets import accept_key

        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13",
                "sec-websocket-key": key}
        if subprotocols:
            hdrs["sec-websocket-protocol"] = ", ".join(subprotocols)
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        response = await self._send("GET", url, headers=hdrs)
        if response.status_code != 101:
            await response.aread()
            raise WebSocketRejected(response)
        if response.headers.get("sec-websocket-accept") != accept_key(key):
            raise WebSocketRejected(response)
        return TestWebSocket(self, response._reader, response._writer,
                             response.headers.get("sec-websocket-protocol"), response.headers)

    async def _complete(self, method: str, url: str, **kwargs: Any) -> TestResponse:
        response = await self._send(method, url, **kwargs)
        await response.aread()
        return response

    async def _send(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                    headers: Mapping[str, str] | None = None, json: Any = None,
                    data: Any = None, content: bytes | str | None = None,
                    files: Mapping[str, Any] | None = None,
                    cookies: Mapping[str, str] | None = None) -> TestResponse:
        from ember.http.protocol import HttpProtocol, ServerState

        loop = asyncio.get_running_loop()
        if self._state is None:
            self._state = ServerState()
        head, body = self._encode(method, url, params, headers, json, data, content, files,
                                  cookies)
        ssock, csock = socket.socketpair()
        app, state = self.app, self._state
        _transport, proto = await loop.connect_accepted_socket(
            lambda: HttpProtocol(app, state, app.server_limits, urlsplit(self.base_url).scheme
                                 or "http"),
            ssock,
        )
        proto._peer = self.client_address
        # NOTE: the request goes out through a duplicate of the socket, so a server that
        # answers early (413, 415, 401, ...) and closes makes only this write fail with
        # EPIPE; the answer is then read as a real client (httpx, curl) would read it.
        wsock = csock.dup()
        wsock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=csock)
        try:
            await loop.sock_sendall(wsock, head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            wsock.close()
        response = await self._read_head(reader, writer, method)
        for name, value in response.cookies.items():
            self.cookies[name] = value
        return response

    def _encode(self, method: str, url: str, params: Any, headers: Any, json: Any, data: Any,
                content: Any, files: Any, cookies: Any) -> tuple[bytes, bytes]:
        parts = urlsplit(url)
        if parts.scheme and not url.startswith(self.base_url):
            host = parts.netloc
        else:
            host = urlsplit(self.base_url).netloc
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target += "?" + query
        hdrs: dict[str, str] = {"host": host, "user-agent": "ember-testclient"}
        hdrs.update({k.lower(): v for k, v in self.headers.items()})
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("content-type", "application/json")
        elif files is not None:
            body, ctype = _multipart(data or {}, files)
            hdrs["content-type"] = ctype
        elif isinstance(data, Mapping):
            body = urlencode(data, doseq=True).encode()
            hdrs.setdefault("content-type", "application/x-www-form-urlencoded")
        elif data is not None or content is not None:
            raw = content if content is not None else data
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
        jar = {**self.cookies, **(cookies or {})}
        if jar:
            hdrs["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if headers:
            hdrs.update({k.lower(): v for k, v in headers.items()})
        if body or method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("content-length", str(len(body)))
        lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body

    async def _read_head(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         method: str) -> TestResponse:
        while True:
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection without a response")
            version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
            code_text, _, reason = rest.partition(" ")
            code = int(code_text)
            raw: list[tuple[bytes, bytes]] = []
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                raw.append((name.strip().lower(), value.strip()))
            if code >= 200 or code == 101:
                break  # NOTE: skip 100 Continue and other interim responses
        headers = Headers(raw)
        if method == "HEAD" or code < 200 or code in (204, 304):
            framing: tuple[str, int] = ("none", 0)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            framing = ("chunked", 0)
        elif headers.get("content-length") is not None:
            framing = ("length", int(headers.get("content-length")))
        else:
            framing = ("close", 0)
        return TestResponse(code, reason, version, raw, self, reader, writer, framing, method)


class TestWebSocket:
    """The client side of a WebSocket opened by ``client.websocket_connect(path)``."""

    __test__ = False

    def __init__(self, client: TestClient, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, subprotocol: str | None,
                 headers: Headers) -> None:
        self._client = client
        self._reader = reader
        self._writer = writer
        self.subprotocol = subprotocol
        self.headers = headers
        self.close_code: int | None = None
        self.close_reason = ""

    # -- frames ------------------------------------------------------------------

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        import os
        import struct

        from ember.websockets import _mask

        key = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self._writer.write(head + key + _mask(payload, key))
        await self._writer.drain()

    async def _read_frame(self) -> tuple[int, bool, bytes]:
        import struct

        b0, b1 = await self._reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self._reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self._reader.readexactly(8))[0]
        return b0 & 0x0F, bool(b0 & 0x80), await self._reader.readexactly(n)

    async def areceive(self) -> str | bytes:
        """The next message; WebSocketDisconnect when the server closed."""
        import struct

        from ember.websockets import WebSocketDisconnect

        parts: list[bytes] = []
        kind = None
        while True:
            try:
                opcode, fin, payload = await self._read_frame()
            except (asyncio.IncompleteReadError, ConnectionError):
                raise WebSocketDisconnect(self.close_code or 1006) from None
            if opcode == 8:
                if len(payload) >= 2:
                    self.close_code = struct.unpack("!H", payload[:2])[0]
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                else:
                    self.close_code = 1005
                try:
                    await self._send_frame(8, payload[:2])
                except (ConnectionError, OSError):
                    pass
                raise WebSocketDisconnect(self.close_code, self.close_reason)
            if opcode == 9:
                await self._send_frame(10, payload)
                continue
            if opcode == 10:
                continue
            if opcode in (1, 2):
                kind = opcode
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return data.decode("utf-8") if kind == 1 else data

    async def asend(self, data: str | bytes) -> None:
        """Send text (``str``) or binary (``bytes``)."""
        if isinstance(data, str):
            await self._send_frame(1, data.encode("utf-8"))
        else:
            await self._send_frame(2, bytes(data))

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (close frame, then the socket)."""
        import struct

        if not self._writer.is_closing():
            try:
                await self._send_frame(8, struct.pack("!H", code) + reason.encode())
            except (ConnectionError, OSError):
                pass
            self._writer.close()

    # -- sync / async surface -------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        return coro if self._client._mode == "async" else self._client._run(coro)

    def send_text(self, data: str) -> Any:
        """Send a text message."""
        return self._call(self.asend(data))

    def send_bytes(self, data: bytes) -> Any:
        """Send a binary message."""
        return self._call(self.asend(bytes(data)))

    def send_json(self, data: Any) -> Any:
        """Send JSON as text."""
        return self._call(self.asend(orjson.dumps(data).decode()))

    def receive(self) -> Any:
        """The next message (str or bytes)."""
        return self._call(self.areceive())

    def receive_text(self) -> Any:
        """The next message as text."""
        return self._call(self.areceive())

    def receive_bytes(self) -> Any:
        """The next message as bytes."""
        return self._call(self.areceive())

    def receive_json(self) -> Any:
        """The next message parsed as JSON."""
        if self._client._mode == "async":
            async def parse() -> Any:
                return orjson.loads(await self.areceive())
            return parse()
        return orjson.loads(self._client._run(self.areceive()))

    def close(self, code: int = 1000, reason: str = "") -> Any:
        """Close the WebSocket."""
        return self._call(self.aclose(code, reason))

    def __enter__(self) -> TestWebSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> TestWebSocket:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class _WebSocketContext:
    def __init__(self, client: TestClient, url: str, subprotocols: list[str] | None,
                 headers: Mapping[str, str] | None) -> None:
        self._client = client
        self._args = (url, subprotocols, headers)
        self._ws: TestWebSocket | None = None

    def __enter__(self) -> TestWebSocket:
        self._ws = self._client._run(self._client._ws_connect(*self._args))
        return self._ws

    def __exit__(self, *exc: Any) -> None:
        if self._ws is not None:
            self._ws.close()

    async def __aenter__(self) -> TestWebSocket:
        self._ws = await self._client._ws_connect(*self._args)
        return self._ws

    async def __aexit__(self, *exc: Any) -> None:
        if self._ws is not None:
            await self._ws.aclose()


def _multipart(data: Mapping[str, Any], files: Any) -> tuple[bytes, str]:
    """``files``: ``{name: spec}`` or, as in httpx, ``[(name, spec), ...]`` (one name, many files)."""
    boundary = uuid.uuid4().hex
    out = []
    for name, value in data.items():
        out.append(f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"\r\n\r\n'
                   .encode() + str(value).encode() + b"\r\n")
    for name, spec in (files.items() if isinstance(files, Mapping) else files):
        if isinstance(spec, tuple):
            filename, payload, *rest = spec
            ctype = rest[0] if rest else "application/octet-stream"
        else:
            filename, payload, ctype = name, spec, "application/octet-stream"
        if hasattr(payload, "read"):
            payload = payload.read()
        if isinstance(payload, str):
            payload = payload.encode()
        out.append(
            f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\ncontent-type: {ctype}\r\n\r\n'.encode()
            + payload + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class LiveServer:
    """A real server for ``app`` on a free loopback port, in a background thread.

    For clients that need a URL (the OpenAI SDK, an MCP client, a browser)::

        with LiveServer(app) as server:
            OpenAI(base_url=server.url + "/v1", api_key=...)

    ``url`` is ``http://127.0.0.1:PORT``.  Leaving the block stops the server
    gracefully (in-flight requests finish).  Raises ``RuntimeError`` if it does not
    start within ``timeout`` seconds, or the error that stopped it from starting.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 10.0, **config: Any) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.timeout = timeout
        self.config = config
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> LiveServer:
        from ember.server.config import ServerConfig
        from ember.server.sockets import bind

        config = ServerConfig(host=self.host, port=self.port,
                              limits=self.config.pop("limits", self.app.server_limits),
                              **self.config)
        sock = bind(config)
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        ready = threading.Event()

        def on_listen(worker: Any, host: str, port: int) -> None:
            self._worker = worker
            ready.set()

        def run() -> None:
            from ember.server.worker import new_event_loop, serve_forever

            self._loop = new_event_loop()
            try:
                self._loop.run_until_complete(serve_forever(self.app, config, sock))
            except BaseException as exc:  # NOTE: handed to __enter__, which raises it
                self._error = exc
                ready.set()
            finally:
                self._loop.close()
                sock.close()

        config.on_listen = on_listen
        self._thread = threading.Thread(target=run, name="ember-live-server", daemon=True)
        self._thread.start()
        if not ready.wait(self.timeout):
            raise RuntimeError(f"LiveServer did not start within {self.timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._thread is None:
            return
        if self._worker is not None and self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._worker.stop)
        self._thread.join(30)
        self._thread = None
