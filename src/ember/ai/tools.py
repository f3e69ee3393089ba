"""Tools for model tool-calling: JSON schemas from typed functions, validated calls.

    tools = ToolRegistry()

    @tools.register
    async def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict:
        \"\"\"Current weather for a city.

        Args:
            city: The city name, e.g. "Paris".
        \"\"\"

    tools.to_openai()        # [{"type": "function", "function": {...}}]
    tools.to_anthropic()     # [{"name", "description", "input_schema"}]
    tools.to_mcp()           # [{"name", "description", "inputSchema"}]
    await tools.call("get_weather", {"city": "Paris"})

Errors::

    ToolError                 unknown tool, invalid arguments, timeout
    └── ToolExecutionError    the tool itself raised (the original is __cause__)
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import orjson

_EMPTY = inspect.Parameter.empty


class ToolError(Exception):
    """A tool call that cannot run: unknown tool, bad arguments or a timeout."""

    def __init__(self, message: str, tool: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool


class ToolExecutionError(ToolError):
    """The tool ran and raised; the original exception is ``__cause__``."""


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an annotation; nested pydantic ``$defs`` go into ``defs``."""
    if tp in (_EMPTY, Any, object):
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema = _schema(args[0], defs)
        for meta in args[1:]:
            if isinstance(meta, str):
                schema["description"] = meta
        return schema
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _schema(options[0], defs)
        return {"anyOf": [_schema(a, defs) for a in options]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if tp is type(None):
        return {"type": "null"}
    for py, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if tp is py:
            return {"type": name}
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [_schema(a, defs) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        schema: dict[str, Any] = {"type": "array", "items": _schema(args[0], defs) if args else {}}
        if origin in (set, frozenset) or tp in (set, frozenset):
            schema["uniqueItems"] = True
        return schema
    if origin is dict or tp is dict:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = _schema(args[1], defs)
        return schema
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and hasattr(tp, "model_json_schema"):  # pydantic v2
        schema = dict(tp.model_json_schema())
        defs.update(schema.pop("$defs", {}))
        return schema
    if _is_typeddict(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        hints = typing.get_type_hints(tp)
        if _is_typeddict(tp):
            names = list(hints)
            required = [n for n in names if n in tp.__required_keys__]  # type: ignore[attr-defined]
        else:
            fields = dataclasses.fields(tp)
            names = [f.name for f in fields]
            required = [f.name for f in fields if f.default is dataclasses.MISSING
                        and f.default_factory is dataclasses.MISSING]
        return {"type": "object", "properties": {n: _schema(hints[n], defs) for n in names},
                "required": required, "additionalProperties": False}
    raise TypeError(f"cannot describe {tp!r} as a JSON schema")


def _check(value: Any, tp: Any, where: str) -> Any:
    """Validate (and lightly coerce) one argument against its annotation."""
    if tp in (_EMPTY, Any, object):
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _check(value, args[0], where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors: list[ToolError] = []
        for option in options:
            try:
                return _check(value, option, where)
            except ToolError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        names = " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a))
                            for a in args)
        raise ToolError(f"{where}: expected {names}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ToolError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if tp is type(None):
        if value is not None:
            raise ToolError(f"{where}: expected null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ToolError(f"{where}: expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
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
    container = origin or tp
    if container in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            raise ToolError(f"{where}: expected an array, got {value!r}")
        if container is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ToolError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_check(v, a, f"{where}[{i}]")
                         for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        return container(_check(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if container is dict:
        if not isinstance(value, dict):
            raise ToolError(f"{where}: expected an object, got {value!r}")
        if len(args) == 2:
            return {k: _check(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ToolError(f"{where}: must be one of {[m.value for m in tp]}, "
                            f"got {value!r}") from None
    if isinstance(tp, type) and hasattr(tp, "model_validate"):
        try:
            return tp.model_validate(value)
        except Exception as exc:
            raise ToolError(f"{where}: {exc}") from None
    if _is_typeddict(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        if not isinstance(value, dict):
            raise ToolError(f"{where}: expected an object, got {value!r}")
        hints = typing.get_type_hints(tp)
        unknown = sorted(set(value) - set(hints))
        if unknown:
            raise ToolError(f"{where}: unknown field(s) {unknown}")
        if _is_typeddict(tp):
            missing = sorted(tp.__required_keys__ - set(value))  # type: ignore[attr-defined]
            if missing:
                raise ToolError(f"{where}: missing field(s) {missing}")
        checked = {k: _check(v, hints[k], f"{where}.{k}") for k, v in value.items()}
        try:
            return checked if _is_typeddict(tp) else tp(**checked)
        except TypeError as exc:
            raise ToolError(f"{where}: {exc}") from None
    return value


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX = re.compile(r"^\s*:param\s+(?:[\w\[\], |.]+\s+)?(\w+)\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Returns?|Raises|Yields|Examples?|Notes?)\s*:\s*$")


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """A docstring's description (before an ``Args:`` section) and per-argument texts."""
    description: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in doc.splitlines():
        sphinx = _SPHINX.match(line)
        if sphinx:
            current, params[sphinx[1]] = sphinx[1], sphinx[2].strip()
            continue
        if _ARGS_HEADER.match(line):
            in_args, current = True, None
            continue
        if _SECTION.match(line) or line.strip().startswith((":return", ":raises", ":rtype")):
            in_args, current = False, None
            continue
        if in_args:
            arg = _ARG_LINE.match(line)
            if arg and (not line.startswith(" " * 8) or current is None):
                current, params[arg[1]] = arg[1], arg[2].strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
            continue
        if current is None:
            description.append(line)
        elif line.strip():
            params[current] = f"{params[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), params


class Tool:
    """One registered function with its JSON schema."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None,
                 description: str | None = None, timeout: float | None = 30.0) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise ValueError(f"tool name {self.name!r} must be 1-64 of [A-Za-z0-9_.-]")
        summary, arg_docs = _parse_doc(inspect.getdoc(fn) or "")
        self.description = description if description is not None else summary
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(fn) or (
            not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__))
        try:
            self.hints = typing.get_type_hints(fn, include_extras=True)
        except NameError as exc:
            raise TypeError(f"tool {self.name!r}: cannot resolve annotations: {exc}") from None
        self.params: list[inspect.Parameter] = []
        properties: dict[str, Any] = {}
        required: list[str] = []
        defs: dict[str, Any] = {}
        for pname, prm in inspect.signature(fn).parameters.items():
            if prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
                continue
            if prm.kind is prm.POSITIONAL_ONLY:
                raise TypeError(f"tool {self.name!r}: positional-only parameter {pname!r} "
                                "cannot be passed by name")
            self.params.append(prm)
            try:
                schema = _schema(self.hints.get(pname, prm.annotation), defs)
            except TypeError as exc:
                raise TypeError(f"tool {self.name!r} parameter {pname!r}: {exc}") from None
            if pname in arg_docs and "description" not in schema:
                schema["description"] = arg_docs[pname]
            if prm.default is prm.empty:
                required.append(pname)
            else:
                default = prm.default.value if isinstance(prm.default, enum.Enum) else prm.default
                try:
                    orjson.dumps(default)
                    schema["default"] = default
                except TypeError:
                    pass
            properties[pname] = schema
        self.parameters: dict[str, Any] = {"type": "object", "properties": properties,
                                           "required": required, "additionalProperties": False}
        if defs:
            self.parameters["$defs"] = defs

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Checked keyword arguments; ToolError naming the problem."""
        known = {p.name for p in self.params}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ToolError(f"tool {self.name!r}: unknown argument(s) {unknown}; it takes "
                            f"{sorted(known)}", self.name)
        missing = [p.name for p in self.params
                   if p.default is p.empty and p.name not in arguments]
        if missing:
            raise ToolError(f"tool {self.name!r}: missing required argument(s) {missing}",
                            self.name)
        out = {}
        for prm in self.params:
            if prm.name not in arguments:
                continue
            value = arguments[prm.name]
            if value is None and prm.default is None:
                out[prm.name] = None
                continue
            try:
                out[prm.name] = _check(value, self.hints.get(prm.name, prm.annotation),
                                       f"tool {self.name!r} argument {prm.name!r}")
            except ToolError as exc:
                exc.tool = self.name
                raise
        return out

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def _dump(result: Any) -> str:
    if isinstance(result, str):
        return result
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json")
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    return orjson.dumps(result, default=str).decode()


class ToolRegistry:
    """A set of tools, exportable to OpenAI, Anthropic and MCP, callable by name."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None,
                 description: str | None = None, timeout: float | None = 30.0) -> Any:
        """``@tools.register`` or ``@tools.register(name=..., description=..., timeout=...)``.

        The function is returned unchanged (it stays callable directly).
        """
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            tool = Tool(func, name, description, timeout)
            if tool.name in self._tools:
                raise ValueError(f"a tool named {tool.name!r} is already registered")
            self._tools[tool.name] = tool
            return func
        if fn is not None:
            return decorator(fn)
        return decorator

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Any:
        return iter(self._tools.values())

    @property
    def names(self) -> list[str]:
        """The registered tool names, in registration order."""
        return list(self._tools)

    def get(self, name: str) -> Tool:
        """The tool called ``name``; ToolError listing the known ones."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; known tools: {sorted(self._tools)}", name)
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
        """Validate ``arguments`` (a dict or a JSON string) and run the tool.

        Sync tools run in a thread (NOTE: a timed-out thread cannot be stopped; it
        finishes in the background); async tools are cancelled at the timeout.
        """
        tool = self.get(name)
        if arguments is None or arguments in ("", b""):
            arguments = {}
        if isinstance(arguments, (str, bytes)):
            try:
                arguments = orjson.loads(arguments)
            except orjson.JSONDecodeError as exc:
                raise ToolError(f"tool {name!r}: arguments are not valid JSON: {exc}",
                                name) from None
        if not isinstance(arguments, dict):
            raise ToolError(f"tool {name!r}: arguments must be a JSON object, got "
                            f"{type(arguments).__name__}", name)
        kwargs = tool.validate(arguments)
        limit = timeout if timeout is not None else tool.timeout
        if tool.is_async:
            work: Any = tool.fn(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(None, functools.partial(tool.fn, **kwargs))
        try:
            return await asyncio.wait_for(work, limit) if limit else await work
        except TimeoutError:
            raise ToolError(f"tool {name!r} timed out after {limit} s", name) from None
        except ToolError:
            raise
        except Exception as exc:
            raise ToolExecutionError(f"tool {name!r} failed: {type(exc).__name__}: {exc}",
                                     name) from exc

    async def run_tool_calls(self, tool_calls: Iterable[Any]) -> list[dict[str, Any]]:
        """Run OpenAI-style ``tool_calls`` concurrently; ``role: tool`` messages, in order.

        Each call is a dict (``{"id", "function": {"name", "arguments"}}``) or a
        ``ToolCall`` of the model system.  Failures become an ``{"error": ...}``
        content for the model to read, never an exception.
        """
        async def one(call: Any) -> dict[str, Any]:
            if isinstance(call, dict):
                fn = call.get("function") or {}
                cid, name, args = call.get("id", ""), fn.get("name", ""), fn.get("arguments")
            else:
                cid, name, args = call.id, call.name, call.arguments
            try:
                content = _dump(await self.call(name, args))
            except ToolError as exc:
                content = orjson.dumps({"error": str(exc)}).decode()
            return {"role": "tool", "tool_call_id": cid, "content": content}
        return list(await asyncio.gather(*(one(c) for c in tool_calls)))

    async def run_tool_uses(self, content: Iterable[Any]) -> list[dict[str, Any]]:
        """Run the ``tool_use`` blocks of an Anthropic message; ``tool_result`` blocks back."""
        async def one(block: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.get("id", "")}
            try:
                result["content"] = _dump(await self.call(block.get("name", ""),
                                                          block.get("input") or {}))
            except ToolError as exc:
                result["content"], result["is_error"] = str(exc), True
            return result
        blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        return list(await asyncio.gather(*(one(b) for b in blocks)))

    async def run_loop(self, model: Any, messages: list[dict[str, Any]], *,
                       max_rounds: int = 5, **params: Any) -> Any:
        """Chat with tools until the model answers without calling any.

        ``model`` is a model id (through ``ember.api.models``) or anything with an
        async ``acomplete(messages, **params)`` such as a :class:`ModelRouter`.
        ``messages`` is extended in place with the assistant's tool calls and the
        tool results; the final response is returned.  After ``max_rounds`` rounds
        of tool calls, ToolError.
        """
        if isinstance(model, str):
            from ember.models.api import async_

            async def complete(msgs: list[dict[str, Any]]) -> Any:
                return await async_(model, msgs, **params)
        else:
            async def complete(msgs: list[dict[str, Any]]) -> Any:
                return await model.acomplete(msgs, **params)
        params.setdefault("tools", self.to_openai())
        for _ in range(max_rounds):
            response = await complete(messages)
            calls = list(getattr(response, "tool_calls", None) or ())
            if not calls:
                return response
            messages.append({"role": "assistant", "content": response.text or None,
                             "tool_calls": [c if isinstance(c, dict) else c.to_openai()
                                            for c in calls]})
            messages.extend(await self.run_tool_calls(calls))
        raise ToolError(f"the model still called tools after {max_rounds} rounds")
