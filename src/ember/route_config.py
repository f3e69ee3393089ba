"""Checks and options of one route, applied once at registration.

* :func:`parse_path` (:func:`ember.routing.templates.path_params`) reads a path template
  (``/users/{user_id:int}``) and raises :class:`~ember.exceptions.ConfigError` naming the
  route and the fix for a missing brace, an unknown converter or a repeated name.
* :func:`check_path_params` refuses handlers that cannot receive a path parameter
  (the template says ``{user_id}``, the handler takes ``id``).
* :class:`RouteDoc` holds the OpenAPI-only options of the route decorators.
* :func:`output_shaper` implements ``response_model=``: the handler's result is
  converted to the model (unknown fields dropped, as FastAPI does) before encoding.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ember.exceptions import ConfigError
from ember.routing.templates import path_params, template_key

#: ``response_model=`` default: the schema comes from the return annotation
INFER: Any = type("Infer", (), {"__repr__": lambda self: "INFER"})()


def converters() -> list[str]:
    """The names usable after ``:`` in a path template (``{id:int}``)."""
    from ember.routing import KINDS

    return list(KINDS)


# NOTE: the one template parser is the router's (ember.routing); these names stay for
# the modules that import them from here
parse_path = path_params
__all__ = ["INFER", "RouteDoc", "check_path_params", "converters", "output_shaper",
           "parse_path", "template_key"]


def check_path_params(path: str, params: Mapping[str, str], endpoint: Any, plan: Any) -> None:
    """ConfigError when a template parameter misses the handler (a renamed parameter).

    A handler receives ``{name}`` through a parameter called ``name``. When a path
    parameter reaches no handler parameter while the handler requires a query
    parameter, the two were meant to be one. A handler that takes the ``Request``
    (``request.path_params``) or ``**kwargs`` may read path parameters itself.
    """
    from ember.injection import _MISSING, PATH, QUERY, REQUEST, WEBSOCKET

    if not params:
        return
    try:
        sig = inspect.signature(endpoint)
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    if any(p.source in (REQUEST, WEBSOCKET) for p in plan.params):
        return
    taken = {p.name for p in plan.params if p.source == PATH}
    missing = [n for n in params if n not in taken]
    # NOTE: a path parameter may be a pure routing constraint ('/a/{x:int}/b/{y}' on
    # 'def h(y)'); it is a mistake when the handler instead requires a parameter that
    # the path does not provide, which would then be read from the query string.
    orphans = [p.name for p in plan.params
               if p.source == QUERY and p.convert is not None and p.default is _MISSING]
    if not missing or not orphans:
        return
    name = missing[0]
    qual = getattr(endpoint, "__qualname__", repr(endpoint))
    py = {"int": "int", "float": "float", "uuid": "UUID"}.get(params[name], "str")
    raise ConfigError(
        f"route {path!r}: path parameter {name!r} has no parameter in handler {qual}, which "
        f"requires {', '.join(repr(o) for o in orphans)} from the query string instead; "
        f"rename the handler's parameter to '{name}: {py}' or the path's '{{{name}}}' to "
        f"'{{{orphans[0]}}}'"
    )


class RouteDoc:
    """What the OpenAPI document says about a route beyond its signature.

    Names follow FastAPI's route decorators: ``summary``, ``description``, ``tags``,
    ``deprecated``, ``operation_id``, ``responses`` (``{404: Model}``,
    ``{404: {"description": ..., "model": Model}}`` or a full OpenAPI response
    object), ``response_model`` (the success body's type; ``None`` documents no
    schema) and ``openapi_extra`` (merged last into the operation object).
    """

    __slots__ = ("deprecated", "description", "openapi_extra", "operation_id",
                 "response_model", "responses", "summary", "tags")

    def __init__(self, *, summary: str | None = None, description: str | None = None,
                 tags: Iterable[str] | None = None, deprecated: bool = False,
                 operation_id: str | None = None,
                 responses: Mapping[int | str, Any] | None = None,
                 response_model: Any = INFER,
                 openapi_extra: Mapping[str, Any] | None = None, where: str = "route") -> None:
        for key, value in (("summary", summary), ("description", description),
                           ("operation_id", operation_id)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{where}: {key}= must be a string, got {value!r}")
        if isinstance(tags, str):
            tags = [tags]
        tags = list(tags or ())
        if not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{where}: tags= must be strings, got {tags!r}")
        if openapi_extra is not None and not isinstance(openapi_extra, Mapping):
            raise ConfigError(f"{where}: openapi_extra= must be a dict (merged into the "
                              f"OpenAPI operation), got {openapi_extra!r}")
        self.summary = summary
        self.description = description
        self.tags = tags
        self.deprecated = bool(deprecated)
        self.operation_id = operation_id
        self.responses = _check_responses(responses, where)
        self.response_model = response_model
        self.openapi_extra = dict(openapi_extra or {})


def _check_responses(responses: Mapping[int | str, Any] | None,
                     where: str) -> dict[str, Any]:
    if responses is None:
        return {}
    if not isinstance(responses, Mapping):
        raise ConfigError(f"{where}: responses= must map status codes to a model or an "
                          f"OpenAPI response, e.g. {{404: {{'description': 'Not found'}}}}; "
                          f"got {responses!r}")
    out: dict[str, Any] = {}
    for code, value in responses.items():
        key = str(code)
        if not (key == "default" or re.fullmatch(r"[1-5](\d\d|XX)", key)):
            raise ConfigError(f"{where}: responses= key {code!r} is not a status code "
                              "(100-599, '4XX' or 'default')")
        if value is not None and not isinstance(value, (Mapping, type)) and not hasattr(
                value, "__origin__"):
            raise ConfigError(f"{where}: responses[{code!r}] must be a model type or a dict "
                              f"such as {{'description': ..., 'model': Model}}, got {value!r}")
        out[key] = value
    return out


def output_shaper(model: Any, where: str) -> Callable[[Any], Any]:
    """A function converting a handler's result to ``model`` as JSON-ready builtins.

    Fields the model lacks are dropped (so ``response_model=PublicUser`` never leaks
    a password field). A result that does not fit raises ``TypeError`` (a 500: the
    server broke its own contract).
    """
    if _uses_pydantic(model):
        from pydantic import TypeAdapter

        adapter = TypeAdapter(model)

        def shape_pydantic(result: Any) -> Any:
            try:
                value = adapter.validate_python(result, from_attributes=True)
            except Exception as exc:
                raise TypeError(f"{where}: the result does not match response_model "
                                f"{model!r}: {exc}") from None
            return adapter.dump_python(value, mode="json")
        return shape_pydantic
    try:
        import msgspec
    except ImportError:
        from ember.exceptions import MissingDependency

        raise MissingDependency("msgspec", "validation", "response_model=") from None
    try:
        msgspec.inspect.type_info(model)
    except TypeError as exc:
        raise ConfigError(f"{where}: response_model={model!r} is not a type msgspec or "
                          f"pydantic can check: {exc}") from None

    def shape(result: Any) -> Any:
        if hasattr(result, "model_dump"):
            result = result.model_dump()
        try:
            value = msgspec.convert(result, model, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise TypeError(f"{where}: the result does not match response_model "
                            f"{model!r}: {exc}") from None
        return msgspec.to_builtins(value)
    return shape


def _uses_pydantic(tp: Any) -> bool:
    import typing

    if isinstance(tp, type) and hasattr(tp, "model_validate"):
        return True
    return any(_uses_pydantic(a) for a in typing.get_args(tp) if not isinstance(a, (str, int)))
