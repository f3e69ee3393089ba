"""Routing: precedence, typed parameters, 404/405/HEAD/OPTIONS, url_for."""

from __future__ import annotations

import uuid

import pytest

from ember import Ember
from ember.exceptions import ConfigError
from ember.routing import Router


@pytest.fixture
def client():
    app = Ember()

    @app.get("/items/new")
    async def new():
        return "static"

    @app.get("/items/{item_id:int}")
    async def by_int(item_id: int):
        return {"int": item_id}

    @app.get("/items/{slug}")
    async def by_slug(slug: str):
        return {"slug": slug}

    @app.get("/f/{x:float}")
    async def f(x: float):
        return {"x": x}

    @app.get("/u/{uid:uuid}")
    async def u(uid: uuid.UUID):
        return {"uuid": str(uid)}

    @app.get("/files/{rest:path}")
    async def files(rest: str):
        return {"rest": rest}

    @app.route("/multi", methods=["GET", "POST"])
    async def multi(request):
        return request.method

    @app.delete("/items/{item_id:int}")
    async def delete(item_id: int):
        return None

    with app.test_client() as c:
        yield c


def test_static_beats_param_beats_catchall(client):
    assert client.get("/items/new").text == "static"
    assert client.get("/items/42").json() == {"int": 42}
    assert client.get("/items/abc").json() == {"slug": "abc"}


def test_typed_parameters(client):
    assert client.get("/f/1.5").json() == {"x": 1.5}
    uid = uuid.uuid4()
    assert client.get(f"/u/{uid}").json() == {"uuid": str(uid)}
    assert client.get("/u/not-a-uuid").status_code == 404
    assert client.get("/files/a/b/c.txt").json() == {"rest": "a/b/c.txt"}


def test_percent_decoding(client):
    assert client.get("/items/hello%20world").json() == {"slug": "hello world"}
    assert client.get("/items/a%2Fb").json() == {"slug": "a/b"}  # encoded / stays in the segment


def test_404_405_head_options(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = client.put("/items/1")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE", "OPTIONS"}
    r = client.head("/items/1")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == client.get("/items/1").headers["content-length"]
    r = client.options("/multi")
    assert r.status_code == 204 and "POST" in r.headers["allow"]
    assert client.post("/multi").text == "POST"
    assert client.delete("/items/3").status_code == 204


def test_url_for():
    app = Ember()

    @app.get("/users/{user_id:int}/posts/{slug}")
    async def post(user_id: int, slug: str):
        return ""

    assert app.url_for("post", user_id=3, slug="a b") == "/users/3/posts/a%20b"
    assert app.url_for("post", user_id=3, slug="x", page=2) == "/users/3/posts/x?page=2"
    with pytest.raises(ConfigError, match="missing"):
        app.url_for("post", user_id=3)
    with pytest.raises(ConfigError, match="no route named"):
        app.url_for("nope")


@pytest.mark.parametrize("path", ["no-slash", "/{bad", "/{x:complex}", "/{a:path}/more"])
def test_bad_route_templates_fail_at_registration(path):
    app = Ember()
    with pytest.raises((ConfigError, ValueError)):
        @app.get(path)
        async def h():
            return ""


def test_unknown_method_fails_at_registration():
    app = Ember()
    with pytest.raises(ConfigError, match="unknown HTTP method"):
        app.route("/x", methods=["FETCH"])


def test_lookup_with_many_routes():
    router = Router()
    for i in range(1000):
        router.add(f"/r{i}/{{id:int}}/x{i}", ["GET"], f"route{i}")
    route, params = router.match("GET", "/r999/5/x999")
    assert route == "route999" and params == {"id": 5}
    assert router.match("GET", "/r1000/5/x1000") == (None, None)


def test_options_asterisk_describes_the_server(serve):
    """RFC 9110 §9.3.7: `OPTIONS *` gets the server's methods, not a 404."""
    from ember import Ember
    from tests.conftest import raw_exchange

    app = Ember()

    @app.get("/a")
    async def a():
        return "a"

    @app.post("/b")
    async def b():
        return "b"

    reply = raw_exchange(serve(app), b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 204 ")
    assert b"\r\nallow: GET, HEAD, OPTIONS, POST\r\n" in reply
    # and `*` is only for OPTIONS
    assert raw_exchange(serve(app), b"GET * HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
