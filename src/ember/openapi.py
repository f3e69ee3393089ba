"""OpenAPI 3.1 from the registered routes and their call plans.

Built on first request of ``/openapi.json`` (and cached), from the same plans the
injector runs, so the document can never disagree with what the handlers accept:

* parameters: path (with the converter's type), query (scalars, lists, and the
  fields of a dataclass / Struct / pydantic model filled from the query string);
* request bodies: the JSON model of the body parameter;
* responses: the success status (``status_code=``, 204 for ``None``, literal
  ``(body, 201)`` returns) with its media type and schema (from ``response_model=``,
  the return annotation or the return statements, see :mod:`ember.openapi_infer`),
  422 with the error body wherever input is validated, 404 where a typed path
  converter may not match, literal ``HTTPException`` codes and ``responses=``;
* unique operation ids and component names, ``openapi_extra`` merged last.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
import sys
import typing
from typing import Any

from ember.injection import _MISSING, BODY, PATH, QUERY, REQUEST, is_model
from ember.openapi_infer import (
    JSON,
    TEXT,
    Outcome,
    from_annotation,
    from_source,
    request_reads,
)
from ember.openapi_params import Collected, _default, _no_null, document
from ember.openapi_schema import HTTP_ERROR, VALIDATION_ERROR, Schemas
from ember.route_config import INFER, parse_path
from ember.routing.templates import openapi_path
from ember.status import reason_phrase

logger = logging.getLogger("ember.openapi")
_KIND_SCHEMA = {"int": {"type": "integer"}, "float": {"type": "number"},
                "uuid": {"type": "string", "format": "uuid"},
                "str": {"type": "string", "minLength": 1}, "path": {"type": "string"}}
_NOT_FOUND = ("Not Found: a path parameter is not a valid {kinds} (typed path converters "
              "are part of matching, so the route does not match)")


def build_openapi(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``."""
    schemas = Schemas()
    paths: dict[str, Any] = {}
    op_ids: set[str] = set()
    for route in app.routes:
        if not route.include_in_schema:
            continue
        path = openapi_path(route.path)
        item = paths.setdefault(path, {})
        for method in route.methods:
            try:
                item[method.lower()] = _operation(route, method, schemas, op_ids)
            except Exception as exc:  # NOTE: /openapi.json must never be a 500
                logger.warning("OpenAPI: cannot document %s %s (%s: %s); documented "
                               "without details", method, route.path, type(exc).__name__, exc)
                item[method.lower()] = {
                    "operationId": _operation_id(route, method, op_ids),
                    "responses": {"default": {"description": "undocumented"}}}
    schemas.resolve()
    document: dict[str, Any] = {"openapi": "3.1.0",
                                "info": {"title": app.title, "version": app.version},
                                "paths": paths}
    schemas.rewrite(document)
    if schemas.components:
        document["components"] = {"schemas": schemas.components}
    return document


def _hints(route: Any) -> dict[str, Any]:
    if route.plan.hints:
        return route.plan.hints
    try:
        return typing.get_type_hints(route.endpoint, include_extras=True)
    except Exception:
        return {}


def _operation(route: Any, method: str, schemas: Schemas, op_ids: set[str]) -> dict[str, Any]:
    doc = route.doc
    hints = _hints(route)
    kinds = parse_path(route.path)
    text = inspect.getdoc(route.endpoint) or ""
    first, _, rest = text.partition("\n")
    op: dict[str, Any] = {"operationId": _operation_id(route, method, op_ids)}
    op["summary"] = doc.summary or first.strip() or route.name.replace("_", " ")
    description = doc.description or (text if doc.summary else rest.strip())
    if description:
        op["description"] = description
    if doc.tags:
        op["tags"] = list(doc.tags)
    if doc.deprecated:
        op["deprecated"] = True
    parameters, body, validated = _inputs(route, hints, kinds, schemas)
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    responses = _success(route, hints, schemas)
    typed = sorted({k for k in kinds.values() if k in ("int", "float", "uuid")})
    if typed:
        responses["404"] = {"description": _NOT_FOUND.format(kinds=" / ".join(typed)),
                            "content": {JSON: {"schema": schemas.named("HTTPError", HTTP_ERROR)}}}
    if validated:
        responses["422"] = {"description": "Validation error: a path, query or body value does "
                            "not fit the handler's parameters",
                            "content": {JSON: {"schema": schemas.named(
                                "HTTPValidationError", VALIDATION_ERROR)}}}
    if parameters:  # NOTE: the server refuses request targets past ServerLimits.max_url_size
        responses["414"] = {"description": "URI Too Long: the request target exceeds the "
                            "server's max_url_size"}
    if route.ai or route.limits is not None or route.token_limits is not None:
        _limits_responses(route, responses, schemas)
    if body is not None and "json" in request_reads(route.endpoint) and not route.ai:
        responses.setdefault("400", {"description": "Bad Request: the body is not valid JSON",
                                     "content": {JSON: {"schema": schemas.named(
                                         "HTTPError", HTTP_ERROR)}}})
    for code in sorted(_raised(route)):
        responses.setdefault(str(code), _error(code, schemas))
    for code, value in doc.responses.items():
        responses[code] = _declared(code, value, responses.get(code), schemas)
    op["responses"] = responses
    if doc.openapi_extra:
        _merge(op, copy.deepcopy(doc.openapi_extra))
    return op


