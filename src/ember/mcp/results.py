"""``tools/call`` results per the MCP spec (2025-06-18 and later), and safe tool errors.

- A tool whose return annotation is a pydantic model, a dataclass, a msgspec
  ``Struct`` or a ``TypedDict`` gets an ``outputSchema`` in ``tools/list``
  (:func:`output_schema`); its results carry ``structuredContent`` (the object) and,
  for older clients, the same JSON as a text block.
- Any such object returned (annotated or not) is serialised as JSON, never as its
  ``repr``; dicts are structured as they are, lists as ``{"result": [...]}``.
- A tool's error text goes through the redaction logs and gateway errors use
  (:func:`ember._redact.redact`): the server's secrets from the environment
  (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``...), URLs' credentials and
  key-shaped strings never reach the client.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any

import orjson

from ember._redact import redact
from ember.mcp.protocol import version_at_least

_SECRET_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASSWD",
                    "_CREDENTIALS", "_DSN")


def env_secrets() -> list[str]:
    """Values of environment variables named like secrets (8 characters or more)."""
    return [v for k, v in os.environ.items()
            if len(v) >= 8 and k.upper().endswith(_SECRET_SUFFIXES)]


def safe_error_text(exc: BaseException) -> str:
    """The text a client may see for a tool's exception (redacted)."""
    return redact(str(exc) or type(exc).__name__, env_secrets())


def _structured_type(tp: Any) -> bool:
    if not isinstance(tp, type):
        return False
    if hasattr(tp, "model_json_schema") or dataclasses.is_dataclass(tp):
        return True
    if issubclass(tp, dict) and hasattr(tp, "__total__"):  # TypedDict
        return True
    return _is_struct_type(tp)


def _is_struct_type(tp: Any) -> bool:
    msgspec = _msgspec()
    return msgspec is not None and isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _msgspec() -> Any:
    import sys

    return sys.modules.get("msgspec")  # NOTE: a Struct exists only once msgspec is imported


def output_schema(fn: Any) -> dict[str, Any] | None:
    """The ``outputSchema`` of a tool function, from its return annotation, or None."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # NOTE: an unresolvable annotation just means no schema
        return None
    tp = hints.get("return")
    if not _structured_type(tp):
        return None
    if _is_struct_type(tp):
        schema = _msgspec().json.schema(tp)
        ref = schema.get("$ref", "")
        defs = schema.get("$defs", {})
        name = ref.rsplit("/", 1)[-1]
        if name in defs:
            root = dict(defs[name])
            others = {k: v for k, v in defs.items() if k != name}
            if others:
                root["$defs"] = others
            schema = root
    else:
        from ember.ai.tools import _schema

        defs: dict[str, Any] = {}
        schema = _schema(tp, defs)
        if defs:
            schema = {**schema, "$defs": {**schema.get("$defs", {}), **defs}}
    if schema.get("type") != "object":
        return None  # NOTE: the spec wants an object at the root
    return schema


def to_builtins(value: Any) -> Any:
    """``value`` as JSON-ready builtins (pydantic, dataclasses, msgspec Structs)."""
    if hasattr(value, "model_dump") and not isinstance(value, type):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return orjson.loads(orjson.dumps(value, default=str,
                                         option=orjson.OPT_NON_STR_KEYS))
    msgspec = _msgspec()
    if msgspec is not None and isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    return value


def tool_result(value: Any, version: str, structured: bool = False) -> dict[str, Any]:
    """A ``tools/call`` result: text content, plus ``structuredContent`` for objects.

    ``structured``: the tool declares an ``outputSchema`` (its result must carry
    ``structuredContent``).
    """
    value = to_builtins(value)
    data: Any = None
    if value is None:
        content: list[dict[str, Any]] = []
    elif isinstance(value, str):
        content = [{"type": "text", "text": value}]
    elif isinstance(value, bytes | bytearray):
        content = [{"type": "text", "text": bytes(value).decode("utf-8", "replace")}]
    else:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        content = [{"type": "text", "text": text}]
        if isinstance(value, dict):
            data = orjson.loads(text)
        elif isinstance(value, list | tuple):
            data = {"result": orjson.loads(text)}
    result: dict[str, Any] = {"content": content, "isError": False}
    if version_at_least(version, "2025-06-18") and (data is not None or structured):
        result["structuredContent"] = data if data is not None else {}
    return result


def error_result(exc: BaseException) -> dict[str, Any]:
    """The ``isError`` result for a tool that raised (text redacted)."""
    return {"content": [{"type": "text", "text": safe_error_text(exc)}], "isError": True}
