"""Integers at the gateway: JSON has one number type, so ``5.0`` is an integer.

Every integer field is found in the gateway's own published OpenAPI document (so a
field added later is covered), sent as ``5.0`` (accepted, and forwarded upstream as
the integer 5), and sent as ``5.5``, ``"5"``, ``true`` and out-of-range numbers (each
a 400 whose ``param`` names the field).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from ember.openapi import build_openapi
from tests.gateway.conftest import gateway_app

openai = pytest.importorskip("openai")

AUTH = {"authorization": "Bearer sk-gateway-key", "content-type": "application/json"}
USER = [{"role": "user", "content": "hi there"}]
BASES = {
    "/v1/chat/completions": {"model": "gpt-4o", "messages": USER},
    "/v1/embeddings": {"model": "small", "input": "hello"},
}


@pytest.fixture
def url(fake, serve):
    app = gateway_app()
    app.mount_openai({"gpt-4o": "gpt-4o", "small": "text-embedding-3-small"},
                     api_keys=["sk-gateway-key"])
    return serve(app)


def _integer_paths(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths to every ``"type": "integer"`` of a JSON Schema (``*`` = any key, ``[]`` =
    any item)."""
    found: list[tuple[str, ...]] = []
    if not isinstance(schema, dict):
        return found
    if schema.get("type") == "integer" or (
            isinstance(schema.get("type"), list) and "integer" in schema["type"]):
        found.append(path)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _integer_paths(sub, path)
    for name, sub in schema.get("properties", {}).items():
        found += _integer_paths(sub, (*path, name))
    if isinstance(schema.get("additionalProperties"), dict):
        found += _integer_paths(schema["additionalProperties"], (*path, "*"))
    if isinstance(schema.get("items"), dict):
        found += _integer_paths(schema["items"], (*path, "[]"))
    return found


def _fields() -> list[tuple[str, tuple[str, ...]]]:
    app = gateway_app()
    app.mount_openai(["offline/echo"])
    doc = build_openapi(app)
    out = []
    for route in BASES:
        schema = doc["paths"][route]["post"]["requestBody"]["content"]["application/json"][
            "schema"]
        out += [(route, p) for p in dict.fromkeys(map(tuple, _integer_paths(schema)))]
    return out


FIELDS = _fields()
IDS = [f"{route.rsplit('/', 1)[1]}:{'.'.join(p)}" for route, p in FIELDS]


def _place(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node: Any = body
    for i, part in enumerate(path):
        last = i == len(path) - 1
        key = "42" if part == "*" else part
        if part == "[]":
            raise AssertionError(f"an integer inside a list: extend the test ({path})")
        node[key] = value if last else node.get(key, {})
        node = node[key]
    return body


def _get(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for part in path:
        node = node["42" if part == "*" else part]
    return node


def test_the_published_schema_has_the_integer_fields_openai_has():
    names = {(route.rsplit("/", 1)[1], ".".join(p)) for route, p in FIELDS}
    assert {("completions", "max_tokens"), ("completions", "max_completion_tokens"),
            ("completions", "n"), ("completions", "seed"), ("completions", "top_logprobs"),
            ("completions", "logit_bias.*"), ("embeddings", "dimensions")} <= names


@pytest.mark.parametrize(("route", "path"), FIELDS, ids=IDS)
def test_whole_number_float_is_an_integer_and_is_forwarded_as_one(url, fake, route, path):
    body = _place(orjson.loads(orjson.dumps(BASES[route])), path, 5.0)
    raw = orjson.dumps(body)
    assert b"5.0" in raw  # really a JSON float on the wire
    r = httpx.post(url + route, content=raw, headers=AUTH)
    assert r.status_code == 200, r.text
    sent = _get(fake.last().body, path)
    assert sent == 5 and type(sent) is int


@pytest.mark.parametrize(("route", "path"), FIELDS, ids=IDS)
@pytest.mark.parametrize("bad", ["5.5", '"5"', "true", "[5]", "1e300",
                                 "100000000000000000000000", "-9223372036854775809"])
def test_not_an_integer_is_a_400_naming_the_field(url, fake, route, path, bad):
    body = _place(orjson.loads(orjson.dumps(BASES[route])), path, "@@")
    raw = orjson.dumps(body).replace(b'"@@"', bad.encode())
    r = httpx.post(url + route, content=raw, headers=AUTH)
    assert r.status_code == 400, (bad, r.text)
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == path[0], error
    assert fake.count() == 0, "nothing reaches the provider"


def test_the_openai_sdk_sending_floats_for_integers(url, fake):
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    r = client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=64.0, n=1.0,
                                       seed=7.0, logit_bias={"50256": -100.0})
    assert "hi there" in r.choices[0].message.content
    sent = fake.last("openai").body
    assert (sent["max_tokens"], sent["seed"], sent["logit_bias"]) == (64, 7, {"50256": -100})
    assert type(sent["max_tokens"]) is int and type(sent["logit_bias"]["50256"]) is int
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=64.5)
    assert info.value.param == "max_tokens"
    client.close()


