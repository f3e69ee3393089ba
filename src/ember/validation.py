"""Validation rules shared by the injector and stated by the OpenAPI document.

* :func:`constrained` / :func:`checked`: ``Annotated[int, msgspec.Meta(ge=1)]`` or
  ``Annotated[int, pydantic.Field(le=9)]`` on a path or query parameter is enforced
  (422), as the document's ``minimum``/``maximum`` say.
* :func:`whole_floats`: JSON Schema counts ``5.0`` as an integer; a body refused by
  strict validation is tried once more with whole-number floats written as ints.
* :func:`body_decoder` / :func:`query_model_builder`: a JSON body or the query string
  turned into a dataclass, ``msgspec.Struct`` or pydantic model (422 naming each field).

Below :mod:`ember.injection`, which reads it; of the injection modules it imports only
:mod:`ember._plan`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
import uuid
from collections.abc import Callable
from typing import Any

from ember._json import dumps, loads
from ember._plan import _loads, _strip_annotated, _too_deep, is_model, scalar_converter
from ember._plan import _unwrap_optional as _unwrap
from ember.exceptions import ConfigError, RequestValidationError


def _unwrap_optional(tp: Any) -> Any:
    return _unwrap(tp)[0]


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


# -- JSON bodies and query models -------------------------------------------------------


_MISSING_FIELD = re.compile(r"Object missing required field `([^`]*)`")


def body_decoder(tp: Any, where: str) -> Callable[[bytes], Any]:
    """A function turning JSON bytes into ``tp`` or raising RequestValidationError."""
    if hasattr(tp, "model_validate_json"):  # pydantic v2

        def decode_pydantic(raw: bytes) -> Any:
            from pydantic import ValidationError

            try:
                return tp.model_validate_json(raw, strict=True)
            except RecursionError:
                raise _too_deep() from None
            except ValidationError as exc:
                retry = whole_floats(raw)
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
                retry = whole_floats(raw)
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


def query_model_builder(tp: Any, where: str) -> Callable[[Any], Any]:
    """Build a model from query parameters (GET with a model-typed parameter)."""
    hints = typing.get_type_hints(tp) if not hasattr(tp, "model_fields") else {
        k: v.annotation for k, v in tp.model_fields.items()
    }
    convs = {}
    for name, ftp in hints.items():
        inner, _ = _unwrap(_strip_annotated(ftp))
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

