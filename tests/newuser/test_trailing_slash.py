"""``/items`` ↔ ``/items/``: a 307 to the route that exists, as FastAPI/Starlette's
``redirect_slashes`` does (was a 404); never an open redirect."""

from __future__ import annotations

import socket

import httpx
import pytest

from ember import Ember, Request
from ember.testing import LiveServer


def _app() -> Ember:
    app = Ember(openapi_url=None)

    @app.get("/items/")
    async def items(request: Request):
        return {"q": request.args.get("q")}

    @app.post("/items/")
    async def create():
        return {"created": True}

    @app.get("/plain")
    async def plain():
        return {"plain": True}

    @app.get("/both")
    async def both():
        return "no slash"

    @app.get("/both/")
    async def both_slash():
        return "slash"

    @app.get("/users/{uid:int}/")
    async def user(uid: int):
        return {"uid": uid}

    @app.get("/caf\u00e9/")
    async def cafe():
        return "cafe"

    @app.get("/evil.example")
    async def evil():
        return "x"

    return app


@pytest.fixture(scope="module")
def client():
    with LiveServer(_app()) as server, httpx.Client(base_url=server.url) as c:
        yield c


@pytest.mark.parametrize(("method", "url", "location"), [
    ("GET", "/items", "/items/"),
    ("GET", "/items?q=1&q=2", "/items/?q=1&q=2"),
    ("HEAD", "/items", "/items/"),
    ("POST", "/items", "/items/"),  # 307: the client repeats the POST with its body
    ("GET", "/plain/", "/plain"),
    ("GET", "/users/5", "/users/5/"),
    ("GET", "/caf%C3%A9", "/caf%C3%A9/"),
])
def test_redirects_to_the_other_form(client, method, url, location):
    r = client.request(method, url)
    assert r.status_code == 307, r.text
    assert r.headers["location"] == location
    assert r.content == b""


def test_following_the_redirect_keeps_method_and_body(client):
    r = client.post("/items", json={"a": 1}, follow_redirects=True)
    assert r.status_code == 200 and r.json() == {"created": True}
    r = client.get("/items?q=z", follow_redirects=True)
    assert r.json() == {"q": "z"}


@pytest.mark.parametrize(("url", "status"), [
    ("/both", 200), ("/both/", 200),  # both exist: each served, no redirect
    ("/nope", 404), ("/nope/", 404),
    ("/users/x", 404),               # the other form does not match either
    ("/plain", 200),
])
def test_no_redirect_when_not_needed(client, url, status):
    r = client.get(url)
    assert r.status_code == status
    assert "location" not in r.headers


def test_wrong_method_is_still_405(client):
    r = client.delete("/items/")
    assert r.status_code == 405 and "location" not in r.headers


@pytest.mark.parametrize("target", [b"//evil.example/", b"/\\evil.example/", b"//evil.example"])
def test_never_an_open_redirect(client, target):
    host, port = str(client.base_url).rstrip("/").rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert b"\r\nlocation:" not in out.lower(), out
