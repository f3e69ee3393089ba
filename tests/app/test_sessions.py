"""Signed-cookie sessions with a server-side store."""

from __future__ import annotations

import pytest

from ember import Ember, Request, SessionMiddleware
from ember.exceptions import ConfigError


def _app() -> Ember:
    app = Ember()
    app.add_middleware(SessionMiddleware(secret_key="s" * 32))

    @app.get("/count")
    async def count(request: Request):
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @app.get("/logout")
    async def logout(request: Request):
        request.session.clear()
        return "bye"

    return app


def test_session_persists_across_requests_and_clears():
    with _app().test_client() as c:
        assert c.get("/count").json() == {"n": 1}
        assert c.get("/count").json() == {"n": 2}
        r = c.get("/logout")
        assert "max-age=0" in r.headers["set-cookie"].lower()
        c.cookies.pop("ember_session", None)
        assert c.get("/count").json() == {"n": 1}


def test_tampered_cookie_gives_a_fresh_session():
    with _app().test_client() as c:
        c.get("/count")
        sid = c.cookies["ember_session"]
        c.cookies["ember_session"] = sid[:-2] + ("00" if not sid.endswith("00") else "11")
        assert c.get("/count").json() == {"n": 1}
        c.cookies["ember_session"] = "garbage-without-dot"
        assert c.get("/count").json() == {"n": 1}


def test_session_without_middleware_is_a_clear_error():
    app = Ember()

    @app.get("/")
    async def index(request: Request):
        return request.session

    with app.test_client() as c:
        r = c.get("/")
        assert r.status_code == 500


def test_weak_secret_rejected():
    with pytest.raises(ConfigError, match="secret_key"):
        SessionMiddleware(secret_key="short")
