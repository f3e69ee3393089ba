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

import inspect
import sys
import typing
import uuid
from collections.abc import Callable
from typing import Any

from ember._plan import (
    _MISSING,
    BODY,
    CONTEXT,
    DEPENDENCY,
    HEADER,
    LOCATIONS,
    PATH,
    QUERY,
    REQUEST,
    RESOURCE,
    WEBSOCKET,
    Build,
    Param,
    _strip_annotated,
    _unwrap_optional,
    is_model,
    scalar_converter,
)
from ember._plan import COOKIE as COOKIE  # NOTE: re-exported (openapi_params)
from ember._plan import FORM as FORM
from ember.exceptions import ConfigError, HTTPException, RequestValidationError
from ember.validation import body_decoder as _body_decoder
from ember.validation import checked as _checked
from ember.validation import constrained as _constrained
from ember.validation import query_model_builder as _query_model_builder

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


# -- the plan --------------------------------------------------------------------


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
                    errors.append({"loc": [LOCATIONS[source], p.key], "msg": "field required",
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
                errors.append({"loc": [LOCATIONS[source], p.key], "msg": str(exc),
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

    ``_build``: set when ``fn`` is a dependency (:class:`ember._plan.Build`).
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
            from ember._markers import marker_of

            marker = marker_of(hint, prm.default)
            if marker is not None:
                build = _build or Build(path_params, method_has_body, ai_route, where,
                                        analyse=analyse)
                params.append(_marked(name, marker, hint, default, build))
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


def _marked(name: str, marker: Any, hint: Any, default: Any, build: Build) -> Param:
    """The plan entry of a parameter carrying a marker (``Query()``, ``Depends()``...)."""
    from ember.params import Depends

    if isinstance(marker, Depends):
        from ember.dependencies import depends_param

        return depends_param(name, marker, hint, build)
    from ember._markers import marked

    return marked(name, marker, hint, default, build)


def add_route_dependencies(plan: Plan, dependencies: tuple[Any, ...],
                           path_params: set[str] | dict[str, str], has_body: bool,
                           ai_route: bool) -> None:
    """``dependencies=[Depends(fn), ...]`` of a route: resolved first, values dropped
    (:func:`ember.dependencies.add_route_dependencies`, handed :func:`analyse`)."""
    from ember.dependencies import add_route_dependencies as add

    add(plan, dependencies, Build(path_params, has_body, ai_route, "dependencies=",
                                  analyse=analyse))


__all__ = ["HTTPException", "Plan", "add_route_dependencies", "analyse", "is_model", "register_resource",
           "scalar_converter"]
