"""A new user's findings about returned data that is too deep for JSON (or cyclic):
the log names the real reason, not "list is not JSON serializable"."""

from __future__ import annotations

import logging

import httpx
import pytest

from ember import Ember, Request


def _deep(levels: int) -> list:
    data: list = []
    for _ in range(levels):
        data = [data]
    return data


def _cycle() -> dict:
    data: dict = {"a": 1}
    data["self"] = data
    return data


def _errors(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


@pytest.mark.parametrize("make", [lambda: _deep(300), _cycle, lambda: {"x": [_deep(260)]}])
def test_too_deep_or_cyclic_data_says_so(serve, caplog, make):
    app = Ember(openapi_url=None)

    @app.get("/deep")
    async def deep():
        return make()

    url = serve(app)
    with caplog.at_level(logging.ERROR, logger="ember"):
        r = httpx.get(url + "/deep", timeout=30)
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
    log = _errors(caplog)
    assert "nested too deeply for JSON" in log and "or holds a cycle" in log, log
    assert "is not JSON serializable" not in log, log  # lists and dicts are JSON types
    assert len(log.splitlines()[0]) < 400, log  # one readable line, not 300 brackets


def test_echoing_a_deep_request_body_names_the_depth(serve, caplog):
    app = Ember(openapi_url=None)

    @app.post("/echo")
    async def echo(request: Request):
        return await request.json()

    url = serve(app)
    body = b"[" * 1000 + b"]" * 1000
    with caplog.at_level(logging.ERROR, logger="ember"):
        r = httpx.post(url + "/echo", content=body, headers={"content-type": "application/json"},
                       timeout=30)
    assert r.status_code in (400, 500), r.text
    if r.status_code == 500:
        assert "nested too deeply for JSON" in _errors(caplog)
    assert httpx.post(url + "/echo", json=[[[1]]], timeout=30).json() == [[[1]]]


def test_shallow_data_is_unchanged(serve):
    app = Ember(openapi_url=None)

    @app.get("/ok")
    async def ok():
        return _deep(100)

    r = httpx.get(serve(app) + "/ok", timeout=30)
    assert r.status_code == 200 and r.content == b"[" * 100 + b"[]" + b"]" * 100
