"""Path templates have one reader (``ember.routing.parse_template``), used by the router,
the route checks, OpenAPI and ``url_for`` alike; both twins of it agree on garbage."""

from __future__ import annotations

import importlib
import uuid

import pytest

from ember import ConfigError, Ember
from ember._compat import NO_EXTENSIONS, is_compiled
from ember.routing import KINDS, Router, parse_template
from ember.routing.templates import expand, openapi_path, path_params, template_key

GARBAGE = [
    "", "no-slash", "/{", "/}", "/{}", "/{:int}", "/{1x}", "/{x:}", "/{x:complex}",
    "/{x:int", "/x{y}", "/{x}{y}", "/{x}/{x}", "/{a:path}/b", "/{{x}}", "/{x y}",
    "/{x:int:str}", "/\x00{x}", "/{é}", 42, None, b"/x",
]


def _twins():
    pure = importlib.import_module("ember.routing._router_py")
    twins = [pure]
    if not NO_EXTENSIONS:
        try:
            compiled = importlib.import_module("ember.routing._router_c")
        except ImportError:
            compiled = None
        if compiled is not None and is_compiled(compiled):
            twins.append(compiled)
    return twins


@pytest.mark.parametrize("path", GARBAGE, ids=repr)
def test_garbage_templates_are_config_errors_everywhere(path):
    """Router, decorator and parser refuse the same templates with the same message."""
    messages = set()
    for twin in _twins():
        with pytest.raises(ConfigError) as info:
            twin.parse_template(path)
        messages.add(str(info.value))
        with pytest.raises(ConfigError):
            twin.Router().add(path, ["GET"], "r")
    assert len(messages) == 1
    app = Ember(openapi_url=None)
    with pytest.raises(ConfigError):
        app.get(path)(lambda: "x")
    assert app.routes == []


def test_parse_template_shape():
    assert parse_template("/") == [""]
    assert parse_template("/a/{id:int}/{rest:path}") == ["a", ("id", "int"), ("rest", "path")]
    assert parse_template("/u/{name}") == ["u", ("name", "str")]
    assert set(KINDS) == {"str", "int", "float", "uuid", "path"}


def test_derived_forms_come_from_one_parse():
    path = "/u/{id:int}/f/{name}/{rest:path}"
    assert path_params(path) == {"id": "int", "name": "str", "rest": "path"}
    assert template_key(path) == "/u/{:int}/f/{:str}/{:path}"
    assert template_key("/u/{uid:int}/f/{n:str}/{r:path}") == template_key(path)
    assert openapi_path(path) == "/u/{id}/f/{name}/{rest}"
    assert expand(path, {"id": 3, "name": "a b/c", "rest": "x/y z"}) == \
        "/u/3/f/a%20b%2Fc/x/y%20z"
    with pytest.raises(ConfigError, match="missing path parameter"):
        expand(path, {"id": 3})


def test_same_route_under_another_parameter_name_is_a_duplicate():
    app = Ember(openapi_url=None)
    app.get("/u/{id:int}")(lambda id: id)
    with pytest.raises(ConfigError, match="already registered"):
        app.get("/u/{uid:int}")(lambda uid: uid)
    app.get("/u/{name}")(lambda name: name)  # another converter is another route


def test_url_for_and_openapi_read_the_same_template():
    app = Ember()

    @app.get("/items/{item_id:uuid}/files/{rest:path}")
    async def item_file(item_id: uuid.UUID, rest: str):
        return {"id": str(item_id), "rest": rest}

    uid = uuid.UUID(int=7)
    url = app.url_for("item_file", item_id=uid, rest="a/b", page=2)
    assert url == f"/items/{uid}/files/a/b?page=2"
    with app.test_client() as client:
        assert client.get(url).json() == {"id": str(uid), "rest": "a/b"}
        doc = client.get("/openapi.json").json()
    assert "/items/{item_id}/files/{rest}" in doc["paths"]


def test_catch_all_names_conflict_is_a_config_error():
    router = Router()
    router.add("/f/{rest:path}", ["GET"], "a")
    with pytest.raises(ConfigError, match="conflicting catch-all"):
        router.add("/f/{other:path}", ["POST"], "b")


def test_a_value_that_looks_like_a_placeholder_stays_literal():
    """starlette#3478: url_for substituted one parameter's value into another's slot."""
    assert expand("/a/{x}/b/{y}", {"x": "{y}", "y": "2"}) == "/a/%7By%7D/b/2"


def test_each_method_keeps_its_own_parameter_names():
    """echo#1726: two methods on the same shape with different names, over real HTTP."""
    app = Ember(openapi_url=None)

    @app.put("/users/{vid}/files/{gid}")
    async def put(vid: str, gid: str):
        return {"vid": vid, "gid": gid}

    @app.get("/users/{uid}/files/{fid}")
    async def get(uid: str, fid: str):
        return {"uid": uid, "fid": fid}

    with app.test_client() as client:
        assert client.get("/users/1/files/2").json() == {"uid": "1", "fid": "2"}
        assert client.put("/users/3/files/4").json() == {"vid": "3", "gid": "4"}
        assert client.get("/users/kg%2Fs/files/x").json() == {"uid": "kg/s", "fid": "x"}
        allow = client.post("/users/1/files/2").headers["allow"]
        assert allow == "GET, HEAD, OPTIONS, PUT"
