"""ASGI 3 interop, both ways.

* :func:`mount` (``app.mount(prefix, asgi_app)``): any ASGI 3 application (a
  FastAPI/Starlette app being migrated, the MCP SDK's app, a metrics app) answers
  every request under ``prefix`` on Ember's engine: HTTP with streamed request and
  response bodies (a bounded queue, so a slow client slows the app down), WebSocket
  (on Ember's WebSocket), and the app's lifespan run with Ember's startup/shutdown.
  ``scope["path"]`` is the full path and ``scope["root_path"]`` the prefix, as the
  ASGI spec says (Starlette's ``Mount`` does the same).
* :class:`ASGIApp` (``app.asgi``): the Ember app as an ASGI 3 callable, for a
  platform that mandates uvicorn, granian or hypercorn.  Routing, middleware,
  injection, errors, streaming and lifespan behave as on Ember's server;
  ``ServerLimits`` that belong to the connection (timeouts, header limits) are the
  ASGI server's job there, and WebSocket routes need Ember's own server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ember.exceptions import ClientDisconnect, ConfigError
from ember.responses import Response, StreamingResponse

logger = logging.getLogger("ember.asgi")

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: framing headers: the server computes them (a mounted app's values are dropped)
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection", b"keep-alive"))
_QUEUE = 16  # response chunks buffered between a mounted app and the connection
_END: Any = object()


def mount(app: Any, prefix: str, asgi_app: Callable[..., Any], *, name: str | None = None,
          websocket_max_size: int = 1 << 20) -> Mount:
    """Serve ``asgi_app`` under ``prefix`` (see the module docstring)."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or "{" in prefix \
            or "}" in prefix or (prefix != "/" and prefix.endswith("/")):
        raise ConfigError(f"mount prefix must be a path like '/legacy' (starting with '/', "
                          f"no trailing '/', no parameters), got {prefix!r}")
    if not callable(asgi_app) or isinstance(asgi_app, type):
        raise ConfigError(f"mount expects an ASGI 3 application instance, got {asgi_app!r}")
    mounted = Mount(prefix.rstrip("/"), asgi_app)
    options = {"max_size": websocket_max_size, "ping_interval": 20, "ping_timeout": 20,
               "compression": True, "send_timeout": 60, "asgi": True}
    label = name or f"mount:{prefix}"

    async def endpoint(request: Any) -> Any:
        return await mounted.handle(request)
    endpoint.__name__ = label
    base = prefix.rstrip("/")
    paths = [base + "/{asgi_path:path}"] + ([base] if base else [])
    for path in paths:
        app._register(path, _METHODS, endpoint, name=label, include_in_schema=False,
                      websocket_options=options)
        # NOTE: the route answers with what the app sent (a WebSocket takes the connection
        # over): called directly, never through the handler fast path or result conversion
        app.routes[-1]._call = mounted.handle
    app.on_startup(mounted.startup)
    app.on_shutdown(mounted.shutdown)
    return mounted


