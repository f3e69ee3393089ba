"""``app.mount``: a real FastAPI app (and raw ASGI apps) under Ember's engine, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import httpx
import pytest
import websockets.sync.client as ws_client
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse

from ember import Ember
from ember.exceptions import ConfigError

GUARD = 10


def _fastapi(events: list[str], stream_closed: threading.Event) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    fa = FastAPI(lifespan=lifespan)

    @fa.get("/items/{item_id}")
    async def item(item_id: int, q: str = "none") -> dict:
        return {"item_id": item_id, "q": q}

    @fa.post("/upload")
    async def upload(request: Request) -> dict:
        size = chunks = 0
        async for chunk in request.stream():
            size += len(chunk)
            chunks += 1
        return {"size": size}

    @fa.get("/stream")
    async def stream(n: int = 3) -> StreamingResponse:
        async def gen() -> Any:
            for i in range(n):
                yield f"line {i}\n"
                await asyncio.sleep(0)
        return StreamingResponse(gen(), media_type="text/plain")

    @fa.get("/scope")
    async def scope(request: Request) -> dict:
        return {"root_path": request.scope["root_path"], "path": request.scope["path"],
                "state": request.state.db, "url_for": str(request.url_for("item", item_id=7)),
                "client": request.client.host}

    @fa.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"echo {text}")

    return fa


@pytest.fixture(scope="module")
def mounted() -> Any:
    from tests.conftest import RunningServer

    events: list[str] = []
    stream_closed = threading.Event()
    app = Ember()

    @app.get("/native")
    async def native() -> str:
        return "ember"

    async def tag(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-ember-mw"] = "1"
        return response

    app.add_middleware(tag)
    fa = _fastapi(events, stream_closed)

    async def watched(scope: dict, receive: Any, send: Any) -> None:
        try:
            await fa(scope, receive, send)
        finally:  # NOTE: the app's call for an endless stream ends once the client leaves
            if scope["type"] == "http" and "n=100000000" in scope["query_string"].decode():
                stream_closed.set()

    app.mount("/legacy", watched)
    server = RunningServer(app)
    yield server.url, events, stream_closed
    server.stop()
    assert events == ["startup", "shutdown"]


def test_fastapi_routes_validation_and_docs(mounted: Any) -> None:
    url, events, _ = mounted
    assert events == ["startup"]
    assert httpx.get(url + "/native").text == "ember"
    r = httpx.get(url + "/legacy/items/5?q=x")
    assert (r.status_code, r.json(), r.headers["x-ember-mw"]) == (
        200, {"item_id": 5, "q": "x"}, "1")
    r = httpx.get(url + "/legacy/items/abc")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "item_id"]
    assert httpx.get(url + "/legacy/nope").status_code == 404
    assert httpx.get(url + "/legacy/docs").status_code == 200
    # the mounted app documents its own paths; Ember's document leaves the mount out
    assert "/items/{item_id}" in httpx.get(url + "/legacy/openapi.json").json()["paths"]
    assert not any(p.startswith("/legacy") for p in httpx.get(url + "/openapi.json")
                   .json()["paths"])


def test_scope_root_path_path_and_lifespan_state(mounted: Any) -> None:
    url, _, _ = mounted
    r = httpx.get(url + "/legacy/scope")
    assert r.json() == {"root_path": "/legacy", "path": "/legacy/scope", "state": "connected",
                        "url_for": url + "/legacy/items/7", "client": "127.0.0.1"}


def test_streaming_request_and_response_bodies(mounted: Any) -> None:
    url, _, _ = mounted

    def body() -> Any:
        for _ in range(64):
            yield b"x" * 8192
    r = httpx.post(url + "/legacy/upload", content=body())  # chunked upload
    assert r.json() == {"size": 64 * 8192}
    with httpx.stream("GET", url + "/legacy/stream?n=5") as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        assert list(r.iter_lines()) == [f"line {i}" for i in range(5)]


def test_client_leaving_a_stream_stops_the_app(mounted: Any) -> None:
    url, _, stream_closed = mounted
    stream_closed.clear()
    with httpx.stream("GET", url + "/legacy/stream?n=100000000") as r:
        next(r.iter_bytes())
    assert stream_closed.wait(GUARD)


def test_websocket(mounted: Any) -> None:
    url, _, _ = mounted
    with ws_client.connect(url.replace("http", "ws") + "/legacy/ws",
                           open_timeout=GUARD) as ws:
        for word in ("a", "b"):
            ws.send(word)
            assert ws.recv(timeout=GUARD) == f"echo {word}"


def _serve_raw(app: Any, asgi: Any, prefix: str = "/raw") -> Any:
    from tests.conftest import RunningServer

    app.mount(prefix, asgi)
    return RunningServer(app)


def test_raw_asgi_app_headers_status_and_errors() -> None:
    async def raw(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")  # NOTE: allowed: lifespan unsupported
        path = scope["path"]
        if path == "/raw/boom":
            raise ValueError("app bug")
        if path == "/raw/silent":
            return
        if path == "/raw/injection":  # a header value that would split the response
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"x-evil", b"a\r\nset-cookie: stolen=1")]})
            await send({"type": "http.response.body", "body": b"x"})
            return
        if path == "/raw/status":
            await send({"type": "http.response.start", "status": 999})
            await send({"type": "http.response.body", "body": b"x"})
            return
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
                                (b"content-length", b"999"), (b"x-path", path.encode())]})
        await send({"type": "http.response.body", "body": b"made"})

    server = _serve_raw(Ember(), raw)
    try:
        r = httpx.get(server.url + "/raw/x")
        assert (r.status_code, r.text, r.headers["x-path"]) == (201, "made", "/raw/x")
        assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert r.headers["content-length"] == "4"  # framing is the server's
        assert httpx.get(server.url + "/raw").headers["x-path"] == "/raw"
        assert httpx.get(server.url + "/raw/boom").status_code == 500
        assert httpx.get(server.url + "/raw/silent").status_code == 500
        r = httpx.get(server.url + "/raw/injection")
        assert r.status_code == 500 and "set-cookie" not in r.headers
        assert httpx.get(server.url + "/raw/status").status_code == 500
        assert httpx.get(server.url + "/rawx").status_code == 404  # not under the prefix
    finally:
        server.stop()


def test_lifespan_startup_failure_stops_the_server() -> None:
    async def failing(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "db unreachable"})

    app = Ember()
    app.mount("/f", failing)
    with pytest.raises(RuntimeError, match="db unreachable"):
        asyncio.run(app.startup())


@pytest.mark.parametrize("prefix", ["", "legacy", "/legacy/", "/a/{x}", None])
def test_bad_prefixes(prefix: Any) -> None:
    with pytest.raises(ConfigError, match="mount prefix"):
        Ember().mount(prefix, _fastapi([], threading.Event()))


def test_bad_apps() -> None:
    with pytest.raises(ConfigError, match="ASGI 3 application"):
        Ember().mount("/x", FastAPI)  # the class, not an app
    with pytest.raises(ConfigError, match="ASGI 3 application"):
        Ember().mount("/x", "module:app")
