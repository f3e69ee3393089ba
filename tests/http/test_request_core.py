"""The connection's request constructor is invisible to user code.

HTTP/1.1 connections build their requests with ``ember.requests.new_request`` (one
compiled call: a freelist ``Request`` filled as a C struct, routed by the compiled
router) instead of ``Request(...)`` followed by ``Ember._resolve``.  These tests demand
that both give the same request, attribute by attribute, for ordinary and garbage
targets, in the selected twin and (when built) across the pure and compiled twins; and,
through a real server, that a handler sees the same thing whether the app routes with
its own ``_resolve`` or with an override (which takes the general path).
"""

from __future__ import annotations

import importlib
import weakref

import httpx
import pytest

from ember import Ember, Request
from ember._compat import is_compiled
from ember.http.cycle import Cycle

TARGETS = [
    b"/hello",
    b"/users/42",
    b"/users/42?x=1&x=2&y=%20z",
    b"/a%20b/c%2Fd?q",
    b"/users/%34%32",
    b"/hello#frag",
    b"/hello?x=1#frag",
    b"/?",
    b"*",
    b"http://user:pw@example.com:8080/users/7?x=1",
    b"http://example.com",
    b"",
    b"//double//slashes",
    b"/\xff\xfe?\xff=\xfe",
    b"/nothing/here",
]
HEADERS = [(b"host", b"h.example"), (b"cookie", b"a=1; b=\"2\""), (b"x-y", b"z")]
ATTRS = ("method", "raw_path", "query_string", "http_minor", "scheme", "route",
         "path_params", "_allowed", "app", "session_data", "_authority", "_peer")
PROPS = ("path", "http_version", "url", "content_type")