def _operation_id(route: Any, method: str, taken: set[str]) -> str:
    if route.doc.operation_id:  # NOTE: one id per method (fastapi#13175 reused one)
        base = route.doc.operation_id if len(route.methods) == 1 else (
            f"{route.doc.operation_id}_{method.lower()}")
    else:
        base = re.sub(r"[^A-Za-z0-9_]", "_", f"{route.name}_{method.lower()}")
    candidate = base
    if candidate in taken:  # NOTE: same handler name in two modules/blueprints: qualify
        qual = f"{getattr(route.endpoint, '__module__', '')}.{route.name}_{method.lower()}"
        candidate = re.sub(r"[^A-Za-z0-9_]", "_", qual)
        n = 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _inputs(route: Any, hints: dict[str, Any], kinds: dict[str, str],
            schemas: Schemas) -> tuple[list[dict[str, Any]], dict[str, Any] | None, bool]:
    """(parameters, requestBody, whether any input is validated → 422)."""
    parameters: list[dict[str, Any]] = []
    body = None
    validated = False
    documented: set[str] = set()
    entries: Any = ((p, hints) for p in route.plan.params)
    collected = None
    if "ember.params" in sys.modules:  # NOTE: markers / Depends exist in this process
        from ember.dependencies import flat_params

        entries, collected = flat_params(route.plan, hints), Collected()
    for p, plan_hints in entries:
        tp = plan_hints.get(p.name, Any)
        if p.marker is not None and collected is not None:
            validated = True
            if p.source == PATH:
                documented.add(p.key)
            document(p, tp, schemas, parameters, collected)
            continue
        if p.source == PATH:
            kind = kinds.get(p.key, "str")
            schema = dict(_KIND_SCHEMA[kind])
            if p.convert is not None or typing.get_origin(tp) is typing.Annotated:
                validated = True
                schema = {"allOf": [schema, schemas.of(tp)]} if kind != "str" else schemas.of(tp)
            parameters.append({"name": p.key, "in": "path", "required": True,
                               "schema": schema})
            documented.add(p.key)
        elif p.source == QUERY:
            validated = True
            if p.convert is None:  # a model filled from the query string
                parameters += _query_model(_inner(tp), schemas)
                continue
            param = {"name": p.key, "in": "query", "required": p.default is _MISSING,
                     "schema": _default(schemas.of(_listed(tp) if p.multi else _no_null(tp)),
                                        p.default)}
            if p.multi:
                param.update(style="form", explode=True)
            parameters.append(param)
        elif p.source == BODY:
            validated = True
            body = {"required": p.default is _MISSING,
                    "content": {JSON: {"schema": schemas.of(tp)}}}
    if collected is not None and body is None:
        body = collected.request_body()
    for name, kind in kinds.items():  # read by the handler from request.path_params
        if name not in documented:
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": dict(_KIND_SCHEMA[kind])})
    if route.ai and body is None:
        body = {"required": True, "content": {JSON: {"schema": {"type": "object"}}}}
        validated = True
    if body is None and any(p.source == REQUEST for p in route.plan.params):
        body = _read_body(route)
    return parameters, body, validated


def _read_body(route: Any) -> dict[str, Any] | None:
    """The body a handler reads itself: ``await request.json()`` / ``.form()`` / ``.body()``."""
    reads = request_reads(route.endpoint)
    if "json" in reads:
        return {"required": True, "content": {JSON: {"schema": {}}}}
    if "form" in reads:
        form = {"schema": {"type": "object", "additionalProperties": {
            "anyOf": [{"type": "string"}, {"type": "string", "format": "binary"}]}}}
        return {"content": {"application/x-www-form-urlencoded": form,
                            "multipart/form-data": form}}
    if reads & {"body", "stream"}:
        return {"content": {"*/*": {"schema": {}}}}
    return None


def _inner(tp: Any) -> Any:
    from ember.injection import _strip_annotated, _unwrap_optional

    return _unwrap_optional(_strip_annotated(tp))[0]


def _listed(tp: Any) -> Any:
    inner = _inner(tp)
    return inner if typing.get_origin(inner) is list else list[typing.get_args(inner)[0]]


