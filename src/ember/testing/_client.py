"""The in-process :class:`TestClient`: requests over a socket pair into the real protocol."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from ember.datastructures import Headers
from ember.testing._response import TestResponse
from ember.testing._websocket import _WebSocketContext


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



__all__ = ["TestClient"]
