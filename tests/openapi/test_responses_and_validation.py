"""Response options, exact big integers and the validation rules the document states.

All over real sockets (RunningServer + httpx).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Annotated, Literal

import httpx
import msgspec
import pydantic
import pytest

from ember import Ember, HTTPException, Request
from tests.conftest import RunningServer

BIG = 18446744073709551616  # 2**64: one past what orjson encodes
HUGE = 99999999999999999999


@dataclasses.dataclass
class Note:
    title: str
    n: int


class Secret(msgspec.Struct):
    name: str
    password: str


class Public(msgspec.Struct):
    name: str


class PSecret(pydantic.BaseModel):
    name: str
    password: str


class PPublic(pydantic.BaseModel):
    name: str


class Item(pydantic.BaseModel):
    count: int
    ratio: float = 0.0


class SItem(msgspec.Struct):
    count: int
    ratio: float = 0.0


def _app() -> Ember:
    app = Ember()
    notes: list[Note] = []

    @app.get("/users/{user_id:int}")
    async def user(user_id: int):
        return {"id": user_id}

    @app.get("/stats")
    async def stats(window: int = 60):
        return {"window": window}

    @app.post("/echo")
    async def echo(request: Request):
        return await request.json()

    @app.post("/dict")
    async def as_dict(payload: dict):
        return payload

    @app.post("/notes", status_code=201)
    async def add(note: Note) -> Note:
        notes.append(note)
        return note

    @app.get("/notes")
    async def all_notes() -> list[Note]:
        return notes

    @app.get("/int")
    async def an_int() -> int:
        return 7

    @app.get("/float")
    async def a_float() -> float:
        return 1.5

    @app.get("/bool")
    async def a_bool() -> bool:
        return False

    @app.post("/created", status_code=201)
    async def created() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/accepted", status_code=202)
    async def accepted() -> None:
        return None

    @app.post("/override", status_code=201)
    async def override():
        return {"ok": True}, 200

    @app.get("/nothing")
    async def nothing() -> None:
        pass

    @app.get("/secret", response_model=Public)
    async def secret() -> Secret:
        return Secret("ann", "hunter2")

    @app.get("/psecret", response_model=PPublic)
    async def psecret() -> PSecret:
        return PSecret(name="bob", password="hunter2")

    @app.get("/dsecret", response_model=Public)
    async def dsecret():
        return {"name": "cy", "password": "hunter2"}

    @app.get("/badshape", response_model=Public)
    async def badshape():
        return {"nom": "x"}

    @app.get("/passthrough", response_model=Public)
    async def passthrough():
        raise HTTPException(404, "gone")

    @app.post("/pitem")
    async def pitem(item: Item) -> Item:
        return item

    @app.post("/sitem")
    async def sitem(item: SItem) -> SItem:
        return item

    @app.get("/limited/{n:int}")
    async def limited(n: Annotated[int, msgspec.Meta(ge=1, le=10)],
                      q: Annotated[int, pydantic.Field(ge=0, le=5)] = 0):
        return {"n": n, "q": q}

    @app.get("/f/{x:float}")
    async def f(x: float):
        return {"x": x}

    @app.get("/u/{x:uuid}")
    async def u(x: uuid.UUID):
        return {"x": str(x)}

    @app.get("/annotated/{x}")
    async def annotated(x: int):
        return {"x": x}

    @app.get("/ratio")
    async def ratio(r: float = 1.0):
        return {"r": r}

    @app.get("/metric")
    async def metric(m: Literal[1, 2, "all"] = "all"):
        return {"m": m}

    return app


@pytest.fixture(scope="module")
def url():
    server = RunningServer(_app())
    yield server.url
    server.stop()


def _get(url, path, **kw):
    return httpx.get(url + path, timeout=10, **kw)


def _post(url, path, **kw):
    return httpx.post(url + path, timeout=10, **kw)


# -- big integers ----------------------------------------------------------------


def test_big_path_int_is_exact(url):
    r = _get(url, f"/users/{HUGE}")
    assert r.status_code == 200
    assert r.text == f'{{"id":{HUGE}}}'


def test_big_query_int_is_exact(url):
    r = _get(url, f"/stats?window={BIG}")
    assert r.status_code == 200 and json.loads(r.text) == {"window": BIG}


@pytest.mark.parametrize("body", [BIG, -BIG * 3, [1, BIG], {"a": {"b": BIG}}])
def test_request_json_and_echo_keep_big_ints(url, body):
    r = _post(url, "/echo", content=json.dumps(body))
    assert r.status_code == 200
    assert json.loads(r.text) == body  # json.loads keeps ints exact


def test_dict_body_with_big_int(url):
    r = _post(url, "/dict", content=f'{{"a":{BIG},"f":1.5}}')
    assert r.status_code == 200 and r.text == f'{{"a":{BIG},"f":1.5}}'


def test_dataclass_body_with_big_int_is_stored_and_listed(url):
    r = _post(url, "/notes", json={"title": "t", "n": BIG})
    assert r.status_code == 201 and json.loads(r.text)["n"] == BIG
    listed = _get(url, "/notes")
    assert listed.status_code == 200 and json.loads(listed.text)[-1]["n"] == BIG


def test_integers_past_pythons_digit_limit_are_client_errors(url):
    assert _get(url, "/users/" + "9" * 5000).status_code == 404
    assert _get(url, "/stats?window=" + "9" * 5000).status_code == 422
    assert _post(url, "/echo", content="[" + "9" * 5000 + "]").status_code == 400


# -- any JSON value, status codes, response_model ------------------------------


@pytest.mark.parametrize("path, text", [("/int", "7"), ("/float", "1.5"), ("/bool", "false")])
def test_scalar_returns_are_json(url, path, text):
    r = _get(url, path)
    assert r.status_code == 200 and r.text == text
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("body", ["1", "1.5", "true", "null", '"text"'])
def test_echo_of_any_json_value_is_never_a_500(url, body):
    r = _post(url, "/echo", content=body)
    assert r.status_code in (200, 204), r.text


def test_status_code_option(url):
    assert _post(url, "/created").status_code == 201
    r = _post(url, "/accepted")
    assert r.status_code == 202 and r.content == b""
    assert _post(url, "/override").status_code == 200  # a returned (body, status) wins
    assert _get(url, "/nothing").status_code == 204


@pytest.mark.parametrize("path, name", [("/secret", "ann"), ("/psecret", "bob"),
                                        ("/dsecret", "cy")])
def test_response_model_drops_other_fields(url, path, name):
    r = _get(url, path)
    assert r.status_code == 200 and r.json() == {"name": name}
    assert "hunter2" not in r.text


def test_response_model_mismatch_is_a_server_error_without_the_data(url):
    r = _get(url, "/badshape")
    assert r.status_code == 500 and "nom" not in r.text


def test_response_model_leaves_raised_errors_alone(url):
    assert _get(url, "/passthrough").status_code == 404


# -- the validation rules the document states ------------------------------------


@pytest.mark.parametrize("path", ["/pitem", "/sitem"])
@pytest.mark.parametrize("body, status, count", [
    ('{"count": 5}', 200, 5),
    ('{"count": 5.0}', 200, 5),          # JSON Schema: 5.0 is an integer
    ('{"count": 5e0, "ratio": 2}', 200, 5),
    ('{"count": 5.5}', 422, None),
    ('{"count": true}', 422, None),      # a boolean is not an integer
    ('{"count": "5"}', 422, None),       # nor is a string
    (f'{{"count": {BIG}}}', 200, BIG),
])
def test_whole_number_floats_rule(url, path, body, status, count):
    r = _post(url, path, content=body)
    assert r.status_code == status, r.text
    if count is not None:
        assert json.loads(r.text)["count"] == count
        assert isinstance(json.loads(r.text)["count"], int)


@pytest.mark.parametrize("query", ["1_000", " 5", "5 ", "+5", "٣", "0x10", "", "5.5"])
def test_query_int_takes_decimal_digits_only(url, query):
    r = _get(url, "/stats", params={"window": query})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "window"]


@pytest.mark.parametrize("query", ["nan", "inf", "-Infinity", "1e400", "1_0", "0x1"])
def test_query_float_refuses_non_numbers(url, query):
    assert _get(url, "/ratio", params={"r": query}).status_code == 422


def test_query_float_accepts_json_numbers(url):
    assert _get(url, "/ratio", params={"r": "-1.5e3"}).json() == {"r": -1500.0}


@pytest.mark.parametrize("path, status", [
    ("/limited/5", 200), ("/limited/0", 422), ("/limited/11", 422),
    ("/limited/5?q=6", 422), ("/limited/5?q=-1", 422), ("/limited/5?q=5", 200),
])
def test_annotated_constraints_enforced(url, path, status):
    assert _get(url, path).status_code == status


@pytest.mark.parametrize("path", ["/users/x", "/users/1.5", "/f/abc", "/f/nan", "/u/not-a-uuid",
                                  "/users/", "/u/123"])
def test_malformed_typed_path_params_are_404(url, path):
    r = _get(url, path)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_untyped_path_param_with_an_annotation_is_validated_422(url):
    r = _get(url, "/annotated/abc")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "x"]
    assert _get(url, "/annotated/12").json() == {"x": 12}


# -- what Ember keeps doing better than FastAPI on the same inputs (issue #14) ----------


def test_literal_mixing_ints_and_strings_takes_the_int(url):
    assert _get(url, "/metric?m=1").json() == {"m": 1}
    assert _get(url, "/metric?m=all").json() == {"m": "all"}
    assert _get(url, "/metric?m=3").status_code == 422


def test_options_is_answered_with_allow(url):
    r = httpx.options(url + "/notes", timeout=10)
    assert r.status_code == 204
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}


def test_non_utf8_body_is_a_422(url):
    r = _post(url, "/sitem", content=b'{"count": "\xff"}',
              headers={"content-type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize("path", ["/pitem", "/sitem"])
@pytest.mark.parametrize("body", ["[" * 5000 + "]" * 5000, "[" * 900 + "1.0" + "]" * 900,
                                  # deeper than orjson writes (255), shallow enough to walk
                                  # on any interpreter (3.12 found it: a 500)
                                  "[" * 300 + "1.0" + "]" * 300,
                                  '{"count": 1e999}', '{"count": -0.0}', "{" * 3])
def test_garbage_bodies_are_client_errors(url, path, body):
    r = _post(url, path, content=body)
    assert r.status_code in (200, 422), r.text  # -0.0 is the integer 0
