"""Route mistakes are ConfigErrors at registration, naming the route and the fix."""

from __future__ import annotations

import uuid

import pytest

from ember import Blueprint, Ember, Request
from ember.exceptions import ConfigError


def _register(path, fn, app=None, **options):
    app = app or Ember()
    app.get(path, **options)(fn)
    return app


def test_path_parameter_with_no_handler_parameter():
    def u(id: int):
        return {}

    with pytest.raises(ConfigError) as info:
        _register("/u/{user_id:int}", u)
    msg = str(info.value)
    assert "/u/{user_id:int}" in msg and "'user_id'" in msg and "'id'" in msg
    assert "rename" in msg


def test_path_parameter_used_only_for_matching_is_fine():
    async def h(y: str):
        return {"y": y}

    app = _register("/a/{x:int}/b/{y}", h)
    with app.test_client() as c:
        assert c.get("/a/1/b/z").json() == {"y": "z"}


def test_handlers_reading_path_params_themselves_are_fine():
    async def h(request: Request):
        return {"id": request.path_params["id"]}

    async def k(**kwargs):
        return kwargs

    app = _register("/r/{id:int}", h)
    _register("/k/{id:int}", k, app)
    with app.test_client() as c:
        assert c.get("/r/3").json() == {"id": 3}


@pytest.mark.parametrize("kind, annotation", [("int", str), ("int", uuid.UUID),
                                              ("float", int), ("uuid", int), ("uuid", str)])
def test_annotation_contradicting_the_converter(kind, annotation):
    def h(id):
        return {}
    h.__annotations__ = {"id": annotation}
    with pytest.raises(ConfigError) as info:
        _register(f"/u/{{id:{kind}}}", h)
    assert f"/u/{{id:{kind}}}" in str(info.value) and f"'{{id:{kind}}}'" in str(info.value)


@pytest.mark.parametrize("kind, annotation", [("int", int), ("int", float), ("str", str),
                                              ("str", int), ("uuid", uuid.UUID),
                                              ("float", float)])
def test_compatible_annotations_register(kind, annotation):
    def h(id):
        return {}
    h.__annotations__ = {"id": annotation}
    _register(f"/u/{{id:{kind}}}", h)


def test_seed_style_str_converter_with_str_annotation():
    async def get_task(request: Request, task_id: str):
        return {"id": task_id}

    app = _register("/tasks/{task_id:str}", get_task)
    with app.test_client() as c:
        assert c.get("/tasks/abc").json() == {"id": "abc"}


def test_unknown_converter_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        _register("/u/{id:integer}", lambda id: {})
    msg = str(info.value)
    assert "'integer'" in msg and all(k in msg for k in ("str", "int", "float", "uuid", "path"))


@pytest.mark.parametrize("path, hint", [
    ("/u/{id:int", "closing '}' is missing"),
    ("/u/id:int}", "opening '{' is missing"),
    ("/u/x{id}", "whole segment"),
    ("/u/{1id}", "identifier"),
    ("/u/{id}/{id}", "appears twice"),
    ("/u/{rest:path}/x", "last segment"),
])
def test_malformed_templates(path, hint):
    with pytest.raises(ConfigError) as info:
        _register(path, lambda **kw: {})
    assert hint in str(info.value) and path in str(info.value)


def test_duplicate_method_and_path():
    app = Ember()
    app.get("/a")(lambda: 1)
    with pytest.raises(ConfigError) as info:
        app.get("/a")(lambda: 2)
    assert "GET '/a'" in str(info.value) and "already registered" in str(info.value)
    app.post("/a")(lambda: 3)  # another method is fine
    app.get("/b/{x:int}")(lambda x: x)
    with pytest.raises(ConfigError):
        app.get("/b/{y:int}")(lambda y: y)  # same template, other name
    app.get("/b/{y}")(lambda y: y)  # another converter is another route


def test_duplicate_through_a_blueprint_and_the_docs_route():
    app = Ember()
    app.get("/x/list")(lambda: 1)
    bp = Blueprint()
    bp.get("/list")(lambda: 2)
    with pytest.raises(ConfigError):
        app.add_blueprint(bp, "/x")
    with pytest.raises(ConfigError) as info:
        app.get("/openapi.json")(lambda: {})
    assert "openapi_url=None" in str(info.value)


@pytest.mark.parametrize("options", [
    {"status_code": 99}, {"status_code": "201"}, {"responses": {"abc": None}},
    {"responses": {404: 5}}, {"responses": [404]}, {"tags": [1]}, {"summary": 3},
    {"openapi_extra": "x"}, {"response_model": 5},
])
def test_bad_route_options(options):
    with pytest.raises(ConfigError):
        _register("/o", lambda: {}, **options)


def test_examples_and_seed_apps_still_register(monkeypatch):
    """Every example registers under the new checks (serving is covered by tests/examples)."""
    import importlib.util
    import pathlib
    import sys

    # NOTE: registration is what is under test; the seed-style module-level app.run()
    # must not serve here.
    monkeypatch.setattr(Ember, "run", lambda self, *a, **k: None)
    root = pathlib.Path(__file__).resolve().parents[2] / "examples"
    loaded = 0
    for path in sorted(root.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_ex_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # as an import would
        spec.loader.exec_module(module)
        app = getattr(module, "app", None)
        if isinstance(app, Ember):
            loaded += 1
            from openapi_spec_validator import validate

            from ember.openapi import build_openapi

            validate(build_openapi(app))
    assert loaded >= 5
