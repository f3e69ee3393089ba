"""Whole-number floats where a gateway schema takes an integer.

JSON has one number type: JSON Schema (what ``/openapi.json`` publishes) and OpenAI's
API count ``5.0`` as the integer 5, while msgspec's strict decoder answers "Expected
`int`, got `float`".  :func:`decode` keeps msgspec's fast path for the usual request
and, only when that fails on a float, turns every whole-number float found at an
integer position of the schema into an ``int`` — in the request's JSON object itself,
so what is forwarded upstream is the integer too — and validates again.  A float with
a fraction (``5.5``) still fails, naming the field; so do ``"5"`` and ``true``, as at
OpenAI.  Floats anywhere else (a ``float`` field, a tool's JSON Schema, ``metadata``)
are left exactly as sent.

The positions come from the Struct types themselves (:mod:`msgspec.inspect`), so a
field added to a schema is covered without a list to keep in step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec
from msgspec import inspect as mi

Fix = Callable[[Any], Any]

__all__ = ["decode", "whole_numbers"]


def decode(raw: bytes, body: Any, type_: Any,
           first: Callable[[bytes, Any], Any] | None = None) -> Any:
    """Validate ``raw`` (whose parsed JSON is ``body``) as ``type_``.

    ``first`` is the usual decoder (``msgspec.json.decode`` by default); when it fails
    on a float, whole-number floats at integer positions of ``body`` become ints (in
    place) and ``body`` is validated again.  Raises ``msgspec.ValidationError``.
    """
    try:
        if first is None:
            return msgspec.json.decode(raw, type=type_)
        return first(raw, type_)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise
    return msgspec.convert(whole_numbers(body, type_), type_)


def whole_numbers(value: Any, type_: Any) -> Any:
    """``value`` with whole-number floats at ``type_``'s integer positions made ints
    (containers are changed in place)."""
    fix = _plan_for(type_)
    return value if fix is None else fix(value)


@lru_cache(maxsize=64)
def _plan_for(type_: Any) -> Fix | None:
    return _Planner().plan(mi.type_info(type_))


def _int(value: Any) -> Any:
    if type(value) is float and value.is_integer():  # NOTE: inf/nan are never whole
        return int(value)
    return value


_ARRAYS = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)


class _Planner:
    """Compiles an :mod:`msgspec.inspect` type into a fixer, or ``None`` where the type
    holds no integer at all (such subtrees are never walked)."""

    def __init__(self) -> None:
        self.structs: dict[int, Any] = {}

    def plan(self, t: Any) -> Fix | None:
        if isinstance(t, mi.Metadata):
            return self.plan(t.type)
        if isinstance(t, mi.IntType):
            return _int
        if isinstance(t, _ARRAYS):
            return _each(self.plan(t.item_type))
        if isinstance(t, mi.TupleType):
            items = [self.plan(x) for x in t.item_types]
            return _positions(items) if any(items) else None
        if isinstance(t, mi.DictType | mi.FrozenDictType):
            return _values(self.plan(t.value_type))
        if isinstance(t, mi.StructType | mi.TypedDictType | mi.DataclassType):
            return self.struct(t)
        if isinstance(t, mi.UnionType):
            return self.union(t)
        return None

    def struct(self, t: Any) -> Fix | None:
        key = id(t)
        if key in self.structs:  # a recursive type: resolved once the fields are planned
            return lambda v: (self.structs[key] or _same)(v)
        self.structs[key] = None
        fields = {f.encode_name: fix for f in t.fields if (fix := self.plan(f.type))}
        fix = _fields(fields) if fields else None
        self.structs[key] = fix
        return fix

    def union(self, t: Any) -> Fix | None:
        kinds = [type(x.type if isinstance(x, mi.Metadata) else x) for x in t.types]
        number = _int if mi.IntType in kinds and mi.FloatType not in kinds else None
        array: Fix | None = None
        tagged: dict[Any, Fix | None] = {}
        tag_field: str | None = None
        mapping: Fix | None = None
        for member in t.types:
            inner = member.type if isinstance(member, mi.Metadata) else member
            if isinstance(inner, (*_ARRAYS, mi.TupleType)):
                array = self.plan(inner)
            elif isinstance(inner, mi.StructType) and inner.tag_field is not None:
                tag_field = inner.tag_field
                tagged[inner.tag] = self.plan(inner)
            elif isinstance(inner, mi.StructType | mi.TypedDictType | mi.DataclassType
                            | mi.DictType | mi.FrozenDictType):
                mapping = self.plan(inner)
        tagged = {tag: fix for tag, fix in tagged.items() if fix is not None}
        if number is None and array is None and not tagged and mapping is None:
            return None

        def fix(value: Any) -> Any:
            if type(value) is float:
                return number(value) if number is not None else value
            if type(value) is list:
                return array(value) if array is not None else value
            if type(value) is dict:
                if tag_field is not None and tag_field in value:
                    chosen = tagged.get(value[tag_field])
                    return chosen(value) if chosen is not None else value
                return mapping(value) if mapping is not None else value
            return value

        return fix


def _same(value: Any) -> Any:
    return value


def _each(item: Fix | None) -> Fix | None:
    if item is None:
        return None

    def fix(value: Any) -> Any:
        if type(value) is list:
            for i, v in enumerate(value):
                value[i] = item(v)
        return value

    return fix


def _positions(items: list[Fix | None]) -> Fix:
    def fix(value: Any) -> Any:
        if type(value) is list:
            for i, (v, item) in enumerate(zip(value, items, strict=False)):
                if item is not None:
                    value[i] = item(v)
        return value

    return fix


def _values(item: Fix | None) -> Fix | None:
    if item is None:
        return None

    def fix(value: Any) -> Any:
        if type(value) is dict:
            for k, v in value.items():
                value[k] = item(v)
        return value

    return fix


def _fields(fields: dict[str, Fix]) -> Fix:
    def fix(value: Any) -> Any:
        if type(value) is dict:
            for name, item in fields.items():
                if name in value:
                    value[name] = item(value[name])
        return value

    return fix
