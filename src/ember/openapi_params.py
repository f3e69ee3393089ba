"""OpenAPI for parameters declared with markers (``Query()``, ``Header()``, ``Form()``...).

Called by :mod:`ember.openapi` for each plan entry that carries a marker,
dependencies' entries included (:func:`ember.dependencies.flat_params`): headers
and cookies become ``in: header`` / ``in: cookie`` parameters, form fields and
files one ``requestBody`` object (``multipart/form-data`` when a file is among
them), several or embedded ``Body()`` values one JSON object; the constraint
keywords become the schema's (``minimum``, ``maxLength``, ``pattern``...), and
``description`` / ``deprecated`` / ``include_in_schema`` apply as in FastAPI.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from typing import Any

from ember._markers import _strip_markers
from ember.injection import _MISSING, BODY, COOKIE, FORM, HEADER, PATH, QUERY
from ember.openapi_schema import Schemas
from ember.params import File, Param, schema_keywords

_IN = {QUERY: "query", PATH: "path", HEADER: "header", COOKIE: "cookie"}
_BINARY = {"type": "string", "format": "binary"}


class Collected:
    """Form fields and embedded body members gathered over one operation's parameters."""

    def __init__(self) -> None:
        self.form: dict[str, Any] = {}
        self.form_required: list[str] = []
        self.files = False
        self.body: dict[str, Any] = {}
        self.body_required: list[str] = []
        self.whole_body: dict[str, Any] | None = None

    def request_body(self) -> dict[str, Any] | None:
        """The operation's ``requestBody`` from what was collected, or None."""
        if self.form:
            schema: dict[str, Any] = {"type": "object", "properties": self.form}
            if self.form_required:
                schema["required"] = self.form_required
            media = "multipart/form-data" if self.files else "application/x-www-form-urlencoded"
            return {"required": bool(self.form_required),
                    "content": {media: {"schema": schema}}}
        if self.body:
            schema = {"type": "object", "properties": self.body}
            if self.body_required:
                schema["required"] = self.body_required
            return {"required": bool(self.body_required),
                    "content": {"application/json": {"schema": schema}}}
        return self.whole_body


def document(p: Any, tp: Any, schemas: Schemas, parameters: list[dict[str, Any]],
             collected: Collected) -> None:
    """Add plan entry ``p`` (declared with a marker) to ``parameters`` or ``collected``."""
    marker: Param = p.marker
    if not marker.include_in_schema:
        return
    tp = _strip_markers(tp)
    required = p.default is _MISSING
    multi = bool(p.multi) or typing.get_origin(_inner(tp)) is list
    if p.source == FORM:
        if isinstance(marker, File):
            collected.files = True
            schema: dict[str, Any] = {"type": "array", "items": dict(_BINARY)} if multi \
                else dict(_BINARY)
        else:
            schema = _schema(schemas, tp, marker)
        _describe(schema, marker)
        collected.form[p.key] = schema
        if required:
            collected.form_required.append(p.key)
        return
    if p.source == BODY:
        schema = _schema(schemas, tp, marker)
        _describe(schema, marker)
        if getattr(p.convert, "embed", False):
            collected.body[p.key] = schema
            if required:
                collected.body_required.append(p.key)
        else:
            collected.whole_body = {"required": required,
                                    "content": {"application/json": {"schema": schema}}}
        return
    where = _IN.get(p.source)
    if where is None:
        return
    param: dict[str, Any] = {"name": p.key, "in": where,
                             "required": True if where == "path" else required,
                             "schema": _schema(schemas, tp, marker, p.default)}
    if multi and where == "query":
        param.update(style="form", explode=True)
    if marker.description:
        param["description"] = marker.description
    if marker.deprecated:
        param["deprecated"] = True
    parameters.append(param)


def _default(schema: dict[str, Any], default: Any) -> dict[str, Any]:
    """``schema`` with ``default`` when it is a plain JSON value (FastAPI shows them too)."""
    import enum

    if isinstance(default, enum.Enum):
        default = default.value
    if default is not None and default is not _MISSING and (
            type(default) in (str, int, float, bool)):
        schema["default"] = default
    return schema


def _no_null(tp: Any) -> Any:
    """``T | None`` → ``T`` for a query parameter: a query string cannot carry null.

    NOTE: FastAPI documented ``anyOf: [T, null]`` here (fastapi#9709, #12419): clients
    then believe they can send null; absence is the None.
    """
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        args = typing.get_args(tp)
        return typing.Annotated[(_no_null(args[0]), *args[1:])]
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if rest and len(rest) < len(typing.get_args(tp)):
            return functools.reduce(operator.or_, rest)
    return tp


def _inner(tp: Any) -> Any:
    from ember.injection import _strip_annotated, _unwrap_optional

    return _unwrap_optional(_strip_annotated(tp))[0]


def _schema(schemas: Schemas, tp: Any, marker: Param, default: Any = _MISSING) -> dict[str, Any]:
    inner = _inner(tp)
    if typing.get_origin(inner) is list:
        # NOTE: schemas.of gives a slot that Schemas.resolve fills in place: never copy it
        items = schemas.of(typing.get_args(inner)[0] if typing.get_args(inner) else str)
        items.update(schema_keywords(marker))
        schema: dict[str, Any] = {"type": "array", "items": items}
    else:
        schema = schemas.of(_no_null(tp))
        schema.update(schema_keywords(marker))
    return _default(schema, default)


def _describe(schema: dict[str, Any], marker: Param) -> None:
    if marker.description:
        schema["description"] = marker.description
    if marker.deprecated:
        schema["deprecated"] = True


__all__ = ["Collected", "document"]
