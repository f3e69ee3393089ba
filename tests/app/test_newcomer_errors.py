"""A newcomer's first mistakes, over a real server: each error names its fix.

- a forgotten ``await`` on ``request.json()/body()/form()`` and a handler returning a
  coroutine say "did you forget `await`?" (log, and ``debug=True`` bodies);
- returned data with Decimal, datetime, date, time, UUID, Enum, sets, dataclasses,
  pydantic models and msgspec Structs is JSON; anything else is a ``TypeError`` naming
  the type and where it is (``$.items[3].price``), logged, a generic 500 to the client.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import gc
import logging
import uuid
import warnings

import httpx
import msgspec
import pydantic
import pytest

from ember import Ember, Request

HINT = "did you forget `await`?"


def _errors(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


async def _helper() -> dict:
    return {"ok": True}


def forgetful_app(debug: bool = False) -> Ember:
    app = Ember(debug=debug, openapi_url=None)

    @app.post("/json-subscript")
    async def json_subscript(request: Request):
        data = request.json()
        return {"x": data["x"]}

    @app.post("/json-get")
    async def json_get(request: Request):
        data = request.json()
        return {"x": data.get("x")}

    @app.post("/body-decode")
    async def body_decode(request: Request):
        raw = request.body()
        return raw.decode()

    @app.post("/body-len")
    async def body_len(request: Request):
        raw = request.body()
        return {"n": len(raw)}

    @app.post("/form")
    async def form(request: Request):
        fields = request.form()
        return {"f": fields["f"]}

    @app.post("/json-in-dict")
    async def json_in_dict(request: Request):
        return {"got": request.json()}

    @app.get("/returns-coroutine")
    async def returns_coroutine():
        return _helper()

    @app.get("/def-returns-coroutine")
    def def_returns_coroutine():
        return _helper()

    return app


@pytest.mark.parametrize(("route", "call"), [
    ("/json-subscript", "request.json()"), ("/json-get", "request.json()"),
    ("/body-decode", "request.body()"), ("/body-len", "request.body()"),
    ("/form", "request.form()"),
])
def test_a_forgotten_await_names_the_fix(serve, caplog, route, call):
    url = serve(forgetful_app())
    with caplog.at_level(logging.ERROR, logger="ember"):
        r = httpx.post(url + route, data={"f": "1"} if route == "/form" else None,
                       content=None if route == "/form" else b'{"x": 1}')
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}  # nothing leaks to the client
    log = _errors(caplog)
    assert HINT in log, log
    variable = call.split(".")[1].split("(")[0]
    assert f"= await {call}" in log, log
    assert f"Request.{variable}()" in log, log


def test_a_forgotten_await_inside_returned_data_names_the_fix(serve, caplog):
    url = serve(forgetful_app())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed: no "never awaited"
        with caplog.at_level(logging.ERROR, logger="ember"):
            r = httpx.post(url + "/json-in-dict", content=b'{"x": 1}')
        gc.collect()
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
    log = _errors(caplog)
    assert "$.got is the coroutine Request.json()" in log and "forget `await`" in log, log


@pytest.mark.parametrize("route", ["/returns-coroutine", "/def-returns-coroutine"])
def test_a_handler_returning_a_coroutine_names_the_fix(serve, caplog, route):
    url = serve(forgetful_app())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed: no "never awaited"
        with caplog.at_level(logging.ERROR, logger="ember"):
            r = httpx.get(url + route)
        gc.collect()
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
    log = _errors(caplog)
    assert "returned the coroutine _helper()" in log and HINT in log, log
    assert "return await _helper()" in log


def test_debug_bodies_carry_the_hint(serve):
    url = serve(forgetful_app(debug=True))
    r = httpx.post(url + "/json-subscript", content=b'{"x": 1}')
    assert r.status_code == 500 and HINT in r.text and "`data` is the coroutine" in r.text


def test_other_type_errors_are_left_as_they_are(serve, caplog):
    app = Ember(openapi_url=None)

    @app.get("/plain")
    async def plain():
        return {"x": None + 1}

    url = serve(app)
    with caplog.at_level(logging.ERROR, logger="ember"):
        assert httpx.get(url + "/plain").status_code == 500
    log = _errors(caplog)
    assert "unsupported operand" in log and HINT not in log


# -- what returned data can hold ----------------------------------------------------------------
class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Line:
    sku: str
    price: decimal.Decimal
    tags: frozenset[str]


class Customer(pydantic.BaseModel):
    name: str
    since: datetime.date


class Point(msgspec.Struct):
    x: int
    at: datetime.time


def test_common_python_values_serialise(serve):
    app = Ember(openapi_url=None)
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")

    @app.get("/order")
    async def order():
        return {
            "total": decimal.Decimal("12.50"), "tiny": decimal.Decimal("1E-7"),
            "nan": decimal.Decimal("NaN"),
            "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "day": datetime.date(2026, 1, 2), "time": datetime.time(3, 4, 5),
            "id": uid, "color": Color.RED, "level": Level.HIGH, "ids": {7},
            "line": Line("a", decimal.Decimal("1.10"), frozenset({"x"})),
            "customer": Customer(name="Ann", since=datetime.date(2020, 5, 6)),
            "point": Point(1, datetime.time(1)), "big": 2**70,
        }

    url = serve(app)
    r = httpx.get(url + "/order")
    assert r.status_code == 200, r.text
    assert b'"total":12.50' in r.content  # the exact decimal, as a JSON number
    assert r.json() == {
        "total": 12.5, "tiny": 1e-7, "nan": None, "at": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02", "time": "03:04:05", "id": str(uid), "color": "red",
        "level": 3, "ids": [7], "line": {"sku": "a", "price": 1.1, "tags": ["x"]},
        "customer": {"name": "Ann", "since": "2020-05-06"},
        "point": {"x": 1, "at": "01:00:00"}, "big": 2**70}


class Opaque:
    pass


@pytest.mark.parametrize(("data", "where"), [
    ({"items": [{"price": 1}, {"price": 2}, {"price": 3}, {"price": Opaque()}]},
     "$.items[3].price"),
    ([Line("a", Opaque(), frozenset())], "$[0].price"),  # type: ignore[arg-type]
    ({"big": 2**70, "x": {"y z": [Opaque()]}}, "$.x['y z'][0]"),  # the exact-int path too
    ({(1, 2): "tuple key"}, "$[(1, 2)] (the key)"),
])
def test_an_unserialisable_value_is_named_with_its_path(serve, caplog, data, where):
    app = Ember(openapi_url=None)

    @app.get("/bad")
    async def bad():
        return data

    url = serve(app)
    with caplog.at_level(logging.ERROR, logger="ember"):
        r = httpx.get(url + "/bad")
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
    log = _errors(caplog)
    assert "TypeError" in log and f" at {where} is not JSON serializable" in log, log
    assert "Opaque" in log or "tuple" in log
