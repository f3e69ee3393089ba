"""Hostile bodies and queries: every decode path answers 4xx, never 500 (issue #10, fault 7).

The measured fault: JSON nested 100,000 deep into a ``body: dict`` parameter was a 500
(RecursionError from msgspec).  Here every decode path — ``request.json()``, ``dict`` /
``list`` / generic bodies, ``msgspec.Struct``, pydantic and dataclass bodies, forms
(urlencoded and multipart) and query models / typed query and path parameters — gets
deep nesting, then Hypothesis-generated garbage.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember import Ember, Request


class Struct(msgspec.Struct):
    a: int
    tags: list[str] = []
    meta: dict[str, float] = {}


class Model(pydantic.BaseModel):
    a: int
    tags: list[str] = []
    meta: dict[str, float] = {}


@dataclasses.dataclass
class Data:
    a: int
    tags: list[str] = dataclasses.field(default_factory=list)


class Colour(enum.Enum):
    red = "red"
    blue = "blue"


class QModel(pydantic.BaseModel):
    page: int = 1
    ids: list[int] = []
    q: str = ""


class QStruct(msgspec.Struct):
    page: int = 1
    ratio: float = 0.5
    flag: bool = False


@dataclasses.dataclass
class QData:
    page: int = 1
    name: str = "x"


def make_app() -> Ember:
    app = Ember()
    ok = {"ok": True}

    @app.post("/dict")
    async def body_dict(body: dict) -> dict:
        return ok

    @app.post("/list")
    async def body_list(body: list) -> dict:
        return ok

    @app.post("/generic")
    async def body_generic(body: dict[str, list[int]]) -> dict:
        return ok

    @app.post("/struct")
    async def body_struct(body: Struct) -> dict:
        return ok

    @app.post("/pydantic")
    async def body_pydantic(body: Model) -> dict:
        return ok

    @app.post("/dataclass")
    async def body_dataclass(body: Data) -> dict:
        return ok

    @app.post("/json")
    async def raw_json(request: Request) -> dict:
        await request.json()
        return ok

    @app.post("/form")
    async def form(request: Request) -> dict:
        data = await request.form()
        for value in data.values():
            if hasattr(value, "read"):
                await value.read()
        return ok

    @app.get("/query-model")
    async def query_model(m: QModel) -> dict:
        return ok

    @app.get("/query-struct")
    async def query_struct(m: QStruct) -> dict:
        return ok

    @app.get("/query-dataclass")
    async def query_dataclass(m: QData) -> dict:
        return ok

    @app.get("/scalars")
    async def scalars(i: int = 0, f: float = 0.0, b: bool = False, u: uuid.UUID | None = None,
                      c: Colour = Colour.red, lit: Literal["a", "b"] = "a",
                      many: list[int] | None = None) -> dict:
        return ok

    @app.get("/path/{n:int}/{x:float}/{u:uuid}/{rest:path}")
    async def path(n: int, x: float, u: uuid.UUID, rest: str) -> dict:
        return ok

    return app


BODY_ROUTES = ["/dict", "/list", "/generic", "/struct", "/pydantic", "/dataclass", "/json",
               "/form"]
QUERY_ROUTES = ["/query-model", "/query-struct", "/query-dataclass", "/scalars"]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with make_app().test_client() as c:
        yield c


def check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:  # a reason, not an empty error
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["detail"], response.text
        else:  # the protocol's own refusals (414, 431, ...) are plain text
            assert response.text.strip()


DEPTH = 100_000


@pytest.mark.parametrize("body", [
    b"[" * DEPTH + b"]" * DEPTH,
    b"{\"a\":" * DEPTH + b"1" + b"}" * DEPTH,
    b'{"a": 1, "tags": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    b'{"a": 1, "meta": ' + b'{"k":' * DEPTH + b"1" + b"}" * (DEPTH + 1),
    b"[" * DEPTH,  # unterminated
    b'{"a": [' + b'{"b": [' * (DEPTH // 2),
], ids=["arrays", "objects", "in-field", "in-dict-field", "unterminated", "mixed"])
@pytest.mark.parametrize("path", BODY_ROUTES[:-1])
def test_deep_nesting(client: Any, path: str, body: bytes) -> None:
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    check(r)
    assert r.status_code in (400, 422)


def test_deep_nesting_over_a_real_socket(serve: Any) -> None:
    import httpx

    base = serve(make_app())
    r = httpx.post(base + "/dict", content=b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and "nested too deeply" in r.text
    assert httpx.post(base + "/dict", json={"fine": [1]}).status_code == 200


def test_deep_nesting_in_forms_and_queries(client: Any) -> None:
    deep = "a" + "[x]" * 10_000
    check(client.post("/form", content=f"{deep}=1".encode(),
                      headers={"content-type": "application/x-www-form-urlencoded"}))
    check(client.get("/query-model?" + "&".join(["ids=1"] * 5000)))
    check(client.get("/query-model?ids=" + "9" * 5000))
    check(client.get("/scalars?i=" + "9" * 5000 + "&f=1e999999&u=" + "0" * 40))


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@st.composite
def json_ish(draw: Any) -> bytes:
    """Valid JSON of the right or wrong shape, or it cut, spliced or deeply nested."""
    value = draw(JSON | st.fixed_dictionaries(
        {"a": JSON_LEAVES | JSON}, optional={"tags": JSON, "meta": JSON}))
    raw = msgspec.json.encode(value) if not _has_nan(value) else b"{}"
    mode = draw(st.sampled_from(["plain", "cut", "splice", "deep", "bytes"]))
    if mode == "cut" and raw:
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif mode == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=8)) + raw[at:]
    elif mode == "deep":
        n = draw(st.integers(500, 3_000))
        opener = draw(st.sampled_from([b"[", b'{"a":', b'{"a":1,"tags":[']))
        raw = opener * n + raw
    elif mode == "bytes":
        raw = draw(st.binary(max_size=64))
    return raw


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-16", "text/plain", "",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
    "multipart/form-data", "multipart/form-data; boundary=", "application/json; x=\"",
])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=json_ish(), ctype=CONTENT_TYPES)
def test_fuzz_body_decoders(client: Any, body: bytes, ctype: str) -> None:
    headers = {"content-type": ctype} if ctype else {}
    for path in BODY_ROUTES:
        check(client.post(path, content=body, headers=headers))


@st.composite
def multipart(draw: Any) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["b", "----x", "a" * 70, "with space"]))
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.text(max_size=5))
        disposition = draw(st.sampled_from([
            f'form-data; name="{name}"', f'form-data; name="{name}"; filename="../../x"',
            "form-data", "attachment", f"form-data; name*=UTF-8''{name}", ""]))
        payload = draw(st.binary(max_size=40))
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
                     + payload + b"\r\n")
    tail = draw(st.sampled_from([f"--{boundary}--\r\n".encode(), b"", b"--", b"\r\n"]))
    body = b"".join(parts) + tail
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=10)) + body[at:]
    return body, f"multipart/form-data; boundary={boundary}"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=multipart() | st.tuples(st.binary(max_size=80),
                                     st.just("application/x-www-form-urlencoded")))
def test_fuzz_forms(client: Any, data: tuple[bytes, str]) -> None:
    body, ctype = data
    check(client.post("/form", content=body, headers={"content-type": ctype}))


QUERY_KEYS = st.sampled_from(["page", "ids", "q", "ratio", "flag", "name", "i", "f", "b", "u",
                              "c", "lit", "many", "", "x"])
QUERY_VALUES = st.text(max_size=12) | st.sampled_from(
    ["1", "-1", "1e309", "nan", "inf", "true", "yes", "0x10", "١٢", "1_000", "9" * 400,
     "red", "a", "00000000-0000-0000-0000-000000000000", "%zz", "%00", "[]"])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=6),
       raw=st.binary(max_size=30))
def test_fuzz_query_decoders(client: Any, pairs: list[tuple[str, str]], raw: bytes) -> None:
    from urllib.parse import quote, urlencode

    query = urlencode(pairs)
    for path in QUERY_ROUTES:
        check(client.get(f"{path}?{query}"))
        check(client.get(f"{path}?{quote(raw, safe='=&%')}"))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(segments=st.lists(QUERY_VALUES, min_size=4, max_size=6))
def test_fuzz_path_parameters(client: Any, segments: list[str]) -> None:
    from urllib.parse import quote

    check(client.get("/path/" + "/".join(quote(s, safe="") or "x" for s in segments)))


MANY = 20_000


@pytest.mark.parametrize("name,body,ctype,status", [
    ("many urlencoded fields", "&".join(f"f{i}=1" for i in range(MANY)).encode(),
     "application/x-www-form-urlencoded", 413),
    ("many multipart fields", b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"'
                                       b"\r\n\r\n1\r\n" % i for i in range(MANY)) + b"--b--\r\n",
     "multipart/form-data; boundary=b", 413),
    ("many files", b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"; '
                            b'filename="a"\r\n\r\n1\r\n' % i for i in range(5000)) + b"--b--\r\n",
     "multipart/form-data; boundary=b", 413),
    ("huge part header", b'--b\r\nContent-Disposition: form-data; name="' + b"n" * 200_000
     + b'"\r\n\r\n1\r\n--b--\r\n', "multipart/form-data; boundary=b", 413),
    ("big field without filename", b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n'
     + b"x" * 900_000 + b"\r\n--b--\r\n", "multipart/form-data; boundary=b", 200),
])
def test_form_resource_limits(serve: Any, name: str, body: bytes, ctype: str,
                              status: int) -> None:
    """Peers' kinds (Starlette's multipart advisories): field/file counts, part headers,
    big fields — bounded answers over a real socket, never a 500 or unbounded memory."""
    import httpx

    base = serve(make_app())
    r = httpx.post(base + "/form", content=body, headers={"content-type": ctype}, timeout=60)
    assert r.status_code == status, (name, r.text[:200])
