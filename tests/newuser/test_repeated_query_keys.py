"""``?a=1&a=2``: a scalar parameter gets the LAST value, as in FastAPI/Starlette; a list
parameter gets all of them in order.  ``request.args.get`` keeps the FIRST (SPEC.md §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest

from ember import Ember, Form, Query, Request
from ember.testing import LiveServer


@dataclass
class Page:
    page: int = 1
    tags: list[str] | None = None


def _app() -> Ember:
    app = Ember(openapi_url=None)

    @app.get("/scalar")
    async def scalar(a: int, s: str = "none"):
        return {"a": a, "s": s}

    @app.get("/marker")
    async def marker(q: Annotated[str, Query(alias="item-q", max_length=3)] = "x",
                     n: int = Query(0, ge=0)):
        return {"q": q, "n": n}

    @app.get("/list")
    async def many(a: Annotated[list[int], Query()] = []):  # noqa: B006 - FastAPI's idiom
        return {"a": a}

    @app.get("/model")
    async def model(p: Page):
        return {"page": p.page, "tags": p.tags}

    @app.get("/args")
    async def args(request: Request):
        return {"get": request.args.get("a"), "all": request.args.getall("a")}

    @app.post("/form")
    async def form(name: Annotated[str, Form()]):
        return {"name": name}

    return app


@pytest.fixture(scope="module")
def client():
    with LiveServer(_app()) as server, httpx.Client(base_url=server.url) as c:
        yield c


@pytest.mark.parametrize(("url", "expected"), [
    ("/scalar?a=1&a=2", {"a": 2, "s": "none"}),
    ("/scalar?a=1&s=x&a=3&s=y", {"a": 3, "s": "y"}),
    ("/marker?item-q=abc&item-q=de&n=5&n=6", {"q": "de", "n": 6}),
    ("/list?a=1&a=2&a=3", {"a": [1, 2, 3]}),
    ("/list", {"a": []}),
    ("/model?page=1&page=4&tags=a&tags=b", {"page": 4, "tags": ["a", "b"]}),
    ("/args?a=1&a=2", {"get": "1", "all": ["1", "2"]}),
])
def test_repeated_keys(client, url, expected):
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.json() == expected


@pytest.mark.parametrize(("url", "loc"), [
    ("/scalar?a=1&a=x", ["query", "a"]),   # the last one is validated, not the first
    ("/marker?item-q=ab&item-q=long", ["query", "item-q"]),
    ("/marker?n=1&n=-1", ["query", "n"]),
    ("/list?a=1&a=x", ["query", "a"]),
])
def test_the_value_that_is_used_is_the_one_validated(client, url, loc):
    r = client.get(url)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    assert any(e["loc"] == loc for e in r.json()["detail"])


def test_a_bad_first_value_does_not_matter_when_a_later_one_wins(client):
    assert client.get("/scalar?a=x&a=7").json() == {"a": 7, "s": "none"}


def test_a_repeated_form_field_gives_a_scalar_the_last_value(client):
    r = client.post("/form", content=b"name=first&name=last",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "last"}
