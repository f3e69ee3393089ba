"""The OpenAPI document: exact types, statuses, media types and names, validated."""

from __future__ import annotations

import dataclasses
import datetime
import types
from typing import Annotated, Any

import httpx
import msgspec
import pydantic
import pytest
from openapi_spec_validator import validate

from ember import Blueprint, Ember, Request
from ember.openapi import build_openapi
from tests.conftest import RunningServer


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    from tests.openapi.fuzz_app import app

    document = build_openapi(app)
    validate(document)
    return document


def _op(doc, path, method="get"):
    return doc["paths"][path][method]


def _component(doc, ref):
    return doc["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def _params(op):
    return {p["name"]: p for p in op.get("parameters", ())}


def test_served_document_validates():
    from tests.openapi.fuzz_app import app

    server = RunningServer(app)
    try:
        r = httpx.get(f"{server.url}/openapi.json", timeout=10)
    finally:
        server.stop()
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    validate(r.json())
    assert r.json()["openapi"] == "3.1.0"


def test_types_are_exact(doc):
    note_in = _component(doc, _op(doc, "/notes", "post")["requestBody"]["content"][
        "application/json"]["schema"])
    props = note_in["properties"]
    assert props["counts"] == {"type": "object", "additionalProperties": {"type": "integer"},
                               "default": {}}
    aware, local = props["due"]["anyOf"][0]["anyOf"]  # datetime | None
    assert props["due"]["anyOf"][1] == {"type": "null"}
    assert aware["type"] == "string" and aware["format"] == "date-time" and "pattern" in aware
    assert local["type"] == "string" and "format" not in local
    assert props["title"]["minLength"] == 1 and props["title"]["maxLength"] == 80
    assert note_in["required"] == ["title"]
    place = _component(doc, _op(doc, "/places", "post")["requestBody"]["content"][
        "application/json"]["schema"])
    where = place["properties"]["where"]
    assert where["prefixItems"] == [{"type": "number"}, {"type": "number"}]
    assert where["minItems"] == where["maxItems"] == 2
    assert place["properties"]["rating"]["minimum"] == 1
    assert place["properties"]["rating"]["maximum"] == 5
    account = _component(doc, _op(doc, "/accounts", "post")["requestBody"]["content"][
        "application/json"]["schema"])
    assert account["properties"]["age"]["minimum"] == 0
    assert account["properties"]["age"]["maximum"] == 150


def test_query_parameters_scalars_lists_and_constraints(doc):
    params = _params(_op(doc, "/stats"))
    assert params["window"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 3600,
                                          "default": 60}
    assert params["window"]["required"] is False
    assert params["metric"]["schema"] == {"enum": [1, 2, "all"], "default": "all"}
    assert params["ratio"]["schema"] == {"type": "number", "default": 1.0}
    assert params["verbose"]["schema"] == {"type": "boolean", "default": False}
    assert params["ids"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert params["ids"]["explode"] is True


@pytest.mark.parametrize("path, names", [
    ("/notes", {"limit", "offset"}),              # dataclass filled from the query
    ("/places", {"color", "min_rating", "near"}),  # msgspec Struct + a scalar
    ("/search", {"q", "exact"}),                   # pydantic model
])
def test_query_models_are_expanded(doc, path, names):
    params = _params(_op(doc, path))
    assert set(params) == names
    assert all(p["in"] == "query" for p in params.values())


def test_query_model_constraints(doc):
    params = _params(_op(doc, "/notes"))
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                         "default": 10}
    assert _params(_op(doc, "/search"))["q"]["schema"]["maxLength"] == 50


def test_path_parameters_and_the_404_rule(doc):
    op = _op(doc, "/notes/{note_id}")
    assert _params(op)["note_id"] == {"name": "note_id", "in": "path", "required": True,
                                      "schema": {"type": "integer"}}
    assert "not a valid int" in op["responses"]["404"]["description"]
    assert _params(_op(doc, "/users/{user_id}"))["user_id"]["schema"]["format"] == "uuid"
    assert "not a valid uuid" in _op(doc, "/users/{user_id}")["responses"]["404"]["description"]
    assert _params(_op(doc, "/scale/{factor}"))["factor"]["schema"] == {"type": "number"}
    # an untyped template parameter is never a 404 by type
    assert "404" not in _op(doc, "/hello/{name}")["responses"]


def test_statuses_and_media_types(doc):
    assert set(_op(doc, "/notes", "post")["responses"]) == {"201", "422"}
    delete = _op(doc, "/notes/{note_id}", "delete")["responses"]
    assert "content" not in delete["204"] and "200" not in delete
    assert "201" in _op(doc, "/places", "post")["responses"]  # `return body, 201`
    page = _op(doc, "/page")["responses"]["200"]["content"]
    assert page == {"text/html": {"schema": {"type": "string"}}}
    assert "text/event-stream" in _op(doc, "/events")["responses"]["200"]["content"]
    assert "text/plain" in _op(doc, "/hello/{name}")["responses"]["200"]["content"]
    assert "text/plain" in _op(doc, "/files/{name}")["responses"]["200"]["content"]
    listed = _op(doc, "/notes")["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["type"] == "array" and "$ref" in listed["items"]
    stats = _op(doc, "/big")["responses"]["200"]["content"]["application/json"]["schema"]
    assert stats == {"type": "object", "additionalProperties": {"type": "integer"}}
    now = _op(doc, "/now")["responses"]["200"]["content"]["application/json"]["schema"]
    assert now["additionalProperties"]["anyOf"][0]["format"] == "date-time"


def test_validation_errors_documented_wherever_input_is_validated(doc):
    for path, method in [("/notes", "post"), ("/notes", "get"), ("/stats", "get"),
                         ("/search", "get"), ("/counts", "post")]:
        resp = _op(doc, path, method)["responses"]["422"]
        ref = resp["content"]["application/json"]["schema"]
        assert _component(doc, ref)["properties"]["detail"]["type"] == "array"
    assert "422" not in _op(doc, "/page")["responses"]


def test_declared_and_raised_errors(doc):
    missing = _op(doc, "/notes/{note_id}")["responses"]["404"]
    assert _component(doc, missing["content"]["application/json"]["schema"])["title"] == \
        "Missing"
    assert _op(doc, "/flags/{flag}", "put")["responses"]["400"]["description"] == "bad flag"


def test_response_model_documents_the_public_shape(doc):
    resp = _op(doc, "/accounts", "post")["responses"]["201"]
    schema = _component(doc, resp["content"]["application/json"]["schema"])
    assert set(schema["properties"]) == {"name"}


def test_reads_of_the_request_body_are_documented(doc):
    echo = _op(doc, "/echo", "post")
    assert echo["requestBody"]["content"] == {"application/json": {"schema": {}}}
    assert "400" in echo["responses"]
    # unknown return type: JSON, text or nothing, as to_response can answer
    assert {"200", "204"} <= set(echo["responses"])


def test_operation_ids_unique_and_blueprints_qualified(doc):
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert _op(doc, "/notes")["operationId"] != _op(doc, "/admin/notes")["operationId"]


def _model(module: str, **fields: Any) -> type:
    cls = dataclasses.make_dataclass("User", list(fields.items()))
    cls.__module__ = module
    return cls


def test_same_named_models_from_two_modules_get_two_components():
    billing = _model("billing.models", plan=str)
    auth = _model("auth.models", login=str, admin=bool)
    app = Ember()

    @app.post("/billing")
    async def b(user: billing) -> billing:  # type: ignore[valid-type]
        return user

    @app.post("/auth")
    async def a(user: auth) -> auth:  # type: ignore[valid-type]
        return user

    doc = build_openapi(app)
    validate(doc)
    names = set(doc["components"]["schemas"])
    assert {"billing.models.User", "auth.models.User"} <= names
    b_ref = _op(doc, "/billing", "post")["requestBody"]["content"]["application/json"]["schema"]
    assert "plan" in _component(doc, b_ref)["properties"]


def test_same_named_pydantic_and_dataclass_models_do_not_collide():
    mod = types.ModuleType("other")
    exec("import pydantic\nclass User(pydantic.BaseModel):\n    email: str\n", mod.__dict__)
    plain = _model("plain.models", nick=str)
    app = Ember()

    @app.post("/p")
    async def p(user: mod.User) -> dict[str, str]:  # type: ignore[name-defined]
        return {}

    @app.post("/d")
    async def d(user: plain) -> dict[str, str]:  # type: ignore[valid-type]
        return {}

    doc = build_openapi(app)
    validate(doc)
    p_ref = _op(doc, "/p", "post")["requestBody"]["content"]["application/json"]["schema"]
    d_ref = _op(doc, "/d", "post")["requestBody"]["content"]["application/json"]["schema"]
    assert p_ref != d_ref
    assert "email" in _component(doc, p_ref)["properties"]
    assert "nick" in _component(doc, d_ref)["properties"]


def test_same_handler_name_in_app_and_blueprint_and_operation_id_option():
    app = Ember()
    bp = Blueprint()

    @app.get("/users")
    async def list_users() -> list[str]:
        return []

    @bp.get("/users")
    async def list_users_(request: Request) -> list[str]:
        return []
    list_users_.__name__ = "list_users"
    bp.registrations[-1] = ("/users", ("GET",), list_users_, bp.registrations[-1][3])
    app.add_blueprint(bp, "/admin")

    @app.get("/x", operation_id="getX")
    async def x() -> int:
        return 1

    doc = build_openapi(app)
    validate(doc)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 3
    assert "getX" in ids


def test_decorator_doc_options_and_openapi_extra():
    app = Ember()

    @app.get("/a", summary="Short", description="Long text", tags=["t"], deprecated=True,
             openapi_extra={"x-rate": 5, "responses": {"200": {"headers": {
                 "X-Trace": {"schema": {"type": "string"}}}}}})
    async def a() -> dict[str, int]:
        """Docstring ignored for the summary."""
        return {}

    @app.get("/hidden", include_in_schema=False)
    async def hidden() -> int:
        return 1

    @app.post("/b", responses={409: {"description": "conflict", "model": dict[str, str]},
                               "default": {"description": "anything else"}})
    async def b(request: Request) -> None:
        """First line.

        More detail."""

    doc = build_openapi(app)
    validate(doc)
    a_op = _op(doc, "/a")
    assert (a_op["summary"], a_op["description"], a_op["tags"], a_op["deprecated"]) == (
        "Short", "Long text", ["t"], True)
    assert a_op["x-rate"] == 5
    assert a_op["responses"]["200"]["headers"]["X-Trace"]["schema"] == {"type": "string"}
    assert "content" in a_op["responses"]["200"]  # merged, not replaced
    assert "/hidden" not in doc["paths"]
    b_op = _op(doc, "/b", "post")
    assert b_op["summary"] == "First line." and b_op["description"] == "More detail."
    assert b_op["responses"]["409"]["content"]["application/json"]["schema"] == {
        "type": "object", "additionalProperties": {"type": "string"}}
    assert b_op["responses"]["default"]["description"] == "anything else"
    assert set(b_op["responses"]) == {"204", "409", "default"}


def test_form_reads_are_documented_as_form_bodies():
    app = Ember()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        form = await request.form()
        return {"fields": len(form)}

    op = _op(build_openapi(app), "/upload", "post")
    assert {"multipart/form-data", "application/x-www-form-urlencoded"} <= set(
        op["requestBody"]["content"])


@dataclasses.dataclass
class Node:
    name: str
    children: list[Node] = dataclasses.field(default_factory=list)


def test_recursive_models_and_optional_query():
    app = Ember()

    @app.post("/tree")
    async def tree(node: Node) -> Node:
        return node

    @app.get("/since")
    async def since(when: int | None = None) -> list[int]:
        return []

    doc = build_openapi(app)
    validate(doc)
    node = doc["components"]["schemas"]["Node"]
    assert node["properties"]["children"]["items"] == {"$ref": "#/components/schemas/Node"}
    assert _params(_op(doc, "/since"))["when"]["required"] is False


def test_pydantic_field_constraints_on_query_parameters():
    app = Ember()

    @app.get("/q")
    async def q(n: Annotated[int, pydantic.Field(ge=2, le=9)] = 3,
                m: Annotated[float, msgspec.Meta(gt=0)] = 1.0) -> dict[str, float]:
        return {}

    params = _params(_op(build_openapi(app), "/q"))
    assert params["n"]["schema"]["minimum"] == 2 and params["n"]["schema"]["maximum"] == 9
    assert params["m"]["schema"]["exclusiveMinimum"] == 0


def test_the_document_is_rebuilt_after_a_new_route():
    app = Ember()

    @app.get("/one")
    async def one() -> int:
        return 1

    with app.test_client() as c:
        assert set(c.get("/openapi.json").json()["paths"]) == {"/one"}

        @app.get("/two")
        async def two() -> int:
            return 2

        assert set(c.get("/openapi.json").json()["paths"]) == {"/one", "/two"}


def test_datetime_naive_annotation_documented_as_date_time():
    @dataclasses.dataclass
    class Event:
        at: datetime.datetime

    app = Ember()

    @app.post("/e")
    async def e(event: Event) -> Event:
        return event

    schema = build_openapi(app)["components"]["schemas"]["Event"]["properties"]["at"]
    # a naive datetime: an RFC 3339 date-time, or a local one without offset
    assert schema["anyOf"][0] == {"type": "string", "format": "date-time",
                                  "pattern": schema["anyOf"][0]["pattern"]}
    assert "pattern" in schema["anyOf"][1]


def test_tz_aware_datetime_is_exactly_date_time():
    @dataclasses.dataclass
    class Stamp:
        at: Annotated[datetime.datetime, msgspec.Meta(tz=True)]

    app = Ember()

    @app.post("/s")
    async def s(stamp: Stamp) -> dict[str, int]:
        return {}

    schema = build_openapi(app)["components"]["schemas"]["Stamp"]["properties"]["at"]
    assert schema["type"] == "string" and schema["format"] == "date-time"


def test_optional_query_parameters_are_not_nullable():
    """fastapi#9709 / #12419: a query string cannot carry null; absence is the None."""
    app = Ember()

    @app.get("/opt")
    async def opt(q: str | None = None, n: Annotated[int, msgspec.Meta(ge=1)] | None = None,
                  must: int | None = None) -> list[str]:
        return []

    doc = build_openapi(app)
    validate(doc)
    params = _params(_op(doc, "/opt"))
    assert params["q"]["schema"] == {"type": "string"} and params["q"]["required"] is False
    assert params["n"]["schema"] == {"type": "integer", "minimum": 1}
    assert params["must"]["required"] is False  # Optional without default: None when absent
    with app.test_client() as c:
        assert c.get("/opt").status_code == 200


def test_204_never_documents_or_sends_a_body():
    """204 responses carry no content (next-openapi-gen#75, tsoa#702)."""
    app = Ember()

    @app.delete("/d", status_code=204)
    async def d() -> dict[str, int]:
        return {"x": 1}

    @app.get("/t")
    async def t():
        return {"x": 1}, 204

    doc = build_openapi(app)
    validate(doc)
    assert _op(doc, "/d", "delete")["responses"]["204"] == {"description": "No Content"}
    assert _op(doc, "/t")["responses"]["204"] == {"description": "No Content"}
    server = RunningServer(app)
    try:
        r = httpx.delete(f"{server.url}/d", timeout=10)
        assert r.status_code == 204 and r.content == b""
        r = httpx.get(f"{server.url}/t", timeout=10)
        assert r.status_code == 204 and r.content == b""
    finally:
        server.stop()


def test_add_route_documents_a_hand_written_request_body():
    """How the gateway's routes get their request schema: openapi_extra on add_route."""
    app = Ember()

    async def completions(request: Request) -> dict[str, str]:
        return {}

    body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model"], "properties": {"model": {"type": "string"}}}}}}
    app.add_route("/v1/chat/completions", completions, ["POST"],
                  openapi_extra={"requestBody": body},
                  responses={400: {"description": "invalid request"}})
    doc = build_openapi(app)
    validate(doc)
    op = _op(doc, "/v1/chat/completions", "post")
    assert op["requestBody"] == body
    assert op["responses"]["400"]["description"] == "invalid request"


class Opaque:
    """Not a model: documented as anything."""


def test_odd_annotations_never_break_the_document():
    app = Ember()

    @app.get("/opaque")
    async def opaque() -> Opaque:
        return Opaque()

    @app.get("/complex")
    async def cplx() -> set[complex]:
        return set()

    @app.get("/nested")
    async def nested(request: Request) -> dict[str, list[tuple[int, ...]]]:
        return {}

    with app.test_client() as c:
        r = c.get("/openapi.json")
        assert r.status_code == 200
        validate(r.json())
        assert set(r.json()["paths"]) == {"/opaque", "/complex", "/nested"}


def test_multi_method_routes_get_one_operation_id_per_method():
    """fastapi#13175: a route with several methods reused one operationId."""
    app = Ember()

    @app.route("/items/{item_id:int}", ["GET", "PUT", "DELETE"])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.route("/named", ["GET", "POST"], operation_id="named")
    async def named() -> None:
        pass

    doc = build_openapi(app)
    validate(doc)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 5
    assert {"named_get", "named_post"} <= set(ids)


def test_converters_never_leak_into_document_paths(doc):
    """Starlette's schema generator kept '{name:path}' in the documented path."""
    assert "/files/{name}" in doc["paths"] and "/users/{user_id}" in doc["paths"]
    assert not any(":" in path for path in doc["paths"])
