"""Tools for model tool-calling: JSON schemas from typed functions, validated calls.

    tools = ToolRegistry()

    @tools.register
    async def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict:
        \"\"\"Current weather for a city.\"\"\"

    tools.to_openai()        # [{"type": "function", "function": {...}}]
    tools.to_anthropic()     # [{"name", "description", "input_schema"}]
    tools.to_mcp()           # [{"name", "description", "inputSchema"}]
    await tools.call("get_weather", {"city": "Paris"})
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import orjson


class ToolError(Exception):
    """A tool call that cannot run: unknown tool, bad arguments, timeout or failure."""


def _schema(tp: Any) -> dict[str, Any]:
    if tp in (inspect.Parameter.empty, Any):
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema = _schema(args[0])
        for meta in args[1:]:
            if isinstance(meta, str):
                schema["description"] = meta
        return schema
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            return _schema(non_null[0])
        return {"anyOf": [_schema(a) for a in non_null]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if origin in (list, tuple, set) or tp in (list, tuple, set):
        return {"type": "array", "items": _schema(args[0]) if args else {}}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and hasattr(tp, "model_json_schema"):
        return tp.model_json_schema()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return {"type": "object",
                "properties": {f.name: _schema(hints[f.name]) for f in dataclasses.fields(tp)},
                "required": [f.name for f in dataclasses.fields(tp)
                             if f.default is dataclasses.MISSING
                             and f.default_factory is dataclasses.MISSING]}
    raise TypeError(f"cannot describe {tp!r} as a JSON schema")


def _check(value: Any, tp: Any, where: str) -> Any:
    """Validate (and lightly coerce) one argument against its annotation."""
    if tp in (inspect.Parameter.empty, Any):
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _check(value, args[0], where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(value, option, where)
            except ToolError as exc:
                errors.append(str(exc))
        raise ToolError(f"{where}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ToolError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ToolError(f"{where}: expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ToolError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ToolError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ToolError(f"{where}: expected a string, got {value!r}")
        return value
    if origin in (list, tuple, set) or tp in (list, tuple, set):
        if not isinstance(value, list):
            raise ToolError(f"{where}: expected an array, got {value!r}")
        item = args[0] if args else Any
        return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ToolError(f"{where}: expected an object, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ToolError(f"{where}: must be one of {[m.value for m in tp]}") from None
    if isinstance(tp, type) and hasattr(tp, "model_validate"):
        try:
            return tp.model_validate(value)
        except Exception as exc:
            raise ToolError(f"{where}: {exc}") from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ToolError(f"{where}: expected an object, got {value!r}")
        try:
            return tp(**value)
        except TypeError as exc:
            raise ToolError(f"{where}: {exc}") from None
    return value


class Tool:
    """One registered function with its schema."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None,
                 description: str | None = None, timeout: float | None = 30.0) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        doc = inspect.getdoc(fn) or ""
        self.description = description if description is not None else doc.strip()
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        try:
            self.hints = typing.get_type_hints(fn, include_extras=True)
        except NameError as exc:
            raise TypeError(f"tool {self.name!r}: cannot resolve annotations: {exc}") from None
        self.params: list[inspect.Parameter] = []
        properties: dict[str, Any] = {}
        required: list[str] = []
        for pname, prm in inspect.signature(fn).parameters.items():
            if prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
                continue
            self.params.append(prm)
            properties[pname] = _schema(self.hints.get(pname, prm.annotation))
            if prm.default is prm.empty:
                required.append(pname)
            else:
                try:
                    orjson.dumps(prm.default)
                    properties[pname]["default"] = prm.default
                except TypeError:
                    pass
        self.parameters = {"type": "object", "properties": properties, "required": required,
                           "additionalProperties": False}

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Checked keyword arguments; ToolError naming each problem."""
        known = {p.name for p in self.params}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ToolError(f"tool {self.name!r}: unknown argument(s) {unknown}")
        out = {}
        for prm in self.params:
            if prm.name not in arguments:
                if prm.default is prm.empty:
                    raise ToolError(f"tool {self.name!r}: missing required argument "
                                    f"{prm.name!r}")
                continue
            out[prm.name] = _check(arguments[prm.name], self.hints.get(prm.name, prm.annotation),
                                   f"tool {self.name!r} argument {prm.name!r}")
        return out


class ToolRegistry:
    """A set of tools, exportable to OpenAI, Anthropic and MCP, callable by name."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None,
                 description: str | None = None, timeout: float | None = 30.0) -> Any:
        """``@tools.register`` or ``@tools.register(name=..., description=...)``."""
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            tool = Tool(func, name, description, timeout)
            if tool.name in self._tools:
                raise ValueError(f"a tool named {tool.name!r} is already registered")
            self._tools[tool.name] = tool
            return func
        if fn is not None:
            return decorator(fn)
        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Any:
        return iter(self._tools.values())

    def get(self, name: str) -> Tool:
        """The tool called ``name``; ToolError listing the known ones."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; known tools: {sorted(self._tools)}")
        return tool

    def to_openai(self) -> list[dict[str, Any]]:
        """Tool definitions for OpenAI chat completions."""
        return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters}}
                for t in self._tools.values()]

    def to_anthropic(self) -> list[dict[str, Any]]:
        """Tool definitions for Anthropic messages."""
        return [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in self._tools.values()]

    def to_mcp(self) -> list[dict[str, Any]]:
        """Tool definitions for MCP ``tools/list``."""
        return [{"name": t.name, "description": t.description, "inputSchema": t.parameters}
                for t in self._tools.values()]

    async def call(self, name: str, arguments: dict[str, Any] | str | bytes | None = None,
                   timeout: float | None = None) -> Any:
        """Validate ``arguments`` (a dict or a JSON string) and run the tool."""
        tool = self.get(name)
        if arguments is None:
            arguments = {}
        if isinstance(arguments, (str, bytes)):
            try:
                arguments = orjson.loads(arguments or b"{}")
            except orjson.JSONDecodeError as exc:
                raise ToolError(f"tool {name!r}: arguments are not valid JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise ToolError(f"tool {name!r}: arguments must be a JSON object")
        kwargs = tool.validate(arguments)
        limit = timeout if timeout is not None else tool.timeout
        if tool.is_async:
            coro = tool.fn(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            coro = loop.run_in_executor(None, functools.partial(tool.fn, **kwargs))
        try:
            return await asyncio.wait_for(coro, limit) if limit else await coro
        except TimeoutError:
            raise ToolError(f"tool {name!r} timed out after {limit} s") from None

    async def run_tool_calls(self, tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run OpenAI-style ``tool_calls``; returns ``role: tool`` messages (errors included)."""
        async def one(call: dict[str, Any]) -> dict[str, Any]:
            fn = call.get("function", {})
            try:
                result = await self.call(fn.get("name", ""), fn.get("arguments") or "{}")
                content = result if isinstance(result, str) else orjson.dumps(
                    result, default=str).decode()
            except ToolError as exc:
                content = orjson.dumps({"error": str(exc)}).decode()
            return {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}
        return list(await asyncio.gather(*(one(c) for c in tool_calls)))
