"""Handler injection and validation (422 bodies that name each bad field)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import msgspec
import pydantic
import pytest

from ember import Ember, Request
from ember.exceptions import ConfigError


@dataclasses.dataclass
class DItem:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)


class SItem(msgspec.Struct):
    name: str
    price: float


class PItem(pydantic.BaseModel):
    name: str
    price: float


class Filter(msgspec.Struct):
    q: str
    limit: int = 10


@pytest.fixture
def client():
    app = Ember()

    @app.get("/q")
    async def q(page: int = 1, tags: list[str] = [], flag: bool = False,  # noqa: B006
                kind: Literal["a", "b"] = "a", name: str | None = None):
        return {"page": page, "tags": tags, "flag": flag, "kind": kind, "name": name}

    @app.get("/required")
    async def required(token: str):
        return token

    @app.get("/path/{n}")
    async def path(n: int):
        return {"n": n}

    @app.post("/d")
    async def d(item: DItem):
        return {"type": "dataclass", "name": item.name, "price": item.price}

    @app.post("/s")
    async def s(item: SItem):
        return {"type": "struct", "name": item.name}

    @app.post("/p")
    async def p(item: PItem, request: Request):
        return {"type": "pydantic", "name": item.name, "method": request.method}

    @app.get("/filter")
    async def filt(f: Filter):
        return {"q": f.q, "limit": f.limit}

    @app.get("/sync")
    def sync(x: int = 0):
        return {"x": x}

    with app.test_client() as c:
        yield c


def test_query_parameters(client):
    assert client.get("/q").json() == {"page": 1, "tags": [], "flag": False, "kind": "a",
                                       "name": None}
    r = client.get("/q?page=3&tags=a&tags=b&flag=yes&kind=b&name=z")
    assert r.json() == {"page": 3, "tags": ["a", "b"], "flag": True, "kind": "b", "name": "z"}


@pytest.mark.parametrize("query,field", [("page=x", "page"), ("flag=maybe", "flag"),
                                         ("kind=c", "kind")])
def test_bad_query_is_422_naming_the_field(client, query, field):
    r = client.get("/q?" + query)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["query", field] and err["msg"]


def test_missing_required_query(client):
    r = client.get("/required")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "token"]
    assert client.get("/required?token=t").text == "t"


def test_path_param_converted_by_annotation(client):
    assert client.get("/path/7").json() == {"n": 7}
    r = client.get("/path/seven")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "n"]


@pytest.mark.parametrize("route", ["/d", "/s", "/p"])
def test_bodies(client, route):
    r = client.post(route, json={"name": "x", "price": 1.5})
    assert r.status_code == 200 and r.json()["name"] == "x"


@pytest.mark.parametrize("route", ["/d", "/s", "/p"])
@pytest.mark.parametrize("body", [b'{"name": "x"}', b'{"name": 1, "price": "no"}', b"[1]",
                                  b"{not json", b"null"])
def test_bad_bodies_are_422(client, route, body):
    r = client.post(route, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] and r.json()["detail"][0]["loc"][0] == "body"


def test_missing_body_is_422(client):
    r = client.post("/s")
    assert r.status_code == 422 and "required" in r.json()["detail"][0]["msg"]


def test_model_from_query(client):
    assert client.get("/filter?q=a&limit=3").json() == {"q": "a", "limit": 3}
    assert client.get("/filter?limit=3").status_code == 422
    assert client.get("/filter?q=a&limit=x").status_code == 422


def test_sync_handler(client):
    assert client.get("/sync?x=4").json() == {"x": 4}


def test_unknown_annotation_fails_at_registration():
    app = Ember()

    class Weird:
        pass

    with pytest.raises(ConfigError, match="don't know how to inject"):
        @app.get("/w")
        async def w(thing: Weird):
            return ""


def test_body_model_on_get_without_model_support_fails():
    app = Ember()
    with pytest.raises(ConfigError):
        @app.get("/g")
        async def g(payload: dict):
            return ""


def test_invalid_json_via_request_json_is_400():
    app = Ember()

    @app.post("/j")
    async def j(request: Request):
        return await request.json()

    with app.test_client() as c:
        r = c.post("/j", content=b"{oops", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.text


def test_handler_taking_some_path_params():
    app = Ember()

    @app.get("/a/{x:int}/b/{y}")
    async def h(y: str):
        return {"y": y}

    @app.get("/c/{x:int}/d/{y}")
    async def both(x: int, y: str):
        return {"x": x, "y": y}

    with app.test_client() as c:
        assert c.get("/a/1/b/z").json() == {"y": "z"}
        assert c.get("/c/1/d/z").json() == {"x": 1, "y": "z"}


@pytest.mark.parametrize("body,where", [
    (b'{"a":', "char 5"), (b"[1, 2", "char 5"), (b'{"a": 1,}', "char 8"), (b"", "empty"),
])
def test_request_json_errors_say_where(body, where):
    """request.json() answers 400 with the real position (or 'empty'), not 'char 0'."""
    from ember import Ember

    app = Ember()

    @app.post("/echo")
    async def echo(request: Request):
        return await request.json()

    with app.test_client() as client:
        r = client.post("/echo", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("invalid JSON body: ") and where in detail, detail
    assert "invalid JSON: " not in detail  # one prefix


def test_missing_body_field_is_named():
    """A missing field of a typed body: loc names it, type 'missing' (as for query params)."""
    import msgspec

    from ember import Ember

    class Item(msgspec.Struct):
        name: str
        price: float

    app = Ember()

    @app.post("/items")
    async def create(item: Item):
        return {"name": item.name}

    with app.test_client() as client:
        r = client.post("/items", json={"price": 1.5})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body", "name"], "msg": "field required",
                                   "type": "missing"}]
