"""Handler parameter injection, analysed once per route at registration.

A handler's signature is turned into a small *plan*: for each parameter, where
its value comes from (the request itself, a path parameter, a query parameter,
the JSON body, the conversation context) and how it is converted.  At request
time the plan is executed with no ``inspect`` calls, and a handler that takes
nothing or only the request is called directly.

Conversion failures are collected for every parameter and raised together as
one :class:`~ember.exceptions.RequestValidationError` (422) that names each
bad field, its location and why.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from ember import _json
from ember.exceptions import ConfigError, HTTPException, RequestValidationError
from ember.validation import checked as _checked
from ember.validation import constrained as _constrained
from ember.validation import whole_floats as _whole_floats

_MISSING = object()

#: where a value comes from
REQUEST, PATH, QUERY, BODY, CONTEXT, WEBSOCKET, RESOURCE = range(7)
#: values read through a marker or a dependency (:mod:`ember._markers`, :mod:`ember.dependencies`): ``convert`` is
#: ``async (request, context, solved) -> value`` raising RequestValidationError
HEADER, COOKIE, FORM, DEPENDENCY = range(7, 11)
_LOCATIONS = {PATH: "path", QUERY: "query", BODY: "body"}

_SCALARS: tuple[type, ...] = (str, int, float, bool, uuid.UUID, bytes)
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


#: injectable resources by annotation type (e.g. a database connection), filled by the
#: optional packages that provide them: ``factory(handler) -> provider(request)``, where
#: ``provider(request)`` is an async context manager giving the value for one request.
_RESOURCES: dict[type, Callable[[Callable[..., Any]], Callable[[Any], Any]]] = {}


def register_resource(tp: type, factory: Callable[[Callable[..., Any]], Callable[[Any], Any]]
                      ) -> None:
    """Inject a value for parameters annotated ``tp`` (or a subclass), scoped to one request.

    ``factory(handler)`` runs once per route at registration and returns
    ``provider(request)``, an async context manager entered after every other
    parameter is validated and exited when the handler returns, raises or is
    cancelled.
    """
    _RESOURCES[tp] = factory


def _resource_factory(tp: Any) -> Any:
    if not isinstance(tp, type):
        return None
    for cls, factory in _RESOURCES.items():
        if tp is cls or issubclass(tp, cls):
            return factory
    return None


def _is_request_type(tp: Any) -> bool:
    # NOTE: a subclass of Request exists only once ember.requests is imported; looking it
    # up in sys.modules keeps building an app from importing the request layer (asyncio).
    requests = sys.modules.get("ember.requests")
    return requests is not None and isinstance(tp, type) and issubclass(tp, requests.Request)


def _is_context_type(tp: Any) -> bool:
    return isinstance(tp, type) and tp.__name__ == "ConversationContext"


def is_model(tp: Any) -> bool:
    """A dataclass, ``msgspec.Struct`` or pydantic model class."""
    if not isinstance(tp, type):
        return False
    return (
        dataclasses.is_dataclass(tp)
        or hasattr(tp, "__struct_fields__")
        or hasattr(tp, "model_validate")
    )


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _strip_annotated(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Annotated:
        return typing.get_args(tp)[0]
    return tp


# -- scalar conversion -------------------------------------------------------


def _conv_bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("value is not a valid boolean (use true/false, 1/0, yes/no, on/off)")


_INT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _conv_int(raw: str) -> int:
    # NOTE: decimal digits only, as JSON writes integers: int() would also take
    # "1_000", " 5", "+5" and non-ASCII digits, which the document's "integer" does not.
    if _INT.fullmatch(raw):
        try:
            return int(raw)
        except ValueError:  # past Python's 4300-digit conversion limit
            pass
    raise ValueError("value is not a valid integer")


def _conv_float(raw: str) -> float:
    if _NUMBER.fullmatch(raw):
        value = float(raw)
        if math.isfinite(value):
            return value
    raise ValueError("value is not a valid number")


def _conv_uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValueError("value is not a valid UUID") from None


def scalar_converter(tp: Any, where: str) -> Callable[[Any], Any]:
    """A function turning a raw string into ``tp``; ConfigError for unknown types."""
    if tp is inspect.Parameter.empty or tp is Any or tp is str:
        return str
    if tp is bool:
        return _conv_bool
    if tp is int:
        return _conv_int
    if tp is float:
        return _conv_float
    if tp is uuid.UUID:
        return _conv_uuid
    if tp is bytes:
        return lambda raw: raw.encode("utf-8") if isinstance(raw, str) else raw
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        def conv_enum(raw: str) -> Any:
            for member in tp:
                if str(member.value) == raw:
                    return member
            allowed = ", ".join(repr(str(m.value)) for m in tp)
            raise ValueError(f"value must be one of {allowed}")
        return conv_enum
    if typing.get_origin(tp) is typing.Literal:
        choices = typing.get_args(tp)

        def conv_literal(raw: str) -> Any:
            for choice in choices:
                if str(choice) == raw:
                    return choice
            raise ValueError(f"value must be one of {', '.join(repr(str(c)) for c in choices)}")
        return conv_literal
    raise ConfigError(
        f"{where}: cannot convert a string to {tp!r}; use str, int, float, bool, UUID, an "
        "Enum or a Literal"
    )


# -- body decoding -------------------------------------------------------------


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec


_MISSING_FIELD = re.compile(r"Object missing required field `([^`]*)`")

def _body_decoder(tp: Any, where: str) -> Callable[[bytes], Any]:
    """A function turning JSON bytes into ``tp`` or raising RequestValidationError."""
    if hasattr(tp, "model_validate_json"):  # pydantic v2

        def decode_pydantic(raw: bytes) -> Any:
            from pydantic import ValidationError

            try:
                return tp.model_validate_json(raw, strict=True)
            except RecursionError:
                raise _too_deep() from None
            except ValidationError as exc:
                retry = _whole_floats(raw)
                if retry is not None:
                    try:
                        return tp.model_validate_json(retry, strict=True)
                    except ValidationError:
                        pass
                raise RequestValidationError([
                    {"loc": ["body", *err.get("loc", ())], "msg": err.get("msg", "invalid"),
                     "type": err.get("type", "value_error")}
                    for err in exc.errors(include_url=False)
                ]) from None
        return decode_pydantic

    msgspec = _msgspec()
    if msgspec is not None and (is_model(tp) or tp in (dict, list) or typing.get_origin(tp)):
        decoder = msgspec.json.Decoder(tp)

        def decode_msgspec(raw: bytes) -> Any:
            try:
                return decoder.decode(raw)
            except msgspec.ValidationError as exc:
                retry = _whole_floats(raw)
                if retry is not None:
                    try:
                        return decoder.decode(retry)
                    except msgspec.ValidationError:
                        pass
                msg = str(exc)
                loc: list[Any] = ["body"]
                if " - at `$" in msg:
                    msg, path = msg.rsplit(" - at `$", 1)
                    loc += [p for p in path.rstrip("`").replace("[", ".").replace("]", "")
                            .split(".") if p]
                kind = "validation_error"
                missing = _MISSING_FIELD.fullmatch(msg)
                if missing is not None:  # NOTE: name the field, as for query parameters
                    loc.append(missing.group(1))
                    msg, kind = "field required", "missing"
                raise RequestValidationError([{"loc": loc, "msg": msg, "type": kind}]) from None
            except msgspec.DecodeError as exc:
                raise RequestValidationError([{"loc": ["body"], "msg": f"invalid JSON: {exc}",
                                                "type": "json_invalid"}]) from None
            except RecursionError:  # NOTE: msgspec recurses per nesting level (issue #10)
                raise _too_deep() from None
        return decode_msgspec

    if dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if tp in (dict, list) or typing.get_origin(tp) in (dict, list):
        want = typing.get_origin(tp) or tp

        def decode_plain(raw: bytes) -> Any:
            value = _loads(raw)
            if not isinstance(value, want):
                raise RequestValidationError([{"loc": ["body"], "msg": f"expected a JSON "
                                               f"{'object' if want is dict else 'array'}",
                                               "type": "type_error"}])
            return value
        return decode_plain
    raise ConfigError(f"{where}: unsupported body type {tp!r}")


def _too_deep() -> RequestValidationError:
    return RequestValidationError([{"loc": ["body"], "msg": "invalid JSON: nested too deeply",
                                    "type": "json_invalid"}])


def _loads(raw: bytes) -> Any:
    try:
        return _json.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError([{"loc": ["body"], "msg": f"invalid JSON: {exc}",
                                       "type": "json_invalid"}]) from None


def _dataclass_decoder(tp: Any) -> Callable[[bytes], Any]:
    """Fallback without msgspec: checks required fields and simple scalar types."""
    hints = typing.get_type_hints(tp)

    def decode(raw: bytes) -> Any:
        data = _loads(raw)
        if not isinstance(data, dict):
            raise RequestValidationError([{"loc": ["body"], "msg": "expected a JSON object",
                                           "type": "type_error"}])
        errors = []
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    errors.append({"loc": ["body", f.name], "msg": "field required",
                                   "type": "missing"})
                continue
            value = data[f.name]
            want = hints.get(f.name)
            if want in (int, float, str, bool) and not (
                (isinstance(value, want) and not (want is int and isinstance(value, bool)))
                or (want is float and isinstance(value, int) and not isinstance(value, bool))
            ):
                errors.append({"loc": ["body", f.name], "msg": f"expected {want.__name__}",
                               "type": "type_error"})
                continue
            kwargs[f.name] = value
        if errors:
            raise RequestValidationError(errors)
        return tp(**kwargs)
    return decode


def _query_model_builder(tp: Any, where: str) -> Callable[[Any], Any]:
    """Build a model from query parameters (GET with a model-typed parameter)."""
    hints = typing.get_type_hints(tp) if not hasattr(tp, "model_fields") else {
        k: v.annotation for k, v in tp.model_fields.items()
    }
    convs = {}
    for name, ftp in hints.items():
        inner, _ = _unwrap_optional(_strip_annotated(ftp))
        if typing.get_origin(inner) is list:
            (item,) = typing.get_args(inner) or (str,)
            convs[name] = (True, scalar_converter(item, where))
        else:
            convs[name] = (False, scalar_converter(inner, where))
    # NOTE: a pydantic model with extra="allow" gets the other query keys (a repeated one
    # as a list), with extra="forbid" a 422 for them, as in FastAPI (its #14356)
    config = getattr(tp, "model_config", None)
    extras = isinstance(config, dict) and config.get("extra") in ("allow", "forbid")

    def build(query: Any) -> Any:
        data: dict[str, Any] = {}
        errors = []
        for name, (multi, conv) in convs.items():
            values = query.getall(name)
            if not values:
                continue
            try:
                data[name] = [conv(v) for v in values] if multi else conv(values[-1])
            except ValueError as exc:
                errors.append({"loc": ["query", name], "msg": str(exc), "type": "value_error"})
        if extras:
            for key in query:
                if key not in convs:
                    values = query.getall(key)
                    data[key] = values[0] if len(values) == 1 else values
        if errors:
            raise RequestValidationError(errors)
        return _construct(tp, data)
    return build


def _construct(tp: Any, data: dict[str, Any]) -> Any:
    if hasattr(tp, "model_validate"):
        from pydantic import ValidationError

        try:
            return tp.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError([
                {"loc": ["query", *err.get("loc", ())], "msg": err.get("msg", "invalid"),
                 "type": err.get("type", "value_error")} for err in exc.errors(include_url=False)
            ]) from None
    msgspec = _msgspec()
    if msgspec is not None:
        try:
            return msgspec.convert(data, tp)
        except msgspec.ValidationError as exc:
            raise RequestValidationError([{"loc": ["query"], "msg": str(exc),
                                           "type": "validation_error"}]) from None
    try:
        return tp(**data)
    except TypeError as exc:
        raise RequestValidationError([{"loc": ["query"], "msg": str(exc),
                                       "type": "validation_error"}]) from None


# -- the plan --------------------------------------------------------------------


class Param:
    """One handler parameter: its source, name, converter and default."""

    __slots__ = ("convert", "default", "key", "marker", "multi", "name", "source")

    def __init__(self, name: str, source: int, key: str, convert: Any, default: Any,
                 multi: bool = False) -> None:
        self.name = name
        self.source = source
        self.key = key
        self.convert = convert
        self.default = default
        self.multi = multi
        #: the ``Query()``/``Header()``/``Depends()``... marker it was declared with, or None
        self.marker: Any = None


class Plan:
    """How to call one handler; built once by :func:`analyse`."""

    __slots__ = ("hints", "is_async", "kind", "params", "scoped")

    #: kinds: "none" (no arguments), "request" (just the request), "general"
    def __init__(self, params: list[Param], is_async: bool) -> None:
        self.params = params
        self.is_async = is_async
        self.hints: dict[str, Any] = {}
        #: some parameters are request-scoped resources or dependencies: call through
        #: :meth:`call_scoped`
        self.scoped = any(p.source in (RESOURCE, DEPENDENCY) for p in params)
        if not params:
            self.kind = "none"
        elif len(params) == 1 and params[0].source == REQUEST:
            self.kind = "request"
        elif all(p.source == PATH and p.convert is None and p.name == p.key for p in params):
            self.kind = "path"  # PERF: fn(**request.path_params), already converted
        else:
            self.kind = "general"

    async def arguments(self, request: Any, context: Any = None,
                        solved: Any = None) -> dict[str, Any]:
        """The keyword arguments for one call; RequestValidationError on bad input.

        ``solved``: the request's dependency state (:class:`ember.dependencies.Solved`).
        """
        kwargs: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for p in self.params:
            source = p.source
            if source >= HEADER:  # a header, cookie, form field or dependency
                try:
                    kwargs[p.name] = await p.convert(request, context, solved)
                except RequestValidationError as exc:
                    errors.extend(exc.errors)
                continue
            if source == REQUEST:
                kwargs[p.name] = request
                continue
            if source in (CONTEXT, WEBSOCKET):
                kwargs[p.name] = context
                continue
            if source == RESOURCE:  # entered by call_scoped, once the rest is valid
                continue
            if source == BODY:
                raw = await request.body()
                if not raw:
                    if p.default is not _MISSING:
                        kwargs[p.name] = p.default
                        continue
                    errors.append({"loc": ["body"], "msg": "a JSON body is required",
                                   "type": "missing"})
                    continue
                try:
                    kwargs[p.name] = p.convert(raw)
                except RequestValidationError as exc:
                    errors.extend(exc.errors)
                continue
            if source == PATH:
                raw = request.path_params.get(p.key, _MISSING)
            else:  # QUERY
                if p.convert is None:  # a model built from the query string
                    try:
                        kwargs[p.name] = p.default(request.query_params)
                    except RequestValidationError as exc:
                        errors.extend(exc.errors)
                    continue
                query = request.query_params
                raw = query.getall(p.key)
                if not raw:
                    raw = _MISSING
                elif not p.multi:
                    raw = raw[-1]  # NOTE: ?a=1&a=2 gives a scalar the last one, as in FastAPI
            if raw is _MISSING:
                if p.default is _MISSING:
                    errors.append({"loc": [_LOCATIONS[source], p.key], "msg": "field required",
                                   "type": "missing"})
                else:
                    kwargs[p.name] = p.default
                continue
            if p.convert is None:  # converted by the router already
                kwargs[p.name] = raw
                continue
            try:
                if p.multi:
                    kwargs[p.name] = [p.convert(v) for v in raw]
                elif isinstance(raw, str):
                    kwargs[p.name] = p.convert(raw)
                else:  # already converted by the router
                    kwargs[p.name] = raw if p.convert is str else p.convert(str(raw))
            except ValueError as exc:
                errors.append({"loc": [_LOCATIONS[source], p.key], "msg": str(exc),
                               "type": "value_error", "input": raw})
        if errors:
            raise RequestValidationError(errors)
        return kwargs


    async def call_scoped(self, route: Any, request: Any, context: Any = None) -> Any:
        """Call ``route``'s handler with resources held for the call (released whatever
        happens) and dependencies resolved (:mod:`ember.dependencies`); a Response."""
        from ember.dependencies import call_scoped

        return await call_scoped(self, route, request, context)


def _resolve_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        # NOTE: string annotations naming classes local to the registering function
        # resolve against the locals of the frames that registered the handler.
        frame = sys._getframe(1)
        localns: dict[str, Any] = {}
        for _ in range(12):
            if frame is None:
                break
            localns = {**frame.f_locals, **localns}
            try:
                return typing.get_type_hints(fn, localns=localns, include_extras=True)
            except NameError:
                frame = frame.f_back
        raise ConfigError(
            f"cannot resolve the annotations of {fn.__qualname__}: {exc}. With "
            "'from __future__ import annotations', annotation types must be importable at "
            "module level"
        ) from None
    except Exception:
        return dict(getattr(fn, "__annotations__", {}))


_ROUTER_TYPES = {"int": int, "float": float, "uuid": uuid.UUID, "str": str, "path": str}
#: annotations that cannot hold what a typed converter produced
_CONTRADICTS: dict[str, tuple[Any, ...]] = {
    "int": (str, bytes, bool, uuid.UUID),
    "float": (str, bytes, bool, int, uuid.UUID),
    "uuid": (str, bytes, bool, int, float),
}


def analyse(fn: Callable[..., Any], path_params: set[str] | dict[str, str],
            method_has_body: bool, ai_route: bool = False, websocket: bool = False,
            _build: Any = None) -> Plan:
    """Build the call plan for ``fn``; ConfigError for what cannot be injected.

    ``_build``: set when ``fn`` is a dependency (:class:`ember.dependencies.Build`).
    """
    where = f"handler {getattr(fn, '__qualname__', fn)!r}" if _build is None else _build.where
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read its signature: {exc}") from None
    hints = _resolve_hints(fn if inspect.isfunction(fn) or inspect.ismethod(fn)
                           else fn.__init__ if isinstance(fn, type)
                           else getattr(fn, "__call__", fn))  # noqa: B004
    params: list[Param] = []
    deps: Any = None
    for name, prm in sig.parameters.items():
        if prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
            continue
        if prm.kind == prm.POSITIONAL_ONLY:
            raise ConfigError(f"{where}: positional-only parameter {name!r} cannot be injected")
        hint = hints.get(name, prm.annotation)
        default = _MISSING if prm.default is prm.empty else prm.default
        if deps is None:
            deps = sys.modules.get("ember.params")  # NOTE: loaded once a marker exists
        if deps is not None:
            from ember._markers import Build, marked, marker_of

            marker = marker_of(hint, prm.default)
            if marker is not None:
                build = _build or Build(path_params, method_has_body, ai_route, where)
                params.append(marked(name, marker, hint, default, build))
                continue
        tp = _strip_annotated(hint)
        inner, optional = _unwrap_optional(tp)
        inner = _strip_annotated(inner)  # Optional[Annotated[int, Meta(ge=1)]]
        if optional and default is _MISSING:
            default = None
        if _is_request_type(inner) or (name == "request" and tp in (prm.empty, Any)):
            params.append(Param(name, REQUEST, name, None, _MISSING))
            continue
        if websocket and (getattr(inner, "__name__", "") == "WebSocket" or (
                name in ("ws", "websocket") and tp is prm.empty)):
            params.append(Param(name, WEBSOCKET, name, None, _MISSING))
            continue
        if _is_context_type(inner) or (ai_route and name == "context" and tp is prm.empty):
            if not ai_route:
                raise ConfigError(f"{where}: ConversationContext is injected on @app.ai_route "
                                  "handlers only")
            params.append(Param(name, CONTEXT, name, None, _MISSING))
            continue
        factory = _resource_factory(inner)
        if factory is not None:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigError(f"{where}: parameter {name!r} ({inner.__name__}) is injected "
                                  "into 'async def' handlers only")
            params.append(Param(name, RESOURCE, name, factory(fn), _MISSING))
            continue
        if name in path_params:
            kind = path_params.get(name) if isinstance(path_params, dict) else None
            routed = _ROUTER_TYPES.get(kind or "str")
            if kind in _CONTRADICTS and inner in _CONTRADICTS[kind]:
                raise ConfigError(
                    f"{where}: path parameter {name!r} is converted by '{{{name}:{kind}}}' "
                    f"but annotated {getattr(inner, '__name__', inner)}; annotate it "
                    f"{routed.__name__} or drop ':{kind}' from the path"
                )
            if routed is not None and (inner is routed or (
                    routed is str and inner in (inspect.Parameter.empty, Any))):
                conv = None  # the router's convertor already produced this type
            else:
                conv = scalar_converter(inner, where)
            if _constrained(hints.get(name)):
                conv = _checked(conv or routed or str, hints[name], where)
            params.append(Param(name, PATH, name, conv, default))
            continue
        if is_model(inner) or inner in (dict, list) or typing.get_origin(inner) is dict:
            if method_has_body:
                params.append(Param(name, BODY, name, _body_decoder(inner, where), default))
            else:
                if not is_model(inner):
                    raise ConfigError(f"{where}: parameter {name!r} typed {inner!r} needs a "
                                      "request body, but the route's methods have none")
                params.append(Param(name, QUERY, name, None, _query_model_builder(inner, where)))
            continue
        if typing.get_origin(inner) is list:
            (item,) = typing.get_args(inner) or (str,)
            params.append(Param(name, QUERY, name, scalar_converter(item, where),
                                default, multi=True))
            continue
        try:
            conv = scalar_converter(inner, where)
        except ConfigError:
            raise ConfigError(
                f"{where}: don't know how to inject parameter {name!r} annotated {tp!r}. "
                "Use Request, a path or query parameter of a scalar type, or a dataclass / "
                "msgspec.Struct / pydantic model for the JSON body"
            ) from None
        if _constrained(hints.get(name)):
            conv = _checked(conv, hints[name], where)
        params.append(Param(name, QUERY, name, conv, default))
    if deps is not None:
        from ember._markers import embed_all

        embed_all(params)
    plan = Plan(params, inspect.iscoroutinefunction(fn))
    plan.hints = hints
    if websocket:
        if not any(p.source == WEBSOCKET for p in params):
            raise ConfigError(f"{where}: a WebSocket handler needs a parameter 'ws: WebSocket'")
        if not plan.is_async:
            raise ConfigError(f"{where}: WebSocket handlers must be 'async def'")
        plan.kind = "general"
    if plan.kind == "path" and len(params) != len(path_params):
        plan.kind = "general"  # the handler takes only some of the path parameters
    return plan


__all__ = ["HTTPException", "Plan", "analyse", "is_model", "register_resource",
           "scalar_converter"]
