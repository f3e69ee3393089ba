"""Exact JSON for integers of any size.

orjson (the fast path everywhere) stops at 64 bits: ``dumps`` raises on a larger
``int`` and ``loads`` turns one into a ``float``.  JSON itself has no integer
limit (RFC 8259 §6), and FastAPI answers such values exactly, so Ember does too:

* :func:`dumps` tries orjson first and, only when orjson refuses an integer,
  re-encodes through a slower path that keeps every integer exact (written as
  ``orjson.Fragment`` digits);
* :func:`loads` parses with msgspec when installed (exact integers at orjson's
  speed), else with orjson and, only when the text holds a run of 20+ digits (the
  shortest integer that can exceed 64 bits), again with the standard library.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import re
import sys
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{20}")
_OPTIONS = orjson.OPT_NON_STR_KEYS
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


def default(obj: Any) -> Any:
    """JSON fallbacks orjson lacks: pydantic models, msgspec structs, sets, bytes, Decimal.

    (orjson itself writes datetime, date, time, UUID, Enum and dataclasses.)  A
    ``Decimal`` is written as the exact JSON number it holds (``12.50`` stays
    ``12.50``); NaN and infinities as ``null``, as orjson does for floats.
    """
    dec = sys.modules.get("decimal")  # NOTE: no import: a Decimal implies the module
    if dec is not None and isinstance(obj, dec.Decimal):
        return orjson.Fragment(str(obj).encode()) if obj.is_finite() else None
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if type(obj).__module__ != "builtins" and hasattr(type(obj), "__struct_fields__"):
        import msgspec

        return msgspec.to_builtins(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    """Serialise ``content`` (orjson's types plus :func:`default`'s); integers stay exact.

    Raises ``TypeError`` for objects that have no JSON form.
    """
    try:
        return orjson.dumps(content, default=default, option=_OPTIONS)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise unserialisable(content) or exc from None
    # NOTE: only reached when an integer exceeds 64 bits; correctness over speed here.
    try:
        plain = _plain(content)
    except TypeError as exc:
        raise unserialisable(content) or exc from None
    return orjson.dumps(plain, option=_OPTIONS)


def unserialisable(content: Any) -> TypeError | None:
    """The error naming the first value of ``content`` that has no JSON form and where it
    is (``$.items[3].price``); ``None`` when every value has one.  Error path only."""
    found = _where(content, "$", 0)
    if found is None:
        return None
    path, value = found
    if value is _TOO_DEEP:
        return TypeError(
            f"the data at {path} is nested too deeply for JSON (over {_MAX_DEPTH} levels) or "
            "holds a cycle: Ember's JSON writer (orjson) stops at 254 levels; flatten the "
            "data, or serialise it yourself and return a Response")
    if inspect.iscoroutine(value) or inspect.isawaitable(value):
        name = getattr(value, "__qualname__", type(value).__name__)
        close = getattr(value, "close", None)
        if close is not None:
            close()  # NOTE: it can never be awaited now: no "never awaited" warning later
        return TypeError(
            f"{path} is the coroutine {name}() — did you forget `await`? (e.g. "
            f"`await request.json()`); a coroutine is not JSON serializable")
    return TypeError(
        f"Object of type {type(value).__module__}.{type(value).__qualname__} at {path} is "
        "not JSON serializable (JSON takes dict, list, str, int, float, bool, None, "
        "Decimal, datetime/date/time, UUID, Enum, set, dataclasses, pydantic models and "
        "msgspec Structs; convert it, or return a Response)")


#: how deep :func:`_where` looks before it reports the data as too deep (orjson stops at 254)
_MAX_DEPTH = 200
_TOO_DEEP = object()


def _where(obj: Any, path: str, depth: int) -> tuple[str, Any] | None:
    if depth > _MAX_DEPTH:  # NOTE: orjson stops at 254 levels; a cycle ends here too
        return (_depth_path(path), _TOO_DEEP)
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not _leaf_ok({key: None}):
                return (f"{path}[{key!r}] (the key)", key)
            found = _where(value, path + _segment(key), depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, list | tuple | set | frozenset):
        for i, value in enumerate(obj):
            found = _where(value, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
        return None
    names: Any = None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj)]
    elif type(obj).__module__ != "builtins" and hasattr(type(obj), "__struct_fields__"):
        names = type(obj).__struct_fields__
    elif hasattr(obj, "model_dump") and hasattr(type(obj), "model_fields"):
        names = list(type(obj).model_fields)
    if names is not None:
        for name in names:
            found = _where(getattr(obj, name, None), f"{path}.{name}", depth + 1)
            if found is not None:
                return found
        return None if _leaf_ok(obj) else (path, obj)
    return None if _leaf_ok(obj) else (path, obj)


def _depth_path(path: str) -> str:
    """``path`` cut to its first levels (``$[0][0]…``): a log line, not 200 brackets."""
    return path if len(path) <= 40 else path[:40] + "…"


def _leaf_ok(value: Any) -> bool:
    try:
        orjson.dumps(value, default=default, option=_OPTIONS)
    except TypeError as exc:
        return "64-bit" in str(exc)
    except Exception:  # NOTE: diagnosis only: whatever the app's `default` raised, this leaf fails
        return False
    return True


def _segment(key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]"


def _plain(obj: Any) -> Any:
    """``obj`` as dict/list/str/int/float/bool/None, converted the way orjson would."""
    if obj is None or isinstance(obj, (str, bool)):
        return str(obj) if isinstance(obj, str) and type(obj) is not str else obj
    if isinstance(obj, int) and not isinstance(obj, enum.Enum):
        value = int(obj)
        # the integers orjson cannot write go in as their exact digits
        return value if _I64_MIN <= value <= _U64_MAX else orjson.Fragment(str(value).encode())
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None  # orjson writes NaN/inf as null
    if isinstance(obj, dict):
        return {_key(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return _plain(obj.value)
    if hasattr(obj, "model_dump") or hasattr(type(obj), "__struct_fields__") or isinstance(
            obj, (set, frozenset, bytes)):
        return _plain(default(obj))
    dec = sys.modules.get("decimal")
    if dec is not None and isinstance(obj, dec.Decimal):
        return default(obj)  # exact, as on the fast path
    # datetimes, UUIDs, numpy values...: whatever orjson makes of them
    return orjson.loads(orjson.dumps(obj, default=default, option=_OPTIONS))


def _key(key: Any) -> Any:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool | enum.Enum) and not (
            _I64_MIN <= key <= _U64_MAX):
        return str(int(key))
    if isinstance(key, (bool, int, float)) or key is None:
        return key if not isinstance(key, enum.Enum) else _key(key.value)
    text = orjson.loads(orjson.dumps(key, option=_OPTIONS))
    return text if isinstance(text, str) else str(text)


def _msgspec_decoder() -> Any:
    global _DECODER
    if _DECODER is None:
        try:
            import msgspec
        except ImportError:
            _DECODER = False
        else:
            # NOTE: UnicodeEncodeError: a str holding a lone surrogate
            _DECODER = (msgspec.json.Decoder(), (msgspec.DecodeError, msgspec.ValidationError,
                                                 RecursionError, UnicodeEncodeError))
    return _DECODER


_DECODER: Any = None


_BYTE_POS = re.compile(r"\s*\(byte (\d+)\)$")


def non_finite_literal(data: Any, pos: int | None) -> str | None:
    """``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` when the JSON error at ``pos`` is such a
    literal (Python's ``json.dumps`` and JavaScript's writers emit them; RFC 8259 has no
    such numbers), else None."""
    if pos is None:
        return None
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    for start in (pos - 1, pos):
        if start < 0:
            continue
        seg = raw[start:start + 9]
        for word in (b"-Infinity", b"Infinity", b"NaN", b"-NaN"):
            if seg.startswith(word):
                return word.decode()
    return None


def explain(exc: BaseException, data: Any) -> str:
    """The decode error ``exc`` of ``data`` in words, naming a NaN/Infinity literal."""
    literal = non_finite_literal(data, getattr(exc, "pos", None))
    if literal is None:
        return str(exc)
    where = str(exc).rpartition(": ")[2] if ": line " in str(exc) else ""
    return _non_finite(literal) + (f": {where}" if where else "")


def _non_finite(literal: str) -> str:
    return (f"{literal} is not a JSON number (RFC 8259 has no NaN or Infinity; send a "
            f"finite number or null)")


def _decode_error(exc: BaseException, data: Any) -> orjson.JSONDecodeError:
    """msgspec's error as a ``JSONDecodeError`` whose line/column point where it failed."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    msg = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
    match = _BYTE_POS.search(msg)
    if match is not None:
        pos, msg = int(match.group(1)), msg[:match.start()]
    else:
        pos = len(text) if "truncated" in msg else 0
    bad = _bad_utf8(data)
    if bad is not None and (bad <= pos or isinstance(exc, UnicodeError) or "UTF-8" in msg):
        # NOTE: msgspec says "Invalid UTF-8 encoded string" at char 0: point at the byte
        pos, msg = bad, "invalid UTF-8 (JSON text must be UTF-8)"
    if not text.strip():
        msg, pos = "the body is empty", 0
    msg = msg.removeprefix("JSON is malformed: ")
    literal = non_finite_literal(text, pos)
    if literal is not None:
        msg = _non_finite(literal)
    return orjson.JSONDecodeError(msg, text, min(pos, len(text)))


def _bad_utf8(data: Any) -> int | None:
    """The character position of the first byte (or lone surrogate) that is not UTF-8."""
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        raw.decode("utf-8")
    except UnicodeError as exc:
        start = exc.start
        if isinstance(data, str):
            return start
        return len(bytes(data)[:start].decode("utf-8", "replace"))
    return None


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON (RFC 8259 strictly: no NaN, no trailing commas); integers stay exact.

    PERF: msgspec's decoder when installed (as fast as orjson's, measured with
    callgrind: ~6,900 instructions for a 90-byte object either way, and exact for
    big integers); otherwise orjson, re-parsed with the standard library only when
    the text holds a run of 20+ digits. Raises ``orjson.JSONDecodeError`` (a
    ``ValueError``) on invalid JSON.
    """
    decoder = _msgspec_decoder()
    if decoder:
        try:
            return decoder[0].decode(data)
        except decoder[1] as exc:
            raise _decode_error(exc, data) from None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        literal = non_finite_literal(data, exc.pos)
        if literal is None:
            raise
        raise orjson.JSONDecodeError(_non_finite(literal), exc.doc, exc.pos) from None
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if _LONG_DIGITS.search(raw) is None:
        return value
    try:
        return json.loads(bytes(raw))
    except ValueError as exc:  # NOTE: e.g. an integer past Python's 4300-digit limit
        raise orjson.JSONDecodeError(f"number out of range: {exc}", "", 0) from None
