"""Errors, middleware chain, blueprints, lifecycle, responses and the test client."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import pytest

from ember import (
    Blueprint,
    Ember,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    Response,
    ServerLimits,
)
from ember.exceptions import ConfigError


def test_http_exception_and_handlers():
    app = Ember()

    @app.get("/teapot")
    async def teapot():
        raise HTTPException(418, "short and stout", headers={"x-pot": "1"})

    @app.get("/key")
    async def key():
        raise KeyError("k")

    @app.get("/value")
    async def value():
        raise ValueError("v")

    @app.exception_handler(KeyError)
    async def on_key(request, exc):
        return JSONResponse({"missing": str(exc)}, 404)

    @app.exception_handler(404)
    def on_404(request, exc):
        return PlainTextResponse("custom not found", 404)

    with app.test_client() as c:
        r = c.get("/teapot")
        assert r.status_code == 418 and r.json() == {"detail": "short and stout"}
        assert r.headers["x-pot"] == "1"
        assert c.get("/key").json() == {"missing": "'k'"}
        assert c.get("/nowhere").text == "custom not found"
        r = c.get("/value")
        assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
        assert "ValueError" not in r.text


def test_500_is_logged_with_context_and_debug_shows_traceback(caplog):
    app = Ember(debug=True)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("kaput")

    with caplog.at_level(logging.ERROR, logger="ember.app"), app.test_client() as c:
        r = c.get("/boom")
    assert r.status_code == 500 and "RuntimeError: kaput" in r.text
    assert any("GET /boom" in rec.getMessage() for rec in caplog.records)


def test_middleware_order_before_after_and_short_circuit():
    app = Ember()
    calls: list[str] = []

    async def outer(request, call_next):
        calls.append("outer-before")
        response = await call_next(request)
        calls.append("outer-after")
        response.headers["x-outer"] = "1"
        return response

    class Inner:
        async def __call__(self, request, call_next):
            calls.append("inner-before")
            if request.headers.get("x-block"):
                return JSONResponse({"blocked": True}, 403)
            response = await call_next(request)
            calls.append("inner-after")
            return response

    app.add_middleware(outer)
    app.add_middleware(Inner())

    @app.get("/")
    async def index():
        calls.append("handler")
        return "ok"

    with app.test_client() as c:
        r = c.get("/")
        assert r.text == "ok" and r.headers["x-outer"] == "1"
        assert calls == ["outer-before", "inner-before", "handler", "inner-after", "outer-after"]
        calls.clear()
        r = c.get("/", headers={"x-block": "1"})
        assert r.status_code == 403 and "handler" not in calls
        assert c.get("/missing").headers["x-outer"] == "1"  # 404s pass through middleware


def test_middleware_errors_become_500():
    app = Ember()

    async def broken(request, call_next):
        raise RuntimeError("mw")

    app.add_middleware(broken)

    @app.get("/")
    async def index():
        return "ok"

    with app.test_client() as c:
        assert c.get("/").status_code == 500


def test_add_middleware_rejects_classes_and_non_callables():
    app = Ember()
    with pytest.raises(ConfigError, match="instance"):
        app.add_middleware(Ember)
    with pytest.raises(ConfigError):
        app.add_middleware(42)


def test_blueprints_prefixes_nesting_and_middleware():
    app = Ember()
    admin = Blueprint("admin")
    nested = Blueprint()

    @admin.get("/users")
    async def list_users():
        return {"users": []}

    @admin.post("/users")
    async def create_user(request: Request):
        return JSONResponse(await request.json(), status_code=201)

    @nested.get("/deep")
    async def deep():
        return "deep"

    async def tag(request, call_next):
        response = await call_next(request)
        response.headers["x-bp"] = "admin"
        return response

    admin.add_middleware(tag)
    admin.add_blueprint(nested, prefixes={"*": "/n"})
    app.add_blueprint(admin, prefixes={"*": "/admin", "POST": "/write"})

    with app.test_client() as c:
        r = c.get("/admin/users")
        assert r.json() == {"users": []} and r.headers["x-bp"] == "admin"
        assert c.post("/write/users", json={"a": 1}).status_code == 201
        assert c.post("/admin/users", json={}).status_code == 405
        assert c.get("/admin/n/deep").text == "deep"
    assert app.url_for("admin.list_users") == "/admin/users"
    with pytest.raises(ConfigError):
        app.add_blueprint(admin, prefixes={"*": "no-slash"})


def test_lifecycle_hooks_and_lifespan():
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("lifespan-enter")
        app.state.db = "connected"
        yield
        events.append("lifespan-exit")

    app = Ember(lifespan=lifespan)

    @app.on_startup
    async def start():
        events.append("startup")

    @app.on_shutdown
    def stop():
        events.append("shutdown")

    @app.get("/db")
    async def db():
        return app.state.db

    with app.test_client() as c:
        assert c.get("/db").text == "connected"
    assert events == ["lifespan-enter", "startup", "shutdown", "lifespan-exit"]


def test_lifecycle_runs_in_a_real_server(serve):
    events: list[str] = []
    app = Ember()
    app.on_startup(lambda: events.append("up"))
    app.on_shutdown(lambda: events.append("down"))

    @app.get("/")
    async def index():
        return "ok"

    url = serve(app)
    assert httpx.get(url).text == "ok"
    assert events == ["up"]
    serve.servers[0].stop()
    assert events == ["up", "down"]


def test_response_types():
    app = Ember()

    @app.get("/bytes")
    async def b():
        return b"\x00\x01"

    @app.get("/none")
    async def n():
        return None

    @app.get("/redirect")
    async def r():
        return RedirectResponse("/none")

    @app.get("/cookie")
    async def cookie():
        resp = Response("c")
        resp.set_cookie("sid", "abc", httponly=True)
        return resp

    @app.get("/tuple")
    async def t():
        return {"created": True}, 201

    with app.test_client() as c:
        r = c.get("/bytes")
        assert r.headers["content-type"] == "application/octet-stream" and r.content == b"\x00\x01"
        assert c.get("/none").status_code == 204
        r = c.get("/redirect")
        assert r.status_code == 307 and r.headers["location"] == "/none"
        r = c.get("/cookie")
        assert "httponly" in r.headers["set-cookie"].lower() and c.cookies["sid"] == "abc"
        assert c.get("/tuple").status_code == 201


def test_request_surface():
    app = Ember(trusted_proxies=["127.0.0.1"])

    @app.get("/r/{name}")
    async def r(request: Request, name: str):
        return {
            "method": request.method, "path": request.path, "args": request.args.getall("a"),
            "first": request.args.get("a"), "h": request.headers.getall("x-multi"),
            "cookies": request.cookies, "client": request.client.host,
            "params": request.path_params, "url": request.url,
        }

    with app.test_client() as c:
        r = c.get("/r/caf%C3%A9?a=1&a=2", headers={"x-multi": "1", "X-Forwarded-For": "9.9.9.9",
                                                  "cookie": "a=1; bad; b=\"2\""})
        body = r.json()
        assert body["path"] == "/r/café" and body["args"] == ["1", "2"] and body["first"] == "1"
        assert body["client"] == "9.9.9.9"  # from a trusted proxy
        assert body["cookies"]["a"] == "1" and body["params"] == {"name": "café"}


def test_untrusted_forwarded_for_is_ignored():
    app = Ember()

    @app.get("/ip")
    async def ip(request: Request):
        return request.client.host

    with app.test_client() as c:
        assert c.get("/ip", headers={"x-forwarded-for": "6.6.6.6"}).text == "127.0.0.1"


def test_async_test_client_and_streaming():
    app = Ember()

    @app.get("/gen")
    async def gen():
        async def g():
            for i in range(3):
                yield f"{i},"
        return g()

    async def main():
        async with app.test_client() as c:
            r = await c.get("/gen")
            assert r.text == "0,1,2,"
            async with c.stream("GET", "/gen") as r:
                chunks = [chunk async for chunk in r.aiter_bytes()]
            assert b"".join(chunks) == b"0,1,2,"

    asyncio.run(main())


def test_server_limits_validation():
    with pytest.raises(ConfigError, match="keep_alive_timeout"):
        ServerLimits(keep_alive_timeout=-1)
    with pytest.raises(ConfigError, match="max_headers"):
        ServerLimits(max_headers=1.5)
    with pytest.raises(ConfigError):
        Ember(server_limits={"keep_alive_timeout": 3})


def test_openapi_document_and_docs_page():
    import msgspec

    class Item(msgspec.Struct):
        name: str
        price: float

    app = Ember(title="Shop", version="2.0")

    @app.get("/items/{item_id:int}")
    async def get_item(item_id: int, verbose: bool = False):
        """Fetch one item."""
        return {}

    @app.post("/items")
    async def create(item: Item):
        return {}

    with app.test_client() as c:
        doc = c.get("/openapi.json").json()
        assert doc["openapi"] == "3.1.0" and doc["info"] == {"title": "Shop", "version": "2.0"}
        op = doc["paths"]["/items/{item_id}"]["get"]
        assert op["summary"] == "Fetch one item."
        names = {(p["name"], p["in"], p["required"]) for p in op["parameters"]}
        assert names == {("item_id", "path", True), ("verbose", "query", False)}
        body = doc["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith("/Item")
        assert "Item" in doc["components"]["schemas"]
        assert "/openapi.json" not in doc["paths"]
        assert "swagger" in c.get("/docs").text.lower()


def test_openapi_can_be_disabled():
    app = Ember(openapi_url=None)
    with app.test_client() as c:
        assert c.get("/openapi.json").status_code == 404