def _query_model(model: Any, schemas: Schemas) -> list[dict[str, Any]]:
    """One query parameter per field of a dataclass / Struct / pydantic model."""
    out = []
    if hasattr(model, "model_fields"):
        for name, field in model.model_fields.items():
            tp = field.annotation
            if field.metadata:
                tp = typing.Annotated[(tp, *field.metadata)]
            out.append(_query_field(field.alias or name, tp, field.is_required(), schemas,
                                    None if field.is_required() else field.default))
        return out
    try:
        import msgspec

        info = msgspec.inspect.type_info(model)
        hints = typing.get_type_hints(model, include_extras=True)
        for f in info.fields:
            out.append(_query_field(f.encode_name, hints.get(f.name, Any), f.required, schemas,
                                    None if f.required else f.default))
        return out
    except (ImportError, TypeError):
        import dataclasses

        if dataclasses.is_dataclass(model):
            hints = typing.get_type_hints(model, include_extras=True)
            for f in dataclasses.fields(model):
                required = (f.default is dataclasses.MISSING
                            and f.default_factory is dataclasses.MISSING)
                out.append(_query_field(f.name, hints.get(f.name, Any), required, schemas))
    return out


def _query_field(name: str, tp: Any, required: bool, schemas: Schemas,
                 default: Any = None) -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": required,
             "schema": _default(schemas.of(_no_null(tp)), default)}
    if typing.get_origin(_inner(tp)) is list:
        param.update(style="form", explode=True)
    return param


def _success(route: Any, hints: dict[str, Any], schemas: Schemas) -> dict[str, Any]:
    """The success responses: status → response object."""
    if route.streaming:
        return {"200": {"description": "Server-sent events",
                        "content": {"text/event-stream": {}}}}
    model = route.doc.response_model
    outcomes: list[Outcome] | None
    if model is None:
        outcomes = [Outcome(JSON, Any)]
    elif model is not INFER:
        outcomes = [Outcome(JSON, model)]
    else:
        outcomes = from_annotation(hints.get("return", inspect.Parameter.empty))
        found, _ = from_source(route.endpoint)
        if outcomes is None:
            outcomes = found
        elif found and any(o.status for o in found):  # `-> Item` with `return item, 201`
            statuses = {o.status for o in found}
            outcomes = [Outcome(a.media, a.tp, s) for s in statuses for a in outcomes]
        if outcomes is None:  # NOTE: unknown at registration: JSON, text or 204 (to_response)
            outcomes = [Outcome(JSON, Any), Outcome(TEXT, str), Outcome(None)]
    out: dict[str, Any] = {}
    for o in outcomes:
        status = o.status or route.status_code or (204 if o.media is None else 200)
        if route.status_code is not None and o.status is None and o.media is None:
            status = route.status_code
        resp = out.setdefault(str(status), {"description": reason_phrase(status)})
        if o.media is None or status in (204, 304):
            continue
        content = resp.setdefault("content", {})
        slot = content.get(o.media)
        schema = {"type": "string"} if o.tp is str else (
            {"type": "string", "format": "binary"} if o.tp is bytes else schemas.of(o.tp))
        if o.media == "text/event-stream":  # NOTE: events' data shape is not known here
            content.setdefault(o.media, {})
            continue
        if slot is None:
            content[o.media] = {"schema": schema}
        elif slot["schema"] != schema:  # two shapes for one media type: either
            slot["schema"] = {"anyOf": [slot["schema"], schema]}
    return out


def _raised(route: Any) -> set[int]:
    if route.doc.response_model is not INFER:
        return set()
    return from_source(route.endpoint)[1] if not route.streaming else set()


def _error(code: int, schemas: Schemas) -> dict[str, Any]:
    return {"description": reason_phrase(code),
            "content": {JSON: {"schema": schemas.named("HTTPError", HTTP_ERROR)}}}


def _limits_responses(route: Any, responses: dict[str, Any], schemas: Schemas) -> None:
    limits, tokens = route.limits, route.token_limits
    if route.ai:
        responses.setdefault("400", _error(400, schemas))
    if tokens is not None and tokens.tokens_per_minute:
        responses.setdefault("429", _error(429, schemas))
    if (tokens is not None and tokens.max_prompt_tokens) or (
            limits is not None and limits.max_body_size):
        responses.setdefault("413", {"description": "Content Too Large"})
    if limits is not None and limits.timeout:
        responses.setdefault("504", {"description": "the handler did not answer in time"})


def _declared(code: str, value: Any, current: dict[str, Any] | None,
              schemas: Schemas) -> dict[str, Any]:
    """A ``responses=`` entry: a model type, ``{"description":..., "model": T}`` or None."""
    status = int(code) if code.isdigit() else None
    base = {"description": reason_phrase(status) if status else "Response"}
    if current:
        base.update(current)
    if value is None:
        return base
    if not isinstance(value, dict):
        value = {"model": value}
    value = dict(value)
    model = value.pop("model", None)
    resp = {**base, **copy.deepcopy(value)}
    if model is not None:
        resp["content"] = {JSON: {"schema": schemas.of(model)}}
    return resp


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


__all__ = ["build_openapi", "is_model"]


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
installs:</p>
<ul><li>from the package index: <code>pip install 'ember-api[docs]&gt;=0.2.0'</code>
(the index's <code>ember-api 0.1.0</code> is another project);</li>
<li>from a clone of Ember, in its directory: <code>pip install -e ".[docs]"</code>.</li></ul>
<p>Then restart the server.</p>
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
