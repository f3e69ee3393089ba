"""Validation rules shared by the injector and stated by the OpenAPI document.

* :func:`constrained` / :func:`checked`: ``Annotated[int, msgspec.Meta(ge=1)]`` or
  ``Annotated[int, pydantic.Field(le=9)]`` on a path or query parameter is enforced
  (422), as the document's ``minimum``/``maximum`` say.
* :func:`whole_floats`: JSON Schema counts ``5.0`` as an integer; a body refused by
  strict validation is tried once more with whole-number floats written as ints.
"""

from __future__ import annotations

import enum
import typing
import uuid
from collections.abc import Callable
from typing import Any

from ember._json import dumps, loads


def _unwrap_optional(tp: Any) -> Any:
    from ember.injection import _unwrap_optional as unwrap

    return unwrap(tp)[0]


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec


def _top(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Annotated


def constrained(tp: Any) -> bool:
    """``Annotated[int, msgspec.Meta(ge=1)]`` or ``Annotated[int, Field(le=9)]``."""
    if not _top(tp):
        tp = _unwrap_optional(tp)  # Optional[Annotated[...]]
    if typing.get_origin(tp) is not typing.Annotated:
        return False
    return any(type(m).__module__.startswith(("msgspec", "pydantic", "annotated_types"))
               for m in typing.get_args(tp)[1:])


def checked(conv: Callable[[Any], Any], tp: Any, where: str) -> Callable[[Any], Any]:
    """``conv`` followed by the annotation's constraints (the document's minimum/maximum...)."""
    annotated = tp if _top(tp) else _unwrap_optional(tp)
    inner = typing.get_args(annotated)[0]
    if any(type(m).__module__.startswith(("pydantic", "annotated_types"))
           for m in typing.get_args(annotated)[1:]):
        from pydantic import TypeAdapter, ValidationError

        adapter = TypeAdapter(tp)

        def check_pydantic(raw: Any) -> Any:
            value = conv(raw)
            try:
                return adapter.validate_python(value)
            except ValidationError as exc:
                raise ValueError("; ".join(e["msg"] for e in exc.errors())) from None
        return check_pydantic
    msgspec = _msgspec()
    if msgspec is None:
        return conv
    if isinstance(inner, type) and issubclass(inner, (enum.Enum, uuid.UUID)):
        return conv

    def check(raw: Any) -> Any:
        value = conv(raw)
        try:
            return msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None
    return check



def whole_floats(raw: bytes) -> bytes | None:
    """``raw`` with whole-number floats (``5.0``, ``1e2``) written as integers, or None.

    NOTE: JSON Schema counts 5.0 as an integer, and the document says ``integer``
    for ``int`` fields; so after a failed validation the body is tried once more
    with such numbers as ints (float fields still accept them). Bools stay bools.
    """
    if not any(c in raw for c in (b".", b"e", b"E")):
        return None  # PERF: no float literal at all
    try:
        data = loads(raw)
    except ValueError:
        return None
    changed = False

    def walk(value: Any) -> Any:
        nonlocal changed
        if type(value) is float and value.is_integer():
            changed = True
            return int(value)
        if type(value) is dict:
            return {k: walk(v) for k, v in value.items()}
        if type(value) is list:
            return [walk(v) for v in value]
        return value
    try:
        data = walk(data)
    except RecursionError:  # NOTE: absurdly deep input: keep the first error
        return None
    if not changed:
        return None
    try:
        return dumps(data)
    except TypeError:
        # NOTE: orjson writes at most 255 levels (JSONEncodeError is a TypeError); deeper
        # input that the interpreter could still walk (3.12+ frames are cheap) keeps the
        # first error too, never a 500.
        return None