def test_floats_elsewhere_are_forwarded_exactly_as_sent(url, fake):
    """Only integer positions change: a float field and a tool's JSON Schema keep 5.0."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "number", "minimum": 5.0}}}}}
    body = {**BASES["/v1/chat/completions"], "max_tokens": 5.0, "temperature": 1.0,
            "tools": [tool], "response_format": {"type": "json_schema", "json_schema": {
                "name": "out", "schema": {"type": "integer", "maximum": 9.0}}}}
    r = httpx.post(url + "/v1/chat/completions", content=orjson.dumps(body), headers=AUTH)
    assert r.status_code == 200, r.text
    sent = fake.last("openai").body
    assert type(sent["max_tokens"]) is int
    assert type(sent["temperature"]) is float
    minimum = sent["tools"][0]["function"]["parameters"]["properties"]["x"]["minimum"]
    assert minimum == 5.0 and type(minimum) is float
    maximum = sent["response_format"]["json_schema"]["schema"]["maximum"]
    assert maximum == 9.0 and type(maximum) is float


def test_int64_bounds_are_published_and_enforced(url, fake):
    app = gateway_app()
    app.mount_openai(["offline/echo"])
    schema = build_openapi(app)["paths"]["/v1/chat/completions"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]["properties"]["seed"]
    bounds = next(s for s in schema["anyOf"] if s.get("type") == "integer")
    assert (bounds["minimum"], bounds["maximum"]) == (-(2**63), 2**63 - 1)
    for ok in (2**63 - 1, -(2**63)):
        raw = orjson.dumps({**BASES["/v1/chat/completions"], "seed": ok})
        r = httpx.post(url + "/v1/chat/completions", content=raw, headers=AUTH)
        assert r.status_code == 200 and fake.last("openai").body["seed"] == ok


# -- NaN and Infinity: not JSON, refused by name (never read as null) -------------------------
NON_FINITE_BODIES = {
    "/v1/chat/completions": b'{"model": "gpt-4o", "messages": [{"role": "user", "content": '
                            b'"hi"}], "temperature": %s}',
    "/v1/messages": b'{"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", '
                    b'"content": "hi"}], "top_p": %s}',
    "/v1/responses": b'{"model": "gpt-4o", "input": "hi", "metadata": {"x": %s}}',
    "/v1/completions": b'{"model": "gpt-4o", "prompt": "hi", "tools": [{"p": [1, %s]}]}',
    "/v1/embeddings": b'{"model": "small", "input": "hello", "dimensions": %s}',
}


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("path", list(NON_FINITE_BODIES))
def test_nan_and_infinity_are_refused_by_name(url, fake, path, literal):
    r = httpx.post(url + path, content=NON_FINITE_BODIES[path] % literal, headers=AUTH)
    assert r.status_code == 400
    body = r.json()
    message = body["error"]["message"]
    assert literal.decode() + " is not a JSON number" in message
    assert "finite number or null" in message
    assert not fake.requests


@pytest.mark.parametrize("literal", [b"NaN", b"-Infinity"])
@pytest.mark.parametrize("decoder", ["msgspec", "orjson"])
def test_request_json_names_a_non_finite_literal(literal, decoder, monkeypatch):
    """``ember._json.loads`` (``request.json()``) says what is wrong, with either decoder."""
    from ember import _json

    if decoder == "orjson":
        monkeypatch.setattr(_json, "_DECODER", ())  # NOTE: as without msgspec installed
    raw = b'{"a": [1, ' + literal + b"]}"
    with pytest.raises(ValueError, match=literal.decode() + " is not a JSON number"):
        _json.loads(raw)
    assert _json.loads(b'{"a": [1.5, -2e300]}') == {"a": [1.5, -2e300]}
