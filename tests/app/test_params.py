"""``Query``, ``Path``, ``Header``, ``Cookie``, ``Body``, ``Form``, ``File``: values, 422s, OpenAPI."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import msgspec
import pydantic
import pytest

from ember import Body, Cookie, Ember, File, Form, Header, Path, Query, UploadFile
from ember.exceptions import ConfigError


class Item(pydantic.BaseModel):
    name: str
    price: float


class Tag(msgspec.Struct):
    label: str


def _app() -> Ember:
    app = Ember()

    @app.get("/q")
    async def q(page: int = Query(1, ge=1, le=50), name: str | None = Query(None, alias="n",
                                                                             min_length=2),
                code: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = "ABC",
                tags: list[str] = Query([], max_length=3)) -> dict:
        return {"page": page, "name": name, "code": code, "tags": tags}

    @app.get("/a")
    async def annotated(page: Annotated[int, Query(ge=1)] = 1,
                        size: Annotated[int, Query(gt=0, lt=10)] = 5) -> dict:
        return {"page": page, "size": size}

    @app.get("/items/{item_id}")
    def item(item_id: int = Path(ge=1, description="the item")) -> dict:
        return {"item_id": item_id}

    @app.get("/h")
    async def headers(user_agent: str = Header(), x_count: int = Header(0, ge=0),
                      x_raw_name: str = Header("-", convert_underscores=False),
                      x_tag: list[str] = Header([]),
                      version: str = Header("1", alias="X-API-Version")) -> dict:
        return {"ua": user_agent, "count": x_count, "raw": x_raw_name, "tags": x_tag,
                "version": version}

    @app.get("/c")
    async def cookies(session_id: str | None = Cookie(None), n: int = Cookie(0)) -> dict:
        return {"session_id": session_id, "n": n}

    @app.post("/form")
    async def form(name: str = Form(min_length=2), age: int = Form(ge=0),
                   note: str = Form("")) -> dict:
        return {"name": name, "age": age, "note": note}

    @app.post("/upload")
    async def upload(file: UploadFile = File(), raw: bytes = File(None),
                     more: list[UploadFile] = File([]), title: str = Form("t")) -> dict:
        return {"name": file.filename, "data": (await file.read()).decode(),
                "raw": raw.decode() if raw else None, "more": [f.filename for f in more],
                "title": title}

    @app.post("/body")
    async def body(item: Item = Body(embed=True), importance: int = Body(ge=1)) -> dict:
        return {"item": item.model_dump(), "importance": importance}

    @app.post("/scalar")
    async def scalar(n: int = Body(gt=0)) -> dict:
        return {"n": n}

    @app.post("/struct")
    async def struct(tag: Tag = Body()) -> dict:
        return {"label": tag.label}

    @app.get("/hidden")
    async def hidden(secret: str = Query("", include_in_schema=False),
                     old: str = Query("", deprecated=True)) -> dict:
        return {"secret": secret, "old": old}
    return app


@pytest.fixture(scope="module")
def url() -> Any:
    from tests.conftest import RunningServer

    server = RunningServer(_app())
    yield server.url
    server.stop()


def _locs(r: httpx.Response) -> list[tuple[Any, ...]]:
    assert r.status_code == 422, r.text
    return [tuple(e["loc"]) for e in r.json()["detail"]]


def test_query_constraints_and_alias(url: str) -> None:
    assert httpx.get(url + "/q?page=3&n=bo&code=XYZ&tags=a&tags=b").json() == {
        "page": 3, "name": "bo", "code": "XYZ", "tags": ["a", "b"]}
    assert httpx.get(url + "/q").json() == {"page": 1, "name": None, "code": "ABC",
                                            "tags": []}
    r = httpx.get(url + "/q?page=0&n=b&code=abc&name=ignored")
    assert _locs(r) == [("query", "page"), ("query", "n"), ("query", "code")]
    msgs = [e["msg"] for e in r.json()["detail"]]
    assert msgs[0] == "Input should be greater than or equal to 1"
    assert msgs[1] == "String should have at least 2 characters"
    assert "pattern" in msgs[2]
    assert _locs(httpx.get(url + "/q?page=51")) == [("query", "page")]
    assert _locs(httpx.get(url + "/q?tags=abcd")) == [("query", "tags")]


@pytest.mark.parametrize("query", ["page=x", "page=1e400", "page=%00", "page=" + "9" * 5000,
                                   "size=0", "size=10", "size=-1", "page=1.5"])
def test_garbage_is_a_422_naming_the_field(url: str, query: str) -> None:
    r = httpx.get(url + "/a?" + query)
    assert _locs(r) == [("query", query.split("=")[0])]


def test_annotated_and_default_styles_agree(url: str) -> None:
    assert httpx.get(url + "/a?page=2&size=9").json() == {"page": 2, "size": 9}
    assert httpx.get(url + "/a").json() == {"page": 1, "size": 5}


def test_path(url: str) -> None:
    assert httpx.get(url + "/items/5").json() == {"item_id": 5}
    assert _locs(httpx.get(url + "/items/0")) == [("path", "item_id")]
    assert _locs(httpx.get(url + "/items/abc")) == [("path", "item_id")]


def test_headers(url: str) -> None:
    r = httpx.get(url + "/h", headers=[("user-agent", "t/1"), ("x-count", "3"),
                                       ("x_raw_name", "raw"), ("x-tag", "a"), ("x-tag", "b"),
                                       ("x-api-version", "2")])
    assert r.json() == {"ua": "t/1", "count": 3, "raw": "raw", "tags": ["a", "b"],
                        "version": "2"}
    r = httpx.get(url + "/h", headers={"x-count": "-1"})
    assert ("header", "x-count") in _locs(r)
    r = httpx.get(url + "/h", headers={"user-agent": "", "x-count": "lots"})
    assert _locs(r) == [("header", "x-count")]


def test_missing_header_is_a_422() -> None:
    app = Ember()

    @app.get("/need")
    async def need(x_token: str = Header()) -> str:
        return x_token

    client = app.test_client()
    assert client.get("/need", headers={"x-token": "t"}).text == "t"
    r = client.get("/need")
    assert r.json() == {"detail": [{"loc": ["header", "x-token"], "msg": "field required",
                                    "type": "missing"}]}


def test_cookies(url: str) -> None:
    assert httpx.get(url + "/c", headers={"cookie": "session_id=abc; n=4"}).json() == {
        "session_id": "abc", "n": 4}
    assert httpx.get(url + "/c").json() == {"session_id": None, "n": 0}
    assert _locs(httpx.get(url + "/c", headers={"cookie": "n=x"})) == [("cookie", "n")]


def test_form_fields(url: str) -> None:
    assert httpx.post(url + "/form", data={"name": "ada", "age": "36"}).json() == {
        "name": "ada", "age": 36, "note": ""}
    r = httpx.post(url + "/form", data={"name": "a", "age": "-1"})
    assert _locs(r) == [("body", "name"), ("body", "age")]
    assert _locs(httpx.post(url + "/form", data={})) == [("body", "name"), ("body", "age")]
    # a file where a text field is expected
    r = httpx.post(url + "/form", data={"age": "1"}, files={"name": ("n.txt", b"xx")})
    assert _locs(r) == [("body", "name")]
    # not a form at all: the form parser's clear 415
    r = httpx.post(url + "/form", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415


def test_files(url: str) -> None:
    r = httpx.post(url + "/upload", data={"title": "x"},
                   files=[("file", ("a.txt", b"hello", "text/plain")),
                          ("raw", ("r.bin", b"raw!")), ("more", ("m1", b"1")),
                          ("more", ("m2", b"2"))])
    assert r.json() == {"name": "a.txt", "data": "hello", "raw": "raw!", "more": ["m1", "m2"],
                        "title": "x"}
    assert _locs(httpx.post(url + "/upload", data={"file": "text"})) == [("body", "file")]
    # a browser's "no file chosen": an empty part without a name
    r = httpx.post(url + "/upload", files={"file": ("", b"")})
    assert _locs(r) == [("body", "file")]


def test_bodies(url: str) -> None:
    r = httpx.post(url + "/body", json={"item": {"name": "a", "price": 1}, "importance": 2})
    assert r.json() == {"item": {"name": "a", "price": 1.0}, "importance": 2}
    r = httpx.post(url + "/body", json={"item": {"name": "a"}, "importance": 0})
    assert _locs(r) == [("body", "item", "price"), ("body", "importance")]
    r = httpx.post(url + "/body", json=[1, 2])
    assert _locs(r) == [("body",), ("body",)]
    assert httpx.post(url + "/scalar", json=3).json() == {"n": 3}
    assert _locs(httpx.post(url + "/scalar", json=0)) == [("body",)]
    assert _locs(httpx.post(url + "/scalar", json="x")) == [("body",)]
    assert httpx.post(url + "/struct", json={"label": "l"}).json() == {"label": "l"}
    r = httpx.post(url + "/struct", content=b"{not json", headers={"content-type":
                                                                     "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_openapi() -> None:
    doc = _app().test_client().get("/openapi.json").json()
    paths = doc["paths"]
    q = {p["name"]: p for p in paths["/q"]["get"]["parameters"]}
    assert q["page"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 50, "default": 1}
    assert q["n"]["schema"]["minLength"] == 2 and not q["n"]["required"]
    assert q["code"]["schema"]["pattern"] == "^[A-Z]{3}$"
    assert q["tags"]["schema"]["type"] == "array" and q["tags"]["explode"] is True
    item = paths["/items/{item_id}"]["get"]["parameters"][0]
    assert item == {"name": "item_id", "in": "path", "required": True, "description":
                    "the item", "schema": {"type": "integer", "minimum": 1}}
    h = {p["name"]: p["in"] for p in paths["/h"]["get"]["parameters"]}
    assert h == {"user-agent": "header", "x-count": "header", "x_raw_name": "header",
                 "x-tag": "header", "x-api-version": "header"}
    c = {p["name"]: p["in"] for p in paths["/c"]["get"]["parameters"]}
    assert c == {"session_id": "cookie", "n": "cookie"}
    form = paths["/form"]["post"]["requestBody"]["content"]
    schema = form["application/x-www-form-urlencoded"]["schema"]
    assert schema["required"] == ["name", "age"]
    assert schema["properties"]["age"] == {"type": "integer", "minimum": 0}
    upload = paths["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"] == {"type": "string", "format": "binary"}
    assert upload["properties"]["more"]["type"] == "array"
    body = paths["/body"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"item", "importance"}
    assert body["required"] == ["item", "importance"]
    hidden = paths["/hidden"]["get"]["parameters"]
    assert [(p["name"], p.get("deprecated")) for p in hidden] == [("old", True)]
    assert "422" in paths["/q"]["get"]["responses"]


def test_configuration_mistakes_say_what_to_fix() -> None:
    app = Ember()
    with pytest.raises(ConfigError, match="pattern"):
        Query(pattern="([")
    with pytest.raises(ConfigError, match="ge= must be a finite number"):
        Query(ge="1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_length"):
        Query(min_length=-1)
    with pytest.raises(ConfigError, match="alias"):
        Header(alias="")
    with pytest.raises(ConfigError, match="not in the route's path"):
        app.get("/x")(lambda item_id=Path(): item_id)
    with pytest.raises(ConfigError, match="needs a request body"):
        app.get("/y")(lambda v=Body(): v)
    with pytest.raises(ConfigError, match="File\\(\\) parameter"):
        app.post("/z")(lambda f=File(): f)
    with pytest.raises(ConfigError, match="not both"):
        async def both(p: Annotated[int, Query(1)] = 2) -> None: ...
        app.get("/both")(both)
    with pytest.raises(ConfigError, match="cannot convert"):
        async def weird(p: set = Query()) -> None: ...
        app.get("/weird")(weird)