def make_app() -> Ember:
    app = Ember(openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "hi"

    @app.get("/users/{uid:int}")
    async def user(uid: int):
        return {"uid": uid}

    @app.post("/hello")
    async def post_hello():
        return "posted"

    return app


def snapshot(req: Request) -> dict:
    out = {name: getattr(req, name) for name in ATTRS}
    out.update({name: getattr(req, name) for name in PROPS})
    out["query"] = list(req.query_params.multi_items()) if hasattr(
        req.query_params, "multi_items") else str(req.query_params)
    out["args"] = str(req.args)
    out["headers"] = list(req.headers.items())
    out["cookies"] = req.cookies
    out["client"] = req.client
    out["repr"] = repr(req)
    out["type"] = type(req).__name__
    return out


def general(mod, app: Ember, method: str, target: bytes, minor: int = 1) -> Request:
    cycle = Cycle()
    req = mod.Request(method, target, list(HEADERS), minor, None, ("10.0.0.1", 5), "http",
                      cycle)
    app._resolve(req)
    return req


def fast(mod, app: Ember, method: str, target: bytes, minor: int = 1) -> Request:
    return mod.new_request(method, target, list(HEADERS), minor, ("10.0.0.1", 5), "http",
                           Cycle(), app, app.router)


def twins() -> list:
    mods = [importlib.import_module("ember._request_py")]
    try:
        compiled = importlib.import_module("ember._request_c")
    except ImportError:
        return mods
    if is_compiled(compiled):
        mods.append(compiled)
    return mods


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
def test_new_request_is_request_plus_resolve(method: str, target: bytes) -> None:
    app = make_app()
    results = []
    for mod in twins():
        a, b = general(mod, app, method, target), fast(mod, app, method, target)
        assert type(a) is type(b) is mod.Request
        assert snapshot(a) == snapshot(b)
        results.append(snapshot(b))
    # NOTE: the pure and the compiled twin agree too (when the compiled one is built)
    assert all(r == results[0] for r in results)


def test_request_is_the_selected_twin_and_public_api_holds() -> None:
    from ember import requests

    assert Request is requests.Request
    app = make_app()
    req = fast(requests._impl, app, "GET", b"/users/42?page=3")
    assert isinstance(req, Request)
    assert req.path_params == {"uid": 42}
    req.path_params["extra"] = 1  # a plain, per-request dict
    assert fast(requests._impl, app, "GET", b"/users/42").path_params == {"uid": 42}
    assert int(req.args.get("page", 1)) == 3
    req.state.user = "ann"
    assert req.state.user == "ann"
    assert weakref.ref(req)() is req
    with pytest.raises(AttributeError):
        req.not_an_attribute = 1  # no instance dict, as with the pure class's slots
    with pytest.raises(AttributeError):
        req.not_an_attribute  # noqa: B018
    req.method = "PUT"  # middleware may rewrite these
    req.raw_path = b"/other"
    assert (req.method, req.raw_path) == ("PUT", b"/other")
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        req.session  # noqa: B018


def test_user_subclass_of_request() -> None:
    class MyRequest(Request):
        def shout(self) -> str:
            return self.method.upper() + "!"

    req = MyRequest("get", b"/x?y=1", [(b"host", b"h")])
    assert isinstance(req, Request) and req.shout() == "GET!"
    assert req.query_params.get("y") == "1" and req.url == "http://h/x?y=1"
    req.free_attribute = 1  # a subclass without __slots__ has an instance dict
    assert req.free_attribute == 1


def test_garbage_arguments_raise_clear_errors() -> None:
    app = make_app()
    from ember import requests

    with pytest.raises(TypeError):
        requests.new_request("GET", "/str-not-bytes", [], 1, None, "http", Cycle(), app,
                             app.router)
    with pytest.raises((TypeError, AttributeError)):  # as before: not a bytes target
        Request("GET", None, [])  # type: ignore[arg-type]


async def _echo(request: Request):
    return {
        "type": type(request).__name__, "isinstance": isinstance(request, Request),
        "path": request.path, "raw_path": request.raw_path.decode("latin-1"),
        "query": request.query_string.decode("latin-1"), "params": request.path_params,
        "url": request.url, "version": request.http_version,
        "route": request.route.path if request.route else None,
        "app": request.app is not None, "repr": repr(request),
    }


class ResolvingApp(Ember):
    """Overrides _resolve: the connection must call it (the general path)."""

    def _resolve(self, req):  # type: ignore[override]
        return super()._resolve(req)


@pytest.mark.parametrize("target", ["/e/1?a=b", "/e/%31?x", "/e/1#frag"])
def test_handler_sees_the_same_request_on_both_paths(serve, target: str) -> None:
    answers = []
    for cls in (Ember, ResolvingApp):
        app = cls(openapi_url=None)
        app.get("/e/{n}")(_echo)
        url = serve(app)
        answers.append(httpx.get(url + target, headers={"host": "h.test"}).json())
    assert answers[0] == answers[1]
    assert answers[0]["isinstance"] and answers[0]["type"] == "Request"
    assert answers[0]["params"] == {"n": "1"}


def test_the_connection_takes_the_fast_constructor_only_for_the_plain_resolve() -> None:
    from tests.http.fake import Conn

    for cls, fast_path in ((Ember, True), (ResolvingApp, False)):
        app = cls(openapi_url=None)
        app.get("/e/{n}")(_echo)
        conn = Conn(app)
        try:
            assert (conn.proto._router is app.router) is fast_path
            conn.send(b"GET /e/5?q=1 HTTP/1.1\r\nhost: x\r\n\r\n")
            assert conn.statuses() == [200]
            assert b'"params":{"n":"5"}' in conn.output
        finally:
            conn.close()


def test_the_compiled_request_is_built_and_selected() -> None:
    from tests._compiled import BUILD_HINT, extensions_expected

    if not extensions_expected():
        pytest.skip("pure twins expected here (EMBER_NO_EXTENSIONS or no compiler)")
    from ember import requests
    from ember.http.cycle import Cycle as SelectedCycle

    assert is_compiled(requests._impl), f"ember._request_c is not built; {BUILD_HINT}"
    req = requests.Request("GET", b"/", [])
    assert not hasattr(req, "__dict__")
    cycle = SelectedCycle()
    cycle.request = req  # the compiled Cycle types its request
    with pytest.raises(TypeError):
        cycle.request = "not a request"
