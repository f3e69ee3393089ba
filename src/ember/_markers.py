"""Parameter markers (``Query()``, ``Header()``, ``Form()``...) turned into plan entries.

:func:`marked` builds one :class:`~ember._plan.Param` for a handler (or
dependency) parameter that carries a marker, once, at registration: where the value
comes from, how it is converted and checked, and the 422 ``loc`` that names it.
``Depends`` markers are handed to :mod:`ember.dependencies` (by :mod:`ember.injection`,
which reads both). Below them: :mod:`ember._plan`, the plan's vocabulary.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from ember import _plan as _inj
from ember._plan import Build
from ember.exceptions import ConfigError, RequestValidationError
from ember.params import Body, Cookie, Depends, File, Form, Header, Param, Path, Query, checker
from ember.validation import query_model_builder

_UPLOAD_TYPES = ("UploadFile",)


def marker_of(hint: Any, default: Any) -> Any:
    """The marker of a parameter (in ``Annotated[...]`` or as its default), or None."""
    if isinstance(default, (Param, Depends)):
        return default
    tp = hint
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = _inj._unwrap_optional(tp)[0]
    if typing.get_origin(tp) is typing.Annotated:
        for meta in reversed(typing.get_args(tp)[1:]):
            if isinstance(meta, (Param, Depends)):
                return meta
    return File() if _is_upload(_inj._strip_annotated(tp)) else None


def _is_upload(tp: Any) -> bool:
    """``UploadFile`` or ``list[UploadFile]``: a file upload without ``File()``, as in FastAPI."""
    if typing.get_origin(tp) is list:
        tp = (typing.get_args(tp) or (None,))[0]
    return isinstance(tp, type) and tp.__name__ in _UPLOAD_TYPES and \
        tp.__module__ == "ember.forms"


def _strip_markers(hint: Any) -> Any:
    """``Annotated[int, Query(ge=1)]`` → ``int`` (other metadata kept)."""
    if typing.get_origin(hint) is typing.Annotated:
        args = typing.get_args(hint)
        rest = tuple(m for m in args[1:] if not isinstance(m, (Param, Depends)))
        return typing.Annotated[(args[0], *rest)] if rest else args[0]
    return hint


def marked(name: str, marker: Any, hint: Any, default: Any, build: Build) -> _inj.Param:
    """The plan entry for parameter ``name`` carrying ``marker``."""
    where = build.where
    if isinstance(marker, Depends):  # NOTE: ember.injection hands those to ember.dependencies
        raise ConfigError(f"{where}: parameter {name!r}: Depends() is not a value marker")
    if default is marker:
        default = marker.default
    elif marker.default is not Ellipsis and default is not _inj._MISSING:
        raise ConfigError(f"{where}: parameter {name!r}: give the default either in "
                          f"{type(marker).__name__}(...) or after '=', not both")
    if default is Ellipsis:
        default = _inj._MISSING
    tp = _inj._strip_annotated(_strip_markers(hint))
    inner, optional = _inj._unwrap_optional(tp)
    inner = _inj._strip_annotated(inner)
    if optional and default is _inj._MISSING and not isinstance(marker, Path):
        default = None
    multi = typing.get_origin(inner) is list
    item = (typing.get_args(inner) or (str,))[0] if multi else inner
    if isinstance(marker, Body):
        return _body(name, marker, tp, default, build)
    if isinstance(marker, Path):
        kind = build.path_params.get(name) if isinstance(build.path_params, dict) else None
        if (marker.alias or name) not in build.path_params:
            raise ConfigError(f"{where}: Path() parameter {marker.alias or name!r} is not in "
                              "the route's path")
        del kind  # NOTE: a typed converter's value is passed as text to ``conv`` again
        conv = _inj.scalar_converter(item, where)
        return _param(name, _inj.PATH, marker.alias or name, checker(marker, conv),
                      _inj._MISSING, marker)
    if isinstance(marker, File):
        return _param(name, _inj.FORM, marker.alias or name,
                      _FormValue(marker.alias or name, item, multi, default, True, marker,
                                 where), default, marker)
    if isinstance(marker, Query) and _inj.is_model(inner):
        # NOTE: FastAPI's query parameter models, Annotated[Model, Query()]: as a bare
        # model parameter on a GET route (the fields are the query parameters)
        return _inj.Param(name, _inj.QUERY, name, None, query_model_builder(inner, where))
    conv = checker(marker, _inj.scalar_converter(item, where))
    if isinstance(marker, Form):
        key = marker.alias or name
        return _param(name, _inj.FORM, key, _FormValue(key, conv, multi, default, False,
                                                        marker, where), default, marker)
    if isinstance(marker, Header):
        key = marker.alias or (name.replace("_", "-") if marker.convert_underscores else name)
        return _param(name, _inj.HEADER, key.lower(),
                      _Lookup("header", key.lower(), conv, multi, default), default, marker)
    if isinstance(marker, Cookie):
        key = marker.alias or name
        return _param(name, _inj.COOKIE, key, _Lookup("cookie", key, conv, False, default),
                      default, marker)
    if isinstance(marker, Query):
        return _param(name, _inj.QUERY, marker.alias or name, conv, default, marker,
                      multi=multi)
    raise ConfigError(f"{where}: unknown parameter marker {marker!r}")


def _param(name: str, source: int, key: str, convert: Any, default: Any, marker: Any,
           multi: bool = False) -> _inj.Param:
    p = _inj.Param(name, source, key, convert, default, multi)
    p.marker = marker
    return p


class _Lookup:
    """A header or cookie value: ``await lookup(request, context, solved)``."""

    __slots__ = ("convert", "default", "key", "multi", "where")

    def __init__(self, where: str, key: str, convert: Any, multi: bool, default: Any) -> None:
        self.where, self.key, self.convert = where, key, convert
        self.multi, self.default = multi, default

    async def __call__(self, request: Any, context: Any, solved: Any) -> Any:
        if self.where == "header":
            headers = request.headers
            raw: Any = headers.getall(self.key) if self.multi else headers.get(self.key)
        else:
            raw = request.cookies.get(self.key)
        if raw is None or raw == []:
            if self.default is _inj._MISSING:
                raise RequestValidationError([{"loc": [self.where, self.key],
                                               "msg": "field required", "type": "missing"}])
            return self.default
        try:
            if self.multi:
                return [self.convert(v) for v in raw]
            return self.convert(raw)
        except ValueError as exc:
            raise RequestValidationError([{"loc": [self.where, self.key], "msg": str(exc),
                                           "type": "value_error", "input": raw}]) from None


class _FormValue:
    """A form field or uploaded file, from ``await request.form()``."""

    __slots__ = ("convert", "default", "file", "key", "multi", "want_bytes")

    def __init__(self, key: str, convert: Any, multi: bool, default: Any, file: bool,
                 marker: Any, where: str) -> None:
        self.key, self.multi, self.default, self.file = key, multi, default, file
        self.want_bytes = False
        if file:
            tp = convert
            if tp is bytes:
                self.want_bytes = True
            elif getattr(tp, "__name__", "") not in _UPLOAD_TYPES:
                raise ConfigError(f"{where}: File() parameter {key!r} must be annotated "
                                  f"UploadFile, bytes or a list of them, not {tp!r}")
            convert = None
        self.convert = convert

    async def __call__(self, request: Any, context: Any, solved: Any) -> Any:
        form = await request.form()
        values = form.getall(self.key, [])
        loc = ["body", self.key]
        if self.file:
            # NOTE: a browser sends an empty file part for "no file chosen"
            values = [v for v in values if not (hasattr(v, "filename") and v.filename == ""
                                                and v.size == 0)]
        if not values:
            if self.default is _inj._MISSING:
                raise RequestValidationError([{"loc": loc, "msg": "field required",
                                               "type": "missing"}])
            return self.default
        out = []
        for v in values if self.multi else values[-1:]:  # NOTE: the last one, as in FastAPI
            is_file = not isinstance(v, str)
            if is_file != self.file:
                msg = ("expected an uploaded file, got a text field" if self.file
                       else "expected a text field, got an uploaded file")
                raise RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])
            if self.file:
                out.append(await v.read() if self.want_bytes else v)
                continue
            try:
                out.append(self.convert(v))
            except ValueError as exc:
                raise RequestValidationError([{"loc": loc, "msg": str(exc),
                                               "type": "value_error", "input": v}]) from None
        return out if self.multi else out[0]


# -- Body ---------------------------------------------------------------------------------


def _body(name: str, marker: Body, tp: Any, default: Any, build: Build) -> _inj.Param:
    if not build.has_body:
        raise ConfigError(f"{build.where}: Body() parameter {name!r} needs a request body, but "
                          "the route's methods have none")
    key = marker.alias or name
    value = _BodyValue(key, _validator(tp, build.where), default, marker)
    return _param(name, _inj.BODY, key, value, default, marker)


class _BodyValue:
    """``Body()``: the whole JSON body, or (embedded) the member named ``key``."""

    __slots__ = ("default", "embed", "key", "marker", "validate")

    def __init__(self, key: str, validate: Any, default: Any, marker: Body) -> None:
        self.key, self.validate, self.default, self.marker = key, validate, default, marker
        self.embed = bool(marker.embed)

    def __call__(self, raw: bytes) -> Any:
        value = _inj._loads(raw)
        loc: list[Any] = ["body"]
        if self.embed:
            if not isinstance(value, dict):
                raise RequestValidationError([{"loc": loc, "msg": "expected a JSON object",
                                               "type": "type_error"}])
            if self.key not in value:
                if self.default is not _inj._MISSING:
                    return self.default
                raise RequestValidationError([{"loc": [*loc, self.key],
                                               "msg": "field required", "type": "missing"}])
            value, loc = value[self.key], [*loc, self.key]
        return self.validate(value, loc, self.marker)


def embed_all(params: list[_inj.Param]) -> None:
    """Several ``Body()`` parameters: each is a member of one JSON object (as FastAPI)."""
    bodies = [p for p in params if p.source == _inj.BODY and isinstance(p.convert, _BodyValue)]
    if len(bodies) > 1:
        for p in bodies:
            p.convert.embed = True


def _validator(tp: Any, where: str) -> Callable[[Any, list[Any], Param], Any]:
    """``validate(value, loc, marker)``: a decoded JSON value checked against ``tp``."""
    if tp in (inspect.Parameter.empty, Any):
        return lambda value, loc, marker: value
    uses_pydantic = hasattr(_inj._unwrap_optional(tp)[0], "model_validate")
    if uses_pydantic:
        from pydantic import TypeAdapter, ValidationError

        adapter = TypeAdapter(tp)

        def check_pydantic(value: Any, loc: list[Any], marker: Param) -> Any:
            try:
                value = adapter.validate_python(value, strict=False)
            except ValidationError as exc:
                raise RequestValidationError([
                    {"loc": [*loc, *e.get("loc", ())], "msg": e.get("msg", "invalid"),
                     "type": e.get("type", "value_error")}
                    for e in exc.errors(include_url=False)]) from None
            return _constrain(value, loc, marker)
        return check_pydantic
    import msgspec

    def check(value: Any, loc: list[Any], marker: Param) -> Any:
        try:
            value = msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            raise RequestValidationError([{"loc": loc, "msg": str(exc),
                                           "type": "validation_error"}]) from None
        return _constrain(value, loc, marker)
    return check


def _constrain(value: Any, loc: list[Any], marker: Param) -> Any:
    if not marker.constraints():
        return value
    try:
        return checker(marker, lambda v: v)(value)
    except (ValueError, TypeError) as exc:
        raise RequestValidationError([{"loc": loc, "msg": str(exc),
                                       "type": "value_error"}]) from None


__all__ = ["Build", "embed_all", "marked", "marker_of"]
