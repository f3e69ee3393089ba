"""What the lifespan yields (a dict) starts each ``request.state``, as in Starlette/FastAPI;
the migration guide lists ``lifespan=`` as one to one (it was silently dropped)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest

from ember import Ember, Request
from ember.exceptions import ConfigError
from ember.testing import LiveServer


def test_lifespan_state_reaches_every_request_as_a_shallow_copy():
    events = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("start")
        yield {"db": "pool-1", "hits": []}
        events.append("stop")

    app = Ember(lifespan=lifespan, openapi_url=None)

    @app.get("/")
    async def index(request: Request):
        request.state.hits.append(1)  # shared object: the copy is shallow, as in Starlette
        seen = getattr(request.state, "mine", None)
        request.state.mine = "set by this request"
        return {"db": request.state.db, "seen": seen, "hits": len(request.state.hits)}

    with LiveServer(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/").json() == {"db": "pool-1", "seen": None, "hits": 1}
        # a request's own attributes never reach the next request
        assert client.get("/").json() == {"db": "pool-1", "seen": None, "hits": 2}
    assert events == ["start", "stop"]


def test_a_lifespan_yielding_nothing_leaves_state_empty():
    @asynccontextmanager
    async def lifespan(app):
        yield

    app = Ember(lifespan=lifespan, openapi_url=None)

    @app.get("/")
    async def index(request: Request):
        return {"db": request.state.get("db")}

    with app.test_client() as client:
        assert client.get("/").json() == {"db": None}


@pytest.mark.parametrize("value", [["db"], "db", 5])
def test_a_lifespan_yielding_something_else_is_a_clear_error(value):
    @asynccontextmanager
    async def lifespan(app):
        yield value

    app = Ember(lifespan=lifespan, openapi_url=None)
    with pytest.raises(ConfigError, match="yield a dict"), app.test_client():
        pass
