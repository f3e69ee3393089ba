"""Resources, resource templates and prompts served by an :class:`~ember.mcp.MCPServer`."""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson

from ember.mcp.protocol import INVALID_PARAMS, MCPError

_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


async def call_maybe_async(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Await ``fn(**kwargs)``; a plain function runs in the default executor."""
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    result = await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(fn, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result


def _describe(fn: Callable[..., Any], description: str | None) -> str | None:
    if description is not None:
        return description
    doc = inspect.getdoc(fn)
    return doc.strip() if doc else None


def _required_params(fn: Callable[..., Any]) -> tuple[set[str], set[str], bool]:
    """(all named params, required params, accepts **kwargs) of ``fn``."""
    names: set[str] = set()
    required: set[str] = set()
    var_kw = False
    for prm in inspect.signature(fn).parameters.values():
        if prm.kind is prm.VAR_KEYWORD:
            var_kw = True
        elif prm.kind is prm.VAR_POSITIONAL:
            continue
        else:
            names.add(prm.name)
            if prm.default is prm.empty:
                required.add(prm.name)
    return names, required, var_kw


class Resource:
    """A readable resource at a fixed ``uri`` (or a template like ``users://{id}``)."""

    def __init__(self, uri: str, fn: Callable[..., Any], name: str | None = None,
                 description: str | None = None, mime_type: str | None = "text/plain") -> None:
        if not isinstance(uri, str) or not uri:
            raise ValueError("a resource needs a non-empty URI")
        self.uri = uri
        self.fn = fn
        self.name = name or getattr(fn, "__name__", uri)
        self.description = _describe(fn, description)
        self.mime_type = mime_type
        self.variables = _TEMPLATE_VAR.findall(uri)
        self.is_template = bool(self.variables)
        names, required, var_kw = _required_params(fn)
        if self.is_template:
            if len(set(self.variables)) != len(self.variables):
                raise ValueError(f"resource template {uri!r} repeats a variable")
            missing = required - set(self.variables)
            unknown = set(self.variables) - names
            if missing or (unknown and not var_kw):
                raise ValueError(
                    f"resource template {uri!r}: the function's parameters "
                    f"{sorted(names)} must match the template variables {self.variables}")
            pattern = ""
            pos = 0
            for match in _TEMPLATE_VAR.finditer(uri):
                pattern += re.escape(uri[pos:match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
                pos = match.end()
            pattern += re.escape(uri[pos:])
            self._regex: re.Pattern[str] | None = re.compile(pattern)
        else:
            if required:
                raise ValueError(f"resource {uri!r}: the function takes required parameters "
                                 f"{sorted(required)}; use a URI template like "
                                 f"'scheme://{{{sorted(required)[0]}}}'")
            self._regex = None

    def match(self, uri: str) -> dict[str, str] | None:
        """Template variables when ``uri`` is this resource (``{}`` for a fixed URI)."""
        if self._regex is None:
            return {} if uri == self.uri else None
        m = self._regex.fullmatch(uri)
        if m is None:
            return None
        return {k: unquote(v) for k, v in m.groupdict().items()}

    def describe(self) -> dict[str, Any]:
        """The ``resources/list`` (or ``resources/templates/list``) entry."""
        out: dict[str, Any] = {"uriTemplate" if self.is_template else "uri": self.uri,
                               "name": self.name}
        if self.description:
            out["description"] = self.description
        if self.mime_type:
            out["mimeType"] = self.mime_type
        return out

    async def read(self, uri: str, variables: dict[str, str]) -> list[dict[str, Any]]:
        """The ``contents`` of a ``resources/read`` result."""
        value = await call_maybe_async(self.fn, variables)
        item: dict[str, Any] = {"uri": uri}
        if self.mime_type:
            item["mimeType"] = self.mime_type
        if isinstance(value, (bytes, bytearray, memoryview)):
            item["blob"] = base64.b64encode(bytes(value)).decode("ascii")
        elif isinstance(value, str):
            item["text"] = value
        else:
            item["text"] = orjson.dumps(value, default=str).decode()
        return [item]


class Prompt:
    """A prompt template: typed (string) arguments in, chat messages out."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None,
                 description: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = _describe(fn, description)
        try:
            hints = typing.get_type_hints(fn)
        except NameError as exc:
            raise TypeError(f"prompt {self.name!r}: cannot resolve annotations: {exc}") from None
        self.arguments: list[dict[str, Any]] = []
        self._types: dict[str, Any] = {}
        self._var_kw = False
        for prm in inspect.signature(fn).parameters.values():
            if prm.kind is prm.VAR_KEYWORD:
                self._var_kw = True
                continue
            if prm.kind is prm.VAR_POSITIONAL:
                continue
            tp = hints.get(prm.name, str)
            if typing.get_origin(tp) in (typing.Union, types.UnionType):
                non_none = [a for a in typing.get_args(tp) if a is not type(None)]
                tp = non_none[0] if len(non_none) == 1 else str
            if tp not in (str, int, float, bool, Any):
                raise TypeError(f"prompt {self.name!r}: argument {prm.name!r} must be typed "
                                f"str (or int/float/bool), got {tp!r}")
            self._types[prm.name] = tp
            self.arguments.append({"name": prm.name, "required": prm.default is prm.empty})

    def describe(self) -> dict[str, Any]:
        """The ``prompts/list`` entry."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["arguments"] = [dict(a) for a in self.arguments]
        return out

    def _convert(self, arguments: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for key, raw in arguments.items():
            if key not in self._types:
                if self._var_kw:
                    kwargs[key] = raw
                    continue
                raise MCPError(INVALID_PARAMS, f"prompt {self.name!r}: unknown argument {key!r}")
            if not isinstance(raw, str):
                raise MCPError(INVALID_PARAMS,
                               f"prompt {self.name!r}: argument {key!r} must be a string")
            tp = self._types[key]
            try:
                if tp is bool:
                    low = raw.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(raw)
                    kwargs[key] = low in ("true", "1", "yes")
                elif tp in (int, float):
                    kwargs[key] = tp(raw)
                else:
                    kwargs[key] = raw
            except ValueError:
                raise MCPError(INVALID_PARAMS, f"prompt {self.name!r}: argument {key!r} must be "
                               f"{tp.__name__}, got {raw!r}") from None
        missing = [a["name"] for a in self.arguments if a["required"] and a["name"] not in kwargs]
        if missing:
            raise MCPError(INVALID_PARAMS,
                           f"prompt {self.name!r}: missing required argument(s) {missing}")
        return kwargs

    async def render(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The ``prompts/get`` result (``description`` and ``messages``)."""
        value = await call_maybe_async(self.fn, self._convert(arguments))
        result: dict[str, Any] = {}
        if self.description:
            result["description"] = self.description
        result["messages"] = _messages(value, self.name)
        return result


def _content(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"type": "text", "text": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value
    return {"type": "text", "text": orjson.dumps(value, default=str).decode()}


def _messages(value: Any, name: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": _content(value)}]
    if isinstance(value, dict) and "role" in value:
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"prompt {name!r} must return a string or a list of messages, "
                        f"got {type(value).__name__}")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append({"role": "user", "content": _content(item)})
            continue
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant") \
                or "content" not in item:
            raise TypeError(f"prompt {name!r}: each message needs a role ('user' or "
                            f"'assistant') and content, got {item!r}")
        out.append({"role": item["role"], "content": _content(item["content"])})
    return out
