"""The vocabulary of an injection plan: where a value comes from, one plan entry.

The bottom of the injection modules, which import it and nothing above it:
:mod:`ember.validation` (body and constraint checks), :mod:`ember._markers`
(``Query()``, ``Header()``...), :mod:`ember.dependencies` (``Depends``) and, reading
them all, :mod:`ember.injection` (the plan of a handler). It holds the source
constants, :class:`Param`, :class:`Build` (what a marker's entry needs to know about
its route), the type-hint helpers and the scalar converters of path, query, header
and form values.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from ember import _json
from ember.exceptions import ConfigError, RequestValidationError

_MISSING = object()

#: where a value comes from
REQUEST, PATH, QUERY, BODY, CONTEXT, WEBSOCKET, RESOURCE = range(7)
#: values read through a marker or a dependency (:mod:`ember._markers`,
#: :mod:`ember.dependencies`): ``convert`` is ``async (request, context, solved) -> value``
#: raising RequestValidationError
HEADER, COOKIE, FORM, DEPENDENCY = range(7, 11)
LOCATIONS = {PATH: "path", QUERY: "query", BODY: "body"}


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


# -- JSON bodies ----------------------------------------------------------------------


def _too_deep() -> RequestValidationError:
    return RequestValidationError([{"loc": ["body"], "msg": "invalid JSON: nested too deeply",
                                    "type": "json_invalid"}])


def _loads(raw: bytes) -> Any:
    try:
        return _json.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError([{"loc": ["body"], "msg": f"invalid JSON: {exc}",
                                       "type": "json_invalid"}]) from None


# -- plan entries --------------------------------------------------------------------


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


class Build:
    """What a marker's plan entry needs to know about the route being registered.

    ``analyse`` is :func:`ember.injection.analyse`, handed down so that a ``Depends``
    builds its function's plan without importing the module above it.
    """

    __slots__ = ("ai_route", "analyse", "has_body", "path_params", "stack", "where")

    def __init__(self, path_params: Any, has_body: bool, ai_route: bool, where: str,
                 stack: tuple[Any, ...] = (), *, analyse: Callable[..., Any]) -> None:
        self.path_params = path_params
        self.has_body = has_body
        self.ai_route = ai_route
        self.where = where
        self.stack = stack
        self.analyse = analyse


__all__ = [
    "BODY",
    "CONTEXT",
    "COOKIE",
    "DEPENDENCY",
    "FORM",
    "HEADER",
    "LOCATIONS",
    "PATH",
    "QUERY",
    "REQUEST",
    "RESOURCE",
    "WEBSOCKET",
    "Build",
    "Param",
    "is_model",
    "scalar_converter",
]