class Mount:
    """One mounted ASGI application: requests, WebSockets and its lifespan."""

    def __init__(self, prefix: str, app: Callable[..., Any]) -> None:
        self.prefix = prefix
        self.app = app
        self.state: dict[str, Any] = {}
        self._lifespan: _Lifespan | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _scope(self, request: Any, kind: str) -> dict[str, Any]:
        client = request.client
        host = (request.headers.get("host") or "").rpartition(":")
        scope: dict[str, Any] = {
            "type": kind, "asgi": dict(_ASGI), "http_version": _version(request),
            "scheme": ("wss" if request.scheme == "https" else "ws") if kind == "websocket"
            else request.scheme,
            "path": request.path, "raw_path": request.raw_path,
            "query_string": request.query_string, "root_path": self.prefix,
            "headers": list(request._raw_headers),
            "client": (client.host, client.port) if client is not None else None,
            "server": (host[0], int(host[2])) if host[2].isdigit() else None,
            "state": dict(self.state), "extensions": {},
        }
        if kind == "http":
            scope["method"] = request.method
        else:
            offered = request.headers.get("sec-websocket-protocol") or ""
            scope["subprotocols"] = [p.strip() for p in offered.split(",") if p.strip()]
        return scope

    async def handle(self, request: Any) -> Any:
        """Run the app for ``request``: a Response (streaming when the app streams)."""
        if request.route is not None and request.route.websocket_options and \
                "websocket" in (request.headers.get("upgrade") or "").lower():
            from ember.websockets import handshake_error

            if handshake_error(request) is None:
                return await self._websocket(request)
        return await self._http(request)

    async def _http(self, request: Any) -> Response:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Response] = loop.create_future()
        queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE)
        gone: asyncio.Future[None] = loop.create_future()
        state = {"start": None, "streaming": False, "gone": gone}
        chunks: Any = None
        body_done = False

        async def receive() -> dict[str, Any]:
            nonlocal body_done, chunks
            if not body_done:
                if chunks is None:
                    chunks = request.stream().__aiter__()
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                except ClientDisconnect:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": chunk, "more_body": True}
            # NOTE: nothing more to read: answered when the client leaves a streamed
            # response (or the request's task is cancelled, which cancels the app)
            await gone
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                if state["start"] is not None:
                    raise RuntimeError("ASGI app sent http.response.start twice")
                state["start"] = message
                return
            if kind != "http.response.body":
                return  # NOTE: extensions we did not offer (trailers, pathsend)
            if state["start"] is None:
                raise RuntimeError("ASGI app sent a body before http.response.start")
            if gone.done():
                raise OSError("client disconnected")  # NOTE: what uvicorn raises too
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if not state["streaming"]:
                if not more:
                    if not ready.done():
                        ready.set_result(_response(state["start"], body))
                    return
                state["streaming"] = True
                ready.set_result(_streaming(state["start"], queue, state, task))
            await queue.put(body)
            if gone.done():
                raise OSError("client disconnected")
            if not more:
                await queue.put(_END)

        task = loop.create_task(self.app(self._scope(request, "http"), receive, send))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        try:
            await asyncio.wait((ready, task), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if ready.done():
            return ready.result()
        exc = task.exception()
        if exc is not None:
            raise exc
        raise RuntimeError("the mounted ASGI app returned without sending a response")

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # NOTE: logged once here; before the response it is also the request's 500
            logger.debug("mounted ASGI app failed", exc_info=task.exception())

    async def _websocket(self, request: Any) -> Any:
        from ember.websockets import WebSocket, WebSocketDisconnect

        options = {k: v for k, v in request.route.websocket_options.items() if k != "asgi"}
        ws = WebSocket(request, **options)
        connected = False

        async def receive() -> dict[str, Any]:
            nonlocal connected
            if not connected:
                connected = True
                return {"type": "websocket.connect"}
            try:
                message = await ws.receive()
            except WebSocketDisconnect as exc:
                return {"type": "websocket.disconnect", "code": exc.code,
                        "reason": exc.reason}
            if isinstance(message, str):
                return {"type": "websocket.receive", "text": message}
            return {"type": "websocket.receive", "bytes": message}

        async def send(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind == "websocket.accept":
                headers = {k.decode("latin-1"): v.decode("latin-1")
                           for k, v in message.get("headers") or ()}
                await ws.accept(message.get("subprotocol"), headers=headers or None)
            elif kind == "websocket.send":
                if ws.state != "open":
                    raise OSError("WebSocket is not open")
                text = message.get("text")
                await ws.send(text if text is not None else bytes(message.get("bytes") or b""))
            elif kind == "websocket.close":
                if ws.state == "open":
                    await ws.close(int(message.get("code", 1000)),
                                   str(message.get("reason") or ""))
                elif ws.state == "connecting":
                    ws.state = "closed"  # NOTE: refused before accept: a 403 below

        try:
            await self.app(self._scope(request, "websocket"), receive, send)
        except (WebSocketDisconnect, OSError):
            pass
        except Exception:
            if ws.state in ("connecting", "closed") and not ws._close_sent:
                raise
            logger.exception("error in mounted ASGI WebSocket app %s", request.path)
            if ws.state == "open":
                ws._fail(1011, "internal error")
        if ws.state in ("connecting", "closed") and ws._proto is None:
            return Response(None, 403)
        if ws.state == "open":
            await ws.close()
        return ws.upgraded  # NOTE: the 101 is logged; nothing more is written

    async def startup(self) -> None:
        """Run the app's lifespan startup (apps without lifespan support are fine)."""
        self._lifespan = _Lifespan(self.app, self.state)
        await self._lifespan.startup()

    async def shutdown(self) -> None:
        """Run the app's lifespan shutdown; cancel its leftover background work."""
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            await lifespan.shutdown()
        for task in list(self._tasks):
            task.cancel()


def _version(request: Any) -> str:
    minor = request.http_minor
    return "2" if minor == 2 else f"1.{minor}"


def _headers(start: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(bytes(k).lower(), bytes(v)) for k, v in start.get("headers") or ()
            if bytes(k).lower() not in _FRAMING]


def _apply(response: Response, start: dict[str, Any]) -> Response:
    headers = response.headers
    for name, value in _headers(start):
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return response


def _response(start: dict[str, Any], body: bytes) -> Response:
    return _apply(Response(body, int(start.get("status", 200))), start)


def _streaming(start: dict[str, Any], queue: asyncio.Queue[Any], state: dict[str, Any],
               task: asyncio.Task[Any]) -> Response:
    async def chunks() -> Any:
        ended = False
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait((getter, task), return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    exc = None if task.cancelled() else task.exception()
                    if queue.empty():
                        raise exc or RuntimeError("the mounted ASGI app ended its response "
                                                  "without more_body=False")
                    continue
                chunk = getter.result()
                if chunk is _END:
                    ended = True
                    return
                yield chunk
        finally:
            if not ended:
                # NOTE: the client left or the stream failed: the app's next send raises
                # OSError and its receive() says http.disconnect (as under uvicorn); a
                # send blocked on the full queue is woken by draining it
                gone = state["gone"]
                if not gone.done():
                    gone.set_result(None)
                while not queue.empty():
                    queue.get_nowait()
    return _apply(StreamingResponse(chunks(), int(start.get("status", 200))), start)


class _Lifespan:
    """The ASGI lifespan protocol for one mounted app."""

    def __init__(self, app: Callable[..., Any], state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[Any] | None = None
        self.supported = True

    async def _wait(self) -> dict[str, Any] | None:
        assert self.task is not None
        getter = asyncio.ensure_future(self.outbox.get())
        await asyncio.wait((getter, self.task), return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": self.state}
        self.task = asyncio.get_running_loop().create_task(
            self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self._wait()
        if reply is None:  # NOTE: the app raised (or returned): it has no lifespan support
            self.supported = False
            exc = None if self.task.cancelled() else self.task.exception()
            logger.debug("mounted app does not support lifespan (%r)", exc)
            return
        if reply.get("type") == "lifespan.startup.failed":
            raise RuntimeError(f"mounted ASGI app failed to start: {reply.get('message', '')}")

    async def shutdown(self) -> None:
        if not self.supported or self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        reply = await self._wait()
        if reply is not None and reply.get("type") == "lifespan.shutdown.failed":
            logger.error("mounted ASGI app failed to shut down: %s", reply.get("message", ""))
