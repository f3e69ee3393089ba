"""``app.asgi``: an Ember app as an ASGI 3 application (uvicorn, granian, hypercorn).

Each ASGI ``http`` call becomes an Ember :class:`~ember.requests.Request` that goes
through the same ``resolve``/``dispatch`` interface a connection uses
(:meth:`ember.app.Ember._connection_interface`): routing, middleware, injection,
dependencies, error handlers, caches and streaming behave as on Ember's server.
The body is fed from ``receive()`` as it arrives, bounded by ``max_body_size``
(413); a client that leaves (``http.disconnect``) cancels the handler.  ``lifespan``
runs the app's startup and shutdown.

What the ASGI server owns instead of Ember: the socket, HTTP parsing and framing,
keep-alive and header/URL limits and timeouts, TLS, HTTP/2, and the access log.
WebSocket routes need Ember's own server (the handshake is refused with 403 here).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ember.http.errors import ERROR_CONTENT_TYPE, error_body

logger = logging.getLogger("ember.asgi")


class ASGIApp:
    """The ASGI 3 callable of an :class:`~ember.app.Ember` app (``app.asgi``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # NOTE: Ember's WebSocket runs on its own protocol; say so instead of hanging
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008,
                        "reason": "WebSocket routes need Ember's own server"})
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                try:
                    await self.app.startup()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                try:
                    await self.app.shutdown()
                except Exception as exc:
                    logger.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from ember.http.cycle import Cycle
        from ember.requests import Request

        app = self.app
        if not app._started:
            # NOTE: a server run without lifespan ("--lifespan off"): start on first use
            await app.startup()
        path = scope.get("raw_path") or scope["path"].encode("utf-8")
        root = (scope.get("root_path") or "").encode("utf-8")
        if root and path.startswith(root):
            path = path[len(root):] or b"/"
        query = scope.get("query_string") or b""
        target = path + b"?" + query if query else path
        version = scope.get("http_version", "1.1")
        minor = 2 if version == "2" else 0 if version == "1.0" else 1
        client = scope.get("client")
        peer = (client[0], client[1]) if client else None
        headers = [(bytes(k).lower(), bytes(v)) for k, v in scope.get("headers") or ()]
        # NOTE: the body is fed through the request's cycle, as every transport feeds it
        # (ember.http.sink, step 2): feed / finish / fail_body / lost
        cycle = Cycle()
        request = Request(scope["method"], target, headers, minor, None, peer,
                          scope.get("scheme", "http"), cycle)
        route = app._resolve(request)
        limit = app.server_limits.max_body_size
        if route is not None and route.max_body_size is not None:
            limit = route.max_body_size
        declared = request.headers.get("content-length")
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, f"request body exceeds {limit} bytes")
            return
        handler = asyncio.ensure_future(app._handle(request))
        reader = asyncio.ensure_future(_read_body(cycle, receive, limit, handler))
        try:
            response = await handler
        except asyncio.CancelledError:
            reader.cancel()
            if not handler.cancelled():
                raise
            return  # the client left: nobody to answer
        except Exception:  # NOTE: _handle turns errors into responses; this is a bug guard
            logger.exception("error answering %s %s", request.method, request.path)
            reader.cancel()
            await _send_error(send, 500, "Internal Server Error")
            return
        try:
            await _send_response(response, request, send)
        finally:
            reader.cancel()
        background = getattr(response, "background", None)
        if background is not None:
            result = background()
            if asyncio.iscoroutine(result):
                await result


async def _read_body(cycle: Any, receive: Any, limit: int | None,
                     handler: asyncio.Future[Any]) -> None:
    """Feed the request's ``cycle`` from ``receive()``; then watch for the client leaving."""
    received = 0
    body_open = True
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            if body_open:
                cycle.lost()
            handler.cancel()
            return
        if kind != "http.request" or not body_open:
            continue
        chunk = message.get("body") or b""
        received += len(chunk)
        if limit is not None and received > limit:
            cycle.limit = limit
            cycle.fail_body(413, f"request body exceeds {limit} bytes")
            body_open = False
            continue
        if chunk:
            cycle.feed(bytes(chunk))
        if not message.get("more_body", False):
            cycle.finish()
            body_open = False


async def _send_error(send: Any, status: int, text: str) -> None:
    """``{"detail": text}``: the shape of every error Ember makes itself."""
    body = error_body(text)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ERROR_CONTENT_TYPE),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _body_allowed(status: int) -> bool:
    return status >= 200 and status not in (204, 304)


async def _send_response(response: Any, request: Any, send: Any) -> None:
    if getattr(response, "status_code", 0) == 101:  # a WebSocket 'response': never here
        await _send_error(send, 500, "Internal Server Error")
        return
    if response.streaming:
        await response.stream_to(_Writer(send, request))
        return
    body = response.body
    status = response.status_code
    headers = list(response.raw_headers)
    if _body_allowed(status):
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    head_only = request.method == "HEAD" or not _body_allowed(status)
    await send({"type": "http.response.body", "body": b"" if head_only else body})


class _Writer:
    """The BodyWriter a streaming response writes to (as Ember's own connections)."""

    def __init__(self, send: Any, request: Any) -> None:
        self._send = send
        self._request = request
        self._head_only = request.method == "HEAD"
        self.started = False
        self.status = 0
        self.sent = 0
        self.closed = False

    @property
    def request(self) -> Any:
        """The request this body answers."""
        return self._request

    def start(self, status_code: int, raw_headers: list[Any], content_length: int = -1) -> None:
        """Queue the response head (sent with the first body bytes)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status_code
        headers = list(raw_headers)
        if content_length >= 0 and _body_allowed(status_code):
            headers.append((b"content-length", str(content_length).encode()))
        if not _body_allowed(status_code):
            self._head_only = True
        self._head = {"type": "http.response.start", "status": status_code,
                      "headers": headers}

    async def _flush_head(self) -> None:
        head = getattr(self, "_head", None)
        if head is not None:
            self._head = None
            await self._send(head)

    async def write(self, data: bytes) -> None:
        """Send body bytes."""
        await self._flush_head()
        if self._head_only or not data:
            return
        self.sent += len(data)
        try:
            await self._send({"type": "http.response.body", "body": bytes(data),
                              "more_body": True})
        except OSError as exc:
            from ember.exceptions import ClientDisconnect

            self.closed = True
            raise ClientDisconnect("client disconnected") from exc

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        """Send part of a file, read in pieces."""
        loop = asyncio.get_running_loop()
        file.seek(offset)
        remaining = count
        while remaining > 0:
            data = await loop.run_in_executor(None, file.read, min(remaining, 256 * 1024))
            if not data:
                break
            remaining -= len(data)
            await self.write(data)

    async def end(self) -> None:
        """End the body."""
        await self._flush_head()
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})
