"""OpenAPI 3.1 from the registered routes and their call plans.

Built on first request of ``/openapi.json`` (and cached), from the same plans the
injector runs, so the document can never disagree with what the handlers accept.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
import uuid
from typing import Any

from ember.injection import _MISSING, BODY, PATH, QUERY

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?\}")
_KIND_SCHEMA = {"int": {"type": "integer"}, "float": {"type": "number"},
                "uuid": {"type": "string", "format": "uuid"}, "str": {"type": "string"},
                "path": {"type": "string"}}


def type_schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema (2020-12, as OpenAPI 3.1 uses) for a Python annotation."""
    if tp in (inspect.Parameter.empty, Any, None):
        return {}
    if tp is type(None):
        return {"type": "null"}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is bytes:
        return {"type": "string", "format": "binary"}
    if tp is uuid.UUID:
        return {"type": "string", "format": "uuid"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return type_schema(args[0], components)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(a, components) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, set, frozenset, tuple) or tp in (list, set, tuple):
        item = type_schema(args[0], components) if args else {}
        return {"type": "array", "items": item}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type):
        name = tp.__name__
        if hasattr(tp, "model_json_schema"):  # pydantic
            schema = tp.model_json_schema(ref_template="#/components/schemas/{model}")
            for key, sub in schema.pop("$defs", {}).items():
                components.setdefault(key, sub)
            components.setdefault(name, schema)
            return {"$ref": f"#/components/schemas/{name}"}
        if hasattr(tp, "__struct_fields__"):  # msgspec
            import msgspec

            (schema,), defs = msgspec.json.schema_components(
                [tp], ref_template="#/components/schemas/{name}")
            components.update(defs)
            return schema
        if dataclasses.is_dataclass(tp):
            if name not in components:
                components[name] = {}  # NOTE: placeholder first, for recursive models
                hints = typing.get_type_hints(tp)
                props, required = {}, []
                for f in dataclasses.fields(tp):
                    props[f.name] = type_schema(hints.get(f.name, Any), components)
                    if (f.default is dataclasses.MISSING
                            and f.default_factory is dataclasses.MISSING):
                        required.append(f.name)
                components[name] = {"type": "object", "title": name, "properties": props,
                                    "required": required}
            return {"$ref": f"#/components/schemas/{name}"}
    return {}


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def build_openapi(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``."""
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for route in app.routes:
        if not route.include_in_schema:
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        kinds = dict(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}", route.path))
        hints = route.plan.hints or _hints(route.endpoint)
        doc = inspect.getdoc(route.endpoint) or ""
        parameters = []
        body = None
        for p in route.plan.params:
            tp = hints.get(p.name, Any)
            if p.source == PATH:
                schema = type_schema(tp, components) or _KIND_SCHEMA[kinds.get(p.name) or "str"]
                parameters.append({"name": p.key, "in": "path", "required": True,
                                   "schema": schema})
            elif p.source == QUERY and p.convert is not None:
                required = p.default is _MISSING
                parameters.append({"name": p.key, "in": "query", "required": required,
                                   "schema": type_schema(tp, components)})
            elif p.source == BODY:
                body = {"required": True, "content": {"application/json": {
                    "schema": type_schema(tp, components)}}}
        for method in route.methods:
            op: dict[str, Any] = {
                "operationId": f"{route.name}_{method.lower()}",
                "summary": doc.split("\n", 1)[0] if doc else route.name.replace("_", " "),
                "responses": {"200": {"description": "Successful response"}},
            }
            if doc:
                op["description"] = doc
            if parameters:
                op["parameters"] = parameters
            if body is not None:
                op["requestBody"] = body
                op["responses"]["422"] = {"description": "Validation error"}
            if route.streaming:
                op["responses"]["200"] = {"description": "Server-sent events",
                                          "content": {"text/event-stream": {}}}
            paths.setdefault(path, {})[method.lower()] = op
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": app.title,
                                                         "version": app.version},
                           "paths": paths}
    if components:
        doc["components"] = {"schemas": components}
    return doc


# NOTE: Swagger UI's assets come from the installed ``flask-swagger-ui`` wheel (the
# ``docs`` extra): a maintained package that ships swagger-ui-dist 5.x (OpenAPI 3.1);
# only its files are read, Flask is never imported. No CDN: /docs works offline.
DOCS_ASSETS = {"swagger-ui.css": "text/css; charset=utf-8",
               "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}

DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} — API docs</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{url}", dom_id: "#ui"}});</script>
<noscript>The OpenAPI document is at <a href="{url}">{url}</a>.</noscript>
</body></html>"""

DOCS_MISSING_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} — API docs</title></head>
<body><h1>{title}: API docs</h1>
<p>The interactive docs page needs Swagger UI's files, which the <code>docs</code> extra
installs: <code>pip install 'ember-api[docs]'</code>.</p>
<p>The OpenAPI document is at <a href="{url}">{url}</a>.</p>
</body></html>"""


def _assets_dir() -> str | None:
    """Where the installed Swagger UI files are, or None (``docs`` extra missing)."""
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec("flask_swagger_ui")  # NOTE: locates, never imports
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(next(iter(spec.submodule_search_locations)), "dist")
    return path if os.path.isfile(os.path.join(path, "swagger-ui-bundle.js")) else None


def docs_page(title: str, openapi_url: str, assets_url: str) -> str:
    """The HTML of the docs page; names the ``docs`` extra when Swagger UI is not installed."""
    from html import escape

    page = DOCS_HTML if _assets_dir() is not None else DOCS_MISSING_HTML
    return page.format(title=escape(title), url=escape(openapi_url), assets=escape(assets_url))


def docs_asset(name: str) -> tuple[bytes, str] | None:
    """``(content, media type)`` of one Swagger UI file, or None (unknown name, not installed)."""
    import os

    media_type = DOCS_ASSETS.get(name)
    folder = _assets_dir()
    if media_type is None or folder is None:
        return None
    with open(os.path.join(folder, name), "rb") as f:
        return f.read(), media_type
