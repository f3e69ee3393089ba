"""JSON Schema (2020-12, as OpenAPI 3.1 uses) for Python annotations.

:class:`Schemas` hands out schema dicts while the document is built and fills them
in at the end, so every type of the document is named in one pass: two models
with the same class name from different modules get qualified component names
(``app.models.User`` and ``admin.models.User``) instead of one replacing the other.

msgspec produces the schemas of dataclasses, ``msgspec.Struct``\\ s, TypedDicts,
containers, ``datetime``/``date``/``UUID``/``Decimal``, ``Literal``/``Enum`` and
``Annotated[..., msgspec.Meta(...)]`` constraints, i.e. exactly what the injector
validates with msgspec; pydantic models (and ``Annotated`` pydantic constraints)
get pydantic's own schema, i.e. what pydantic validates. Without msgspec a small
built-in mapping is used.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import inspect
import types
import typing
import uuid
from typing import Any

REF = "#/components/schemas/{name}"
_PYD = "__ember_pydantic__"

#: the body of every 422 answer (see :class:`~ember.exceptions.RequestValidationError`)
VALIDATION_ERROR = {
    "title": "HTTPValidationError", "type": "object", "required": ["detail"],
    "properties": {"detail": {"type": "array", "items": {
        "type": "object", "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                          {"type": "integer"}]}},
            "msg": {"type": "string"}, "type": {"type": "string"}, "input": {}}}}},
}
#: the body of :class:`~ember.exceptions.HTTPException` answers
HTTP_ERROR = {"title": "HTTPError", "type": "object", "required": ["detail"],
              "properties": {"detail": {}}}


# NOTE: a calendar-exact date (month lengths, leap years), since validators refuse
# 06-31 and a pattern, unlike "format", is checked by every client and fuzzer.
_DATE = (r"((?!0000)[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
         r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
         r"|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)")
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
_OFFSET = r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
#: ``datetime`` without a tz requirement: RFC 3339, or a local time without offset
#: (msgspec and pydantic accept both, and a naive datetime is written without one)
NAIVE_DATETIME = {"anyOf": [
    {"type": "string", "format": "date-time"},
    {"type": "string", "pattern": f"^{_DATE}[Tt ]{_TIME}{_OFFSET}?$",
     "description": "a local date-time without offset, or a space for the 'T'"},
]}


def _is_pydantic(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema")


def _pydantic_metadata(tp: Any) -> bool:
    """``Annotated[int, Field(ge=1)]`` / annotated_types constraints (not msgspec.Meta)."""
    if typing.get_origin(tp) is not typing.Annotated:
        return False
    for meta in typing.get_args(tp)[1:]:
        mod = type(meta).__module__
        if mod.startswith(("pydantic", "annotated_types")):
            return True
    return False


class Schemas:
    """Collects the types of one document and resolves them together."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self._pending: list[tuple[dict[str, Any], Any]] = []

    def of(self, tp: Any) -> dict[str, Any]:
        """The schema of ``tp``: a dict filled in by :meth:`resolve`."""
        slot: dict[str, Any] = {}
        if tp in (inspect.Parameter.empty, Any, None, object):
            return slot
        self._pending.append((slot, tp))
        return slot

    def named(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """A ``$ref`` to a fixed component (``HTTPValidationError``...)."""
        self.components.setdefault(name, schema)
        return {"$ref": REF.format(name=name)}

    def resolve(self) -> None:
        """Fill every schema handed out; unsupported types get ``{}`` (anything)."""
        pending, self._pending = self._pending, []
        try:
            import msgspec  # noqa: F401
        except ImportError:
            for slot, tp in pending:
                slot.update(fallback_schema(tp))
            return
        direct = [(s, t) for s, t in pending if _pydantic_metadata(t)]
        rest = [(s, t) for s, t in pending if not _pydantic_metadata(t)]
        supported = []
        for slot, tp in rest:
            try:
                _type_info(tp)
                supported.append((slot, tp))
            except Exception:  # NOTE: an annotation msgspec cannot describe documents as {}
                continue
        models: dict[type, str] = {}

        def hook(cls: Any) -> dict[str, Any]:
            if _is_pydantic(cls):
                models.setdefault(cls, f"{_PYD}{len(models)}")
                return {"$ref": REF.format(name=models[cls])}
            return {}

        try:
            schemas, defs = _msgspec_components([t for _, t in supported], hook)
        except Exception:  # NOTE: one odd type must not blank the whole document
            schemas, defs = [], {}
            for _, tp in supported:
                try:
                    (one,), more = _msgspec_components([tp], hook)
                except Exception:
                    one, more = {}, {}
                schemas.append(one)
                defs.update(more)
        for (slot, _), schema in zip(supported, schemas, strict=True):
            slot.update(schema)
        self.components.update(defs)
        for slot, tp in direct:
            from pydantic import TypeAdapter

            try:
                slot.update(TypeAdapter(tp).json_schema(ref_template=REF.format(name="{model}")))
            except Exception:
                continue
            for key, sub in slot.pop("$defs", {}).items():
                self.components.setdefault(key, sub)
        if models:
            self._add_pydantic(models)
        for slot, _ in pending:
            _tidy(slot)
        _tidy(self.components)

    def _add_pydantic(self, models: dict[type, str]) -> None:
        from pydantic.json_schema import models_json_schema

        keymap, top = models_json_schema([(m, "validation") for m in models],
                                         ref_template=REF.format(name="{model}"))
        defs = top.get("$defs", {})
        renamed: dict[str, str] = {}  # pydantic's names that clash with msgspec's
        for key in defs:
            new = key
            if key in self.components:
                cls = next((m for m in models if m.__name__ == key), None)
                base = f"{cls.__module__}.{cls.__qualname__}" if cls else key
                new, n = base, 2
                while new in self.components or new in defs:
                    new, n = f"{base}_{n}", n + 1
            renamed[REF.format(name=key)] = REF.format(name=new)
        _rewrite_refs(defs, renamed)  # NOTE: only pydantic's own refs point at its names
        for key, sub in defs.items():
            self.components[renamed[REF.format(name=key)].rsplit("/", 1)[1]] = sub
        placeholders = {REF.format(name=models[model]): renamed.get(ref["$ref"], ref["$ref"])
                        for (model, _), ref in keymap.items()}
        _rewrite_refs(self.components, placeholders)
        self.placeholders = placeholders

    def rewrite(self, document: Any) -> None:
        """Point pydantic placeholders in ``document`` at their final components."""
        placeholders = getattr(self, "placeholders", None)
        if placeholders:
            _rewrite_refs(document, placeholders)


#: NOTE: JSON Schema 2020-12 treats "format" as an annotation, so fuzzers send "" for a
#: date-time; a pattern states what the validators (msgspec, pydantic) really accept.
_FORMAT_PATTERNS = {
    "date-time": f"^{_DATE}[Tt]{_TIME}{_OFFSET}$",
    "date": f"^{_DATE}$",
    "uuid": r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
}


def _tidy(node: Any) -> None:
    """Drop ``items: false`` next to ``prefixItems`` when ``maxItems`` already bounds it.

    NOTE: equivalent JSON Schema; schemathesis (4.32) mis-handles the boolean form
    in response validation (schemathesis issues #3842, #4099).
    """
    if isinstance(node, dict):
        if node.get("items") is False and node.get("maxItems") == len(
                node.get("prefixItems", ())):
            del node["items"]
        pattern = _FORMAT_PATTERNS.get(node.get("format"))  # type: ignore[arg-type]
        if pattern and node.get("type") == "string" and "pattern" not in node:
            node["pattern"] = pattern
        for value in node.values():
            _tidy(value)
    elif isinstance(node, list):
        for value in node:
            _tidy(value)


def _rewrite_refs(node: Any, rename: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in rename:
            node["$ref"] = rename[ref]
        for value in node.values():
            _rewrite_refs(value, rename)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, rename)


def _type_info(tp: Any) -> Any:
    import msgspec

    return msgspec.inspect.type_info(tp)


def _msgspec_components(tps: list[Any], hook: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``msgspec.json.schema_components`` with ``datetime`` documented as a date-time.

    NOTE: msgspec documents a ``datetime`` without a tz requirement as a bare string;
    it accepts RFC 3339 date-times and offset-less local ones, which is what
    :data:`NAIVE_DATETIME` says (falls back to msgspec's output if its internals move).
    """
    import msgspec
    import msgspec.inspect as mi

    try:
        from msgspec import _json_schema as js

        class Generator(js._SchemaGenerator):  # type: ignore[name-defined,misc]
            def to_schema(self, t: Any, check_ref: bool = True) -> dict[str, Any]:
                if isinstance(t, mi.DateTimeType) and t.tz is None:
                    return copy.deepcopy(NAIVE_DATETIME)
                return super().to_schema(t, check_ref)

        infos = mi.multi_type_info(tps)
        components = js._collect_component_types(infos)
        names = js._build_name_map(components)
        gen = Generator(names, hook, REF)
        schemas = tuple(gen.to_schema(t) for t in infos)
        defs = {names[cls]: gen.to_schema(t, False) for cls, t in components.items()}
        return schemas, defs
    except (ImportError, AttributeError, TypeError):  # msgspec internals moved: plain output
        return msgspec.json.schema_components(tps, schema_hook=hook, ref_template=REF)


def fallback_schema(tp: Any) -> dict[str, Any]:
    """A schema without msgspec: scalars, containers and Optional (models are objects)."""
    if tp in (inspect.Parameter.empty, Any, None):
        return {}
    simple = {type(None): {"type": "null"}, str: {"type": "string"}, bool: {"type": "boolean"},
              int: {"type": "integer"}, float: {"type": "number"},
              bytes: {"type": "string", "format": "binary"},
              uuid.UUID: {"type": "string", "format": "uuid"},
              datetime.datetime: {"type": "string", "format": "date-time"},
              datetime.date: {"type": "string", "format": "date"}}
    if isinstance(tp, type) and tp in simple:
        return dict(simple[tp])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return fallback_schema(args[0])
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [fallback_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is tuple and args and args[-1] is not Ellipsis:
        return {"type": "array", "prefixItems": [fallback_schema(a) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin in (list, set, frozenset, tuple) or tp in (list, set, tuple):
        return {"type": "array", "items": fallback_schema(args[0]) if args else {}}
    if origin is dict or tp is dict:
        return {"type": "object", "additionalProperties": fallback_schema(args[1])
                if len(args) == 2 else {}}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return {"type": "object", "title": tp.__name__}
    return {}
