"""What a handler can answer, read from its return annotation and its source.

Ember turns a handler's result into a response by its type (``dict`` → JSON,
``str`` → text/plain, ``None`` → 204, ``(body, 201)`` → that status, a
``Response`` → its own media type). The document says the same: the return
annotation gives the success body (``-> User``, ``-> list[Item]``,
``-> HTMLResponse``); without one, the handler's ``return`` statements are read
(``return {...}``, ``return "text"``, ``return item, 201``, ``return
sse_stream(...)``), and literal ``raise HTTPException(404, ...)`` statements
declare error answers. Anything that cannot be told statically is documented as
"JSON or text", so the document never claims less than the handler can do.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
import weakref
from typing import Any

JSON = "application/json"
TEXT = "text/plain"
SSE = "text/event-stream"
BINARY = "application/octet-stream"


class Outcome:
    """One possible answer: status (None = the route's default) and media type + body type."""

    __slots__ = ("media", "status", "tp")

    def __init__(self, media: str | None, tp: Any = Any, status: int | None = None) -> None:
        self.media = media  # None: no body (204)
        self.tp = tp
        self.status = status

    def __repr__(self) -> str:
        return f"Outcome({self.media!r}, {self.tp!r}, {self.status!r})"


def from_annotation(tp: Any) -> list[Outcome] | None:
    """Outcomes of a return annotation; None when it says nothing usable."""
    from ember.responses import JSONResponse, Response, StreamingResponse

    if tp is inspect.Parameter.empty or tp is Any:
        return None
    if tp is None or tp is type(None):
        return [Outcome(None)]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return from_annotation(args[0])
    if origin is tuple and len(args) == 2 and args[1] is int:
        return from_annotation(args[0])
    if isinstance(tp, type) and issubclass(tp, Response):
        media = getattr(tp, "media_type", None)
        if issubclass(tp, JSONResponse):
            return [Outcome(JSON)]
        if media:
            return [Outcome(media, str if media.startswith("text/") else bytes)]
        if issubclass(tp, StreamingResponse):
            return [Outcome(BINARY, bytes)]
        return [Outcome("*/*", Any)]  # NOTE: a bare Response may carry any media type
    if tp is str:
        return [Outcome(TEXT, str)]
    if tp in (bytes, bytearray):
        return [Outcome(BINARY, bytes)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out: list[Outcome] = []
        for arg in args:
            got = from_annotation(arg)
            if got is None:
                return None
            out += got
        return out
    if origin in (typing.AsyncIterator, typing.AsyncGenerator, typing.Iterator,
                  typing.Generator) or getattr(origin, "__name__", "") in (
                      "AsyncIterator", "AsyncGenerator", "AsyncIterable", "Iterator",
                      "Generator", "Iterable"):
        return [Outcome(BINARY, bytes)]
    return [Outcome(JSON, tp)]


def request_reads(fn: Any) -> set[str]:
    """Which of ``json``/``form``/``body``/``stream`` the handler calls on its Request."""
    return _scan(fn)[2]


def from_source(fn: Any) -> tuple[list[Outcome] | None, set[int]]:
    """``(outcomes of the return statements or None if unknown, literal HTTPException codes)``."""
    outcomes, raises, _ = _scan(fn)
    return outcomes, raises


def _scan(fn: Any) -> tuple[list[Outcome] | None, set[int], set[str]]:
    try:
        cached = _CACHE.get(fn)
    except TypeError:  # not weak-referenceable
        return _scan_source(fn)
    if cached is None:
        cached = _CACHE[fn] = _scan_source(fn)
    return cached


#: NOTE: weak, so documenting an app never keeps its handlers alive
_CACHE: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _scan_source(fn: Any) -> tuple[list[Outcome] | None, set[int], set[str]]:
    reads: set[str] = set()
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None, set(), reads
    func = next((n for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if func is None:
        return None, set(), reads
    try:
        request_names = {n for n, t in typing.get_type_hints(fn).items()
                         if getattr(t, "__name__", "") == "Request"} | {"request"}
    except Exception:
        request_names = {"request"}
    returns: list[ast.Return] = []
    raises: set[int] = set()
    generator = False
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue  # NOTE: nested functions' returns are not the handler's
        if isinstance(node, ast.Return):
            returns.append(node)
        elif isinstance(node, (ast.Yield, ast.YieldFrom)):
            generator = True
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            code = _http_exception_code(node.exc)
            if code is not None:
                raises.add(code)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name)
              and node.func.value.id in request_names
              and node.func.attr in ("json", "form", "body", "stream")):
            reads.add(node.func.attr)
        stack.extend(ast.iter_child_nodes(node))
    if generator:
        return [Outcome(BINARY, bytes)], raises, reads
    if not returns:
        return [Outcome(None)], raises, reads
    namespace = getattr(fn, "__globals__", {})
    try:
        params = {k: v for k, v in typing.get_type_hints(fn).items() if k != "return"}
    except Exception:
        params = {}
    out: list[Outcome] = []
    for ret in returns:
        got = _expr(ret.value, namespace, params)
        if got is None:
            return None, raises, reads
        out += got
    return out, raises, reads


def _http_exception_code(call: ast.Call) -> int | None:
    name = call.func.id if isinstance(call.func, ast.Name) else (
        call.func.attr if isinstance(call.func, ast.Attribute) else "")
    if name != "HTTPException":
        return None
    arg = call.args[0] if call.args else next(
        (k.value for k in call.keywords if k.arg == "status_code"), None)
    if isinstance(arg, ast.Constant) and type(arg.value) is int and 400 <= arg.value <= 599:
        return arg.value
    return None


def _expr(node: ast.expr | None, namespace: dict[str, Any],
          params: dict[str, Any]) -> list[Outcome] | None:
    if node is None or (isinstance(node, ast.Constant) and node.value in (None, Ellipsis)):
        return [Outcome(None)]
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return [Outcome(TEXT, str)]
        if isinstance(node.value, bytes):
            return [Outcome(BINARY, bytes)]
        return [Outcome(JSON, type(node.value))]
    if isinstance(node, ast.JoinedStr):
        return [Outcome(TEXT, str)]
    if isinstance(node, (ast.Dict, ast.DictComp)):
        return [Outcome(JSON, dict)]
    if isinstance(node, (ast.List, ast.ListComp)):
        return [Outcome(JSON, list)]
    if isinstance(node, ast.Tuple) and len(node.elts) == 2:
        code = node.elts[1]
        body = _expr(node.elts[0], namespace, params)
        if isinstance(code, ast.Constant) and type(code.value) is int and body is not None:
            for outcome in body:
                outcome.status = code.value
            return body
        return None
    if isinstance(node, ast.Name) and node.id in params:  # a parameter returned as is
        return from_annotation(params[node.id])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        target = namespace.get(node.func.id)
        if target is None:
            import builtins

            target = getattr(builtins, node.func.id, None)
            if target in (dict, list):
                return [Outcome(JSON, target)]
            if target is str:
                return [Outcome(TEXT, str)]
            return None
        if isinstance(target, type):
            return from_annotation(target)
        try:
            hints = typing.get_type_hints(target)
        except Exception:
            return None
        return from_annotation(hints.get("return", inspect.Parameter.empty))
    return None
