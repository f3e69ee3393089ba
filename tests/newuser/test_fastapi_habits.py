"""FastAPI habits that do not carry over say so instead of failing silently."""

from __future__ import annotations

import logging

import pytest

from ember import CORSMiddleware, Ember, JSONResponse, Response
from ember.exceptions import ConfigError


def test_wildcard_origin_with_credentials_warns_once_at_construction(caplog):
    with caplog.at_level(logging.WARNING, logger="ember"):
        mw = CORSMiddleware(allow_origins=["*"], allow_credentials=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no cross-origin request is allowed at all" in warnings[0]
    assert "allow_origin_regex" in warnings[0]
    app = Ember(openapi_url=None)
    app.add_middleware(mw)

    @app.get("/")
    async def index():
        return "x"

    with app.test_client() as client:  # the behaviour is unchanged: nothing is reflected
        r = client.get("/", headers={"origin": "https://anyone.example"})
        assert "access-control-allow-origin" not in r.headers


def test_wildcard_with_listed_origins_warns_without_all(caplog):
    with caplog.at_level(logging.WARNING, logger="ember"):
        CORSMiddleware(allow_origins=["https://a.example", "*"], allow_credentials=True)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "lets no origin through" in warning and "at all" not in warning


@pytest.mark.parametrize("options", [
    {"allow_origins": ["*"]},
    {"allow_origins": ["https://a.example"], "allow_credentials": True},
])
def test_sound_configurations_do_not_warn(caplog, options):
    with caplog.at_level(logging.WARNING, logger="ember"):
        CORSMiddleware(**options)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_response_parameter_is_refused_at_import_time_as_the_migration_guide_says():
    app = Ember(openapi_url=None)
    with pytest.raises(ConfigError, match="response"):
        @app.get("/r")
        async def r(response: Response):
            return {}

    @app.get("/ok")
    async def ok():  # what the guide says to do instead
        out = JSONResponse({"a": 1}, status_code=201, headers={"x-a": "1"})
        out.set_cookie("k", "v")
        return out

    with app.test_client() as client:
        got = client.get("/ok")
    assert got.status_code == 201 and got.headers["x-a"] == "1"
    assert got.headers["set-cookie"].startswith("k=v")


def test_a_fastapi_style_validation_handler_runs():
    from ember.exceptions import RequestValidationError

    app = Ember(openapi_url=None)

    @app.get("/n")
    async def n(n: int):
        return n

    @app.exception_handler(RequestValidationError)
    async def handler(request, exc):  # FastAPI's documented handler, word for word
        return JSONResponse({"detail": exc.errors(), "body": exc.body}, status_code=400)

    with app.test_client() as client:
        r = client.get("/n?n=x")
    assert r.status_code == 400, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "n"] and r.json()["body"] is None
    exc = RequestValidationError([{"loc": ["query", "n"]}])
    assert exc.errors() == exc.errors == [{"loc": ["query", "n"]}]  # callable and a list


@pytest.mark.parametrize("status", [600, 99, "404", 404.0, True, None])
def test_http_exception_refuses_an_invalid_status_where_it_is_raised(status):
    from ember import HTTPException

    with pytest.raises(ValueError, match="invalid HTTP status code"):
        HTTPException(status, "x")


def test_http_exception_with_a_valid_status_still_answers():
    from ember import HTTPException

    app = Ember(openapi_url=None)

    @app.get("/t")
    async def t():
        raise HTTPException(418, headers={"x-a": "1"})

    with app.test_client() as client:
        r = client.get("/t")
    assert r.status_code == 418 and r.headers["x-a"] == "1" and r.json()["detail"]
