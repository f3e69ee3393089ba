"""FastAPI's query parameter models, ``Annotated[Model, Query()]``, on any method
(was a ConfigError at registration: "cannot convert a string to <Model>")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from pydantic import BaseModel, Field

from ember import Ember, Query
from ember.testing import LiveServer


class Filter(BaseModel):
    limit: int = Field(10, le=100)
    tags: list[str] = []


@dataclass
class Page:
    page: int = 1


def test_query_models_validate_and_are_documented():
    app = Ember()

    @app.get("/filter")
    async def filt(f: Annotated[Filter, Query()]):
        return f.model_dump()

    @app.post("/search")  # a body method: the model still comes from the query string
    async def search(p: Annotated[Page, Query()], body: dict):
        return {"page": p.page, "body": body}

    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/filter?limit=5&tags=a&tags=b").json() == {
            "limit": 5, "tags": ["a", "b"]}
        assert client.get("/filter").json() == {"limit": 10, "tags": []}
        r = client.get("/filter?limit=500")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
        r = client.post("/search?page=3", json={"q": "x"})
        assert r.json() == {"page": 3, "body": {"q": "x"}}
        assert client.post("/search?page=z", json={}).status_code == 422
        spec = client.get("/openapi.json").json()
    params = spec["paths"]["/filter"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in params] == [("limit", "query"), ("tags", "query")]


class Open(BaseModel):
    model_config = {"extra": "allow"}
    param: str


class Closed(BaseModel):
    model_config = {"extra": "forbid"}
    param: str


def test_extra_allow_gets_other_keys_and_extra_forbid_refuses_them():
    # FastAPI's #14356: extras keep every value of a repeated key
    app = Ember(openapi_url=None)

    @app.get("/open")
    async def open_(m: Annotated[Open, Query()]):
        return m.model_dump()

    @app.get("/closed")
    async def closed(m: Annotated[Closed, Query()]):
        return m.model_dump()

    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/open?param=1&p2=4&p2=5&p3=x").json() == {
            "param": "1", "p2": ["4", "5"], "p3": "x"}
        r = client.get("/closed?param=1&x=2")
        assert r.status_code == 422
        assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [
            (["query", "x"], "extra_forbidden")]
        assert client.get("/closed?param=2").json() == {"param": "2"}
