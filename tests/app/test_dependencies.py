"""``Depends``: callables, generators, sub-dependencies, caching, overrides — over real sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from typing import Annotated, Any

import httpx
import pytest

from ember import (
    Blueprint,
    Depends,
    Ember,
    Header,
    HTTPException,
    Query,
    Request,
    StreamingResponse,
)
from ember.exceptions import ConfigError

GUARD = 10  # seconds: a hang guard, never a timing claim


def _wait(event: threading.Event) -> None:
    assert event.wait(GUARD), "hang guard"


def test_callables_subdependencies_and_cache(serve: Any) -> None:
    calls: list[str] = []
    app = Ember()

    async def settings() -> dict[str, str]:
        calls.append("settings")
        return {"env": "test"}

    def token(x_token: str = Header()) -> str:  # sync: runs in the thread pool
        calls.append("token")
        return x_token

    async def user(tok: str = Depends(token), cfg: dict = Depends(settings)) -> dict:
        calls.append("user")
        return {"name": tok.upper(), "env": cfg["env"]}

    class Pager:  # a class: its __init__ parameters are injected
        def __init__(self, page: int = Query(1, ge=1), size: int = 10) -> None:
            self.page, self.size = page, size

    async def fresh() -> int:
        calls.append("fresh")
        return len(calls)

    @app.get("/me")
    async def me(u: Annotated[dict, Depends(user)], cfg: dict = Depends(settings),
                 pager: Pager = Depends(), a: int = Depends(fresh, use_cache=False),
                 b: int = Depends(fresh, use_cache=False)) -> dict:
        return {"user": u, "env": cfg["env"], "page": pager.page, "size": pager.size,
                "fresh_differs": a != b}

    url = serve(app)
    r = httpx.get(url + "/me?page=2&size=5", headers={"x-token": "ada"})
    assert r.status_code == 200, r.text
    assert r.json() == {"user": {"name": "ADA", "env": "test"}, "env": "test", "page": 2,
                        "size": 5, "fresh_differs": True}
    # settings once per request (cached), fresh twice (use_cache=False)
    assert sorted(calls) == ["fresh", "fresh", "settings", "token", "user"]
    calls.clear()
    r = httpx.get(url + "/me?page=0")
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("header", "x-token"),
                                                             ("query", "page")}


def test_generator_exit_code_runs_after_the_response_is_sent(serve: Any) -> None:
    app = Ember()
    log: list[str] = []
    client_has_response = threading.Event()
    closed = threading.Event()

    async def resource() -> Any:
        log.append("open")
        try:
            yield "conn"
        finally:
            # NOTE: waits for the client to hold the full response: if the exit code ran
            # before sending, the client would never get it and the guard would trip
            seen = await asyncio.get_running_loop().run_in_executor(
                None, client_has_response.wait, GUARD)
            log.append(f"close after response={seen}")
            closed.set()

    def sync_resource() -> Any:
        log.append("sync open")
        yield "sync"
        log.append("sync close")

    @app.get("/r")
    async def handler(conn: str = Depends(resource), s: str = Depends(sync_resource)) -> dict:
        return {"conn": conn, "s": s}

    url = serve(app)
    r = httpx.get(url + "/r", timeout=GUARD)
    assert r.json() == {"conn": "conn", "s": "sync"}
    client_has_response.set()
    _wait(closed)
    assert log[:2] == ["open", "sync open"]
    # exit code runs in reverse order of entry
    assert log[2:] == ["sync close", "close after response=True"]


def test_handler_exception_is_thrown_into_the_generator(serve: Any) -> None:
    app = Ember()
    seen: list[str] = []

    async def transaction() -> Any:
        try:
            yield "tx"
        except ValueError as exc:
            seen.append(f"rollback: {exc}")
            raise HTTPException(409, "conflict, rolled back") from exc
        except LookupError:
            seen.append("swallowed")  # NOTE: not re-raised: the handler still failed
        else:
            seen.append("commit")

    @app.get("/ok")
    async def ok(tx: str = Depends(transaction)) -> str:
        return tx

    @app.get("/conflict")
    async def conflict(tx: str = Depends(transaction)) -> str:
        raise ValueError("duplicate")

    @app.get("/lookup")
    def lookup(tx: str = Depends(transaction)) -> str:  # a def handler in the pool
        raise KeyError("k")

    url = serve(app)
    assert httpx.get(url + "/ok").text == "tx"
    r = httpx.get(url + "/conflict")
    assert (r.status_code, r.json()) == (409, {"detail": "conflict, rolled back"})
    assert httpx.get(url + "/lookup").status_code == 500
    assert seen == ["commit", "rollback: duplicate", "swallowed"]


def test_exit_code_runs_when_the_client_disconnects(serve: Any) -> None:
    app = Ember()
    entered = threading.Event()
    closed = threading.Event()
    outcome: list[str] = []

    async def resource() -> Any:
        try:
            yield 1
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise
        finally:
            closed.set()

    @app.get("/slow")
    async def slow(r: int = Depends(resource)) -> str:
        entered.set()
        await asyncio.sleep(GUARD * 3)
        return "never"

    url = serve(app)
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        _wait(entered)
    _wait(closed)
    assert outcome == ["CancelledError"]


def test_streaming_response_exit_code_after_the_stream(serve: Any) -> None:
    app = Ember()
    log: list[str] = []
    closed = threading.Event()

    async def resource() -> Any:
        log.append("open")
        yield "r"
        log.append("close")
        closed.set()

    @app.get("/stream")
    async def stream(r: str = Depends(resource)) -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(3):
                log.append(f"chunk {i}")  # the resource is still open while streaming
                yield f"{r}{i}\n"
        return StreamingResponse(chunks(), media_type="text/plain")

    url = serve(app)
    assert httpx.get(url + "/stream").text == "r0\nr1\nr2\n"
    _wait(closed)
    assert log == ["open", "chunk 0", "chunk 1", "chunk 2", "close"]


def test_background_still_runs_after_the_exit_code(serve: Any) -> None:
    from ember import Response

    app = Ember()
    log: list[str] = []
    done = threading.Event()

    async def resource() -> Any:
        yield "r"
        log.append("exit")

    def background() -> None:
        log.append("background")
        done.set()

    @app.get("/bg")
    async def bg(r: str = Depends(resource)) -> Response:
        return Response(r, background=background)

    url = serve(app)
    assert httpx.get(url + "/bg").text == "r"
    _wait(done)
    assert log == ["exit", "background"]


def test_dependency_overrides(serve: Any) -> None:
    app = Ember()

    async def real_user(authorization: str = Header()) -> str:
        raise HTTPException(401, "no real auth in tests")

    def fake_user(x_fake: str = Header("tester")) -> str:
        return x_fake

    @app.get("/who")
    async def who(user: str = Depends(real_user)) -> str:
        return user

    url = serve(app)
    assert httpx.get(url + "/who", headers={"authorization": "x"}).status_code == 401
    app.dependency_overrides[real_user] = fake_user
    assert httpx.get(url + "/who").text == "tester"
    assert httpx.get(url + "/who", headers={"x-fake": "bob"}).text == "bob"
    app.dependency_overrides.clear()
    assert httpx.get(url + "/who").status_code == 422  # the real one's header is required


def test_overrides_with_their_own_dependencies_and_bad_overrides(
        caplog: pytest.LogCaptureFixture) -> None:
    """An override's own Depends (and a route-level ``dependencies=`` override) resolve;
    an override that cannot be built says which override, on the request that used it."""
    from ember.testing import TestClient

    app = Ember()
    calls: list[str] = []

    async def real_user(authorization: str = Header()) -> str:
        raise HTTPException(401, "no real auth in tests")

    def token(x_token: str = Header("t0")) -> str:
        return x_token

    def fake_user(tok: str = Depends(token)) -> str:
        return f"fake:{tok}"

    def audit(x_audit: str = Header("a")) -> None:
        calls.append(x_audit)

    def fake_audit(tok: str = Depends(token)) -> None:
        calls.append(f"fake:{tok}")

    def wraps(original: str = Depends(real_user)) -> str:  # overrides what it depends on
        return original

    def unusable(x: object) -> str:
        return "never"

    @app.get("/who", dependencies=[Depends(audit)])
    async def who(user: str = Depends(real_user)) -> str:
        return user

    with TestClient(app) as client:
        assert client.get("/who", headers={"authorization": "x"}).status_code == 401
        app.dependency_overrides.update({real_user: fake_user, audit: fake_audit})
        r = client.get("/who", headers={"x-token": "bob"})
        assert (r.status_code, r.text, calls) == (200, "fake:bob", ["a", "fake:bob"])
        for bad, why in ((wraps, "dependency cycle"), (unusable, "don't know how to inject")):
            app.dependency_overrides[real_user] = bad
            caplog.clear()
            r = client.get("/who", headers={"authorization": "x"})
            assert r.status_code == 500 and "real_user" not in r.text  # nothing leaks
            logged = " ".join(rec.getMessage() for rec in caplog.records)
            named = f"app.dependency_overrides[{real_user.__qualname__}] = {bad.__qualname__}"
            assert named in logged and why in logged, logged


def test_works_with_middleware_blueprints_and_ai_routes(serve: Any) -> None:
    from ember import ConversationContext

    app = Ember()
    bp = Blueprint()

    async def tenant(x_tenant: str = Header("public")) -> str:
        return x_tenant

    async def mark(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-mw"] = "1"
        return response

    app.add_middleware(mark)

    @bp.get("/t/{item}")
    def item(item: int, t: str = Depends(tenant)) -> dict:
        return {"item": item, "tenant": t}

    @app.ai_route("/chat")
    async def chat(context: ConversationContext, t: str = Depends(tenant)) -> dict:
        return {"tenant": t, "messages": len(context.messages)}

    app.add_blueprint(bp, prefixes="/api")
    url = serve(app)
    r = httpx.get(url + "/api/t/3", headers={"x-tenant": "acme"})
    assert (r.json(), r.headers["x-mw"]) == ({"item": 3, "tenant": "acme"}, "1")
    r = httpx.post(url + "/chat", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert r.json()["tenant"] == "public"


def test_each_request_gets_its_own_values_under_concurrency(serve: Any) -> None:
    app = Ember()

    async def request_id(x_id: str = Header()) -> Any:
        await asyncio.sleep(0)  # interleave with the other requests
        yield x_id
        await asyncio.sleep(0)

    async def echo(rid: str = Depends(request_id)) -> str:
        await asyncio.sleep(0)
        return rid

    @app.get("/id")
    async def ident(a: str = Depends(echo), b: str = Depends(request_id)) -> dict:
        return {"a": a, "b": b}

    url = serve(app)

    async def main() -> list[Any]:
        async with httpx.AsyncClient(base_url=url, timeout=GUARD) as client:
            rs = await asyncio.gather(*(client.get("/id", headers={"x-id": str(i)})
                                        for i in range(100)))
        return [r.json() for r in rs]
    results = asyncio.run(main())
    assert results == [{"a": str(i), "b": str(i)} for i in range(100)]


def test_openapi_documents_dependency_parameters() -> None:
    app = Ember()

    async def auth(x_api_key: str = Header(description="your key")) -> str:
        return x_api_key

    async def paging(limit: int = Query(10, le=100), k: str = Depends(auth)) -> int:
        return limit

    @app.get("/items")
    async def items(limit: int = Depends(paging), key: str = Depends(auth)) -> list:
        return []

    doc = app.test_client().get("/openapi.json").json()
    params = doc["paths"]["/items"]["get"]["parameters"]
    by_name = {p["name"]: p for p in params}
    assert set(by_name) == {"x-api-key", "limit"}  # each once, though auth is used twice
    assert by_name["x-api-key"]["in"] == "header"
    assert by_name["x-api-key"]["description"] == "your key"
    assert by_name["limit"]["schema"] == {"type": "integer", "maximum": 100, "default": 10}
    assert "422" in doc["paths"]["/items"]["get"]["responses"]


def test_configuration_mistakes_say_what_to_fix() -> None:
    app = Ember()
    with pytest.raises(ConfigError, match="expects a callable"):
        Depends(42)  # type: ignore[arg-type]

    def a(x: Any = None) -> None: ...

    def b(y: Any = Depends(a)) -> None: ...

    a.__defaults__ = (Depends(b),)  # a -> b -> a
    with pytest.raises(ConfigError, match="dependency cycle"):
        app.get("/cycle")(lambda v=Depends(a): v)
    with pytest.raises(ConfigError, match="needs a class annotation"):
        app.get("/bare")(lambda v=Depends(): v)

    async def unknown(thing: set = Depends(lambda q: q)) -> None: ...  # fine: q is a query
    app.get("/fine")(unknown)

    def needs_set(s: set) -> None: ...

    with pytest.raises(ConfigError, match="don't know how to inject"):
        app.get("/bad")(lambda v=Depends(needs_set): v)


def test_no_dependency_costs_nothing() -> None:
    """A handler without markers keeps its fast plan, and building an app without them
    does not load the dependency machinery."""
    app = Ember()
    Depends(lambda: 1)  # the marker module is loaded

    @app.get("/hello")
    async def hello() -> str:
        return "hi"

    route = next(r for r in app.routes if r.path == "/hello")
    assert (route.plan.kind, route.plan.scoped) == ("none", False)
    code = ("import sys, ember\napp = ember.Ember()\n"
            "@app.get('/x/{i}')\nasync def x(i: int, q: str = 'a'): return q\n"
            "assert 'ember.dependencies' not in sys.modules, 'loaded'\n"
            "assert 'ember.params' not in sys.modules, 'loaded'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_websocket_routes_take_dependencies(serve: Any) -> None:
    import websockets.sync.client as ws_client

    from ember import WebSocket

    app = Ember()
    closed = threading.Event()

    async def resource(token: str = Query()) -> Any:
        yield token.upper()
        closed.set()  # after the WebSocket handler is done

    @app.websocket("/ws")
    async def ws(ws: WebSocket, tok: str = Depends(resource)) -> None:
        await ws.accept()
        await ws.send_text(tok)

    url = serve(app).replace("http", "ws")
    with ws_client.connect(url + "/ws?token=abc", open_timeout=GUARD) as conn:
        assert conn.recv(timeout=GUARD) == "ABC"
    _wait(closed)


def test_route_level_dependencies_run_for_their_effect(serve: Any) -> None:
    app = Ember()
    bp = Blueprint()
    seen: list[str] = []

    async def verify_key(x_key: str = Header()) -> str:
        if x_key != "k":
            raise HTTPException(403, "bad key")
        seen.append("verified")
        return x_key

    def audit() -> Any:  # a sync generator: in the pool, exit after the response
        yield
        seen.append("audited")

    @app.get("/guarded", dependencies=[Depends(verify_key), Depends(audit)])
    async def guarded() -> str:  # takes nothing: the values are not passed
        return "in"

    @bp.post("/items/{n}", dependencies=[Depends(verify_key)])
    def create(n: int, key: str = Depends(verify_key)) -> dict:  # cached: verified once
        return {"n": n, "key": key}

    app.add_blueprint(bp, prefixes="/bp")
    url = serve(app)
    assert httpx.get(url + "/guarded", headers={"x-key": "nope"}).status_code == 403
    assert httpx.get(url + "/guarded").status_code == 422
    assert httpx.get(url + "/guarded", headers={"x-key": "k"}).text == "in"
    assert httpx.post(url + "/bp/items/3", headers={"x-key": "k"}).json() == {"n": 3, "key": "k"}
    from tests._waits import wait_for

    wait_for(lambda: "audited" in seen, "the exit code of audit()")
    assert seen.count("verified") == 2
    doc = app.test_client().get("/openapi.json").json()
    params = doc["paths"]["/guarded"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["x-key"]
    with pytest.raises(ConfigError, match="Depends"):
        app.get("/bad", dependencies=[verify_key])(guarded)
