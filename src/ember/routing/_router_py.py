# cython: annotation_typing=False
"""Path templates and the radix-tree router (pure-Python reference, compiled as ``_router_c``).

:func:`parse_template` is Ember's one reader of a path template
(``/users/{user_id:int}/{rest:path}``) and :data:`CONVERTORS` its one set of typed
parameters; everything else (the route checks, OpenAPI paths, ``url_for``, duplicate
detection) works on its result through :mod:`ember.routing.templates`.

Paths without parameters live in one dict, so their lookup is O(1) whatever
the number of routes.  Parameterised paths live in a tree of segments; at each
node static children are tried before typed parameters, and parameters before
a catch-all (``{rest:path}``), backtracking when a branch does not match.  A
path that matches with another method gives 405 with ``Allow``; HEAD falls
back to GET.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote

from ember.exceptions import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLOAT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _to_int(seg: str) -> int:
    if seg.isascii() and (seg.isdigit() or (seg[:1] == "-" and seg[1:].isdigit())):
        return int(seg)
    raise ValueError(seg)


def _to_float(seg: str) -> float:
    if _FLOAT.fullmatch(seg):
        return float(seg)
    raise ValueError(seg)


def _to_uuid(seg: str) -> uuid.UUID:
    if len(seg) not in (32, 36):
        raise ValueError(seg)
    return uuid.UUID(seg)


def _to_str(seg: str) -> str:
    if not seg:
        raise ValueError(seg)
    return seg


#: The typed parameters ``{name:kind}``; ``{rest:path}`` (a catch-all) is not a converter.
CONVERTORS: dict[str, Any] = {"str": _to_str, "int": _to_int, "float": _to_float, "uuid": _to_uuid}
#: Every kind a template may name, in the order error messages list them.
KINDS: tuple[str, ...] = (*CONVERTORS, "path")


def parse_template(path: str) -> list[Any]:
    """The segments of ``path`` after its leading ``/``: each a ``str`` (static) or a
    ``(name, kind)`` tuple (a parameter; ``kind`` one of :data:`KINDS`).

    ConfigError (a ValueError) naming the template and the fix for a path without a
    leading ``/``, an unbalanced ``{``/``}``, a parameter that is not a whole segment, a
    name that is not an identifier, an unknown converter, a repeated name, or
    ``{x:path}`` before the last segment.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"route path must be a string starting with '/', got {path!r}")
    segments = path.split("/")[1:]
    out: list[Any] = []
    seen: set[str] = set()
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if "{" not in seg and "}" not in seg:
            out.append(seg)
            continue
        opens = seg.count("{")
        closes = seg.count("}")
        if opens != 1 or closes != 1 or not (seg.startswith("{") and seg.endswith("}")):
            if opens > closes:
                hint = "the closing '}' is missing"
            elif closes > opens:
                hint = "the opening '{' is missing"
            else:
                hint = "a parameter must be a whole segment, e.g. '/files/{name}'"
            raise ConfigError(f"route {path!r}: invalid segment {seg!r}: {hint}")
        name, colon, kind = seg[1:-1].partition(":")
        if not _NAME.fullmatch(name):
            raise ConfigError(f"route {path!r}: {seg!r} needs a parameter name that is a Python "
                              "identifier, e.g. '{user_id}' or '{user_id:int}'")
        if not kind:
            if colon:
                raise ConfigError(f"route {path!r}: {seg!r} names no converter after ':'; "
                                  f"write '{{{name}}}' or one of {', '.join(KINDS)}")
            kind = "str"
        if kind not in KINDS:
            raise ConfigError(f"route {path!r}: unknown converter {kind!r} in {seg!r}; use one "
                              f"of {', '.join(KINDS)} (e.g. '{{{name}:int}}')")
        if kind == "path" and i != last:
            raise ConfigError(f"route {path!r}: '{{{name}:path}}' must be the last segment")
        if name in seen:
            raise ConfigError(f"route {path!r}: path parameter {name!r} appears twice; give "
                              "each one its own name")
        seen.add(name)
        out.append((name, kind))
    return out


class _Node:
    __slots__ = ("catchall", "methods", "params", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.params: list[tuple[str, Any, _Node]] = []
        self.catchall: tuple[str, _Node] | None = None
        self.methods: dict[str, Any] = {}


class Router:
    """Maps (method, path) to a route object and its converted path parameters."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Any]] = {}
        self._root = _Node()
        self.routes: list[Any] = []

    def add(self, path: str, methods: list[str] | tuple[str, ...], route: Any) -> None:
        """Register ``route`` for ``methods`` on the template ``path``."""
        segments = parse_template(path)
        self.routes.append(route)
        if all(type(seg) is str for seg in segments):
            table = self._static.setdefault(path, {})
            for m in methods:
                table[m] = route
            return
        node = self._root
        for seg in segments:
            if type(seg) is str:
                node = node.static.setdefault(seg, _Node())
                continue
            name, kind = seg
            if kind == "path":
                if node.catchall is None:
                    node.catchall = (name, _Node())
                elif node.catchall[0] != name:
                    raise ConfigError(f"route {path!r}: conflicting catch-all names "
                                      f"{node.catchall[0]!r} and {name!r} at the same place")
                node = node.catchall[1]
                continue
            conv = CONVERTORS[kind]
            for pname, pconv, child in node.params:
                if pname == name and pconv is conv:
                    node = child
                    break
            else:
                child = _Node()
                node.params.append((name, conv, child))
                # NOTE: typed parameters before plain str, so /{id:int} beats /{slug}.
                node.params.sort(key=lambda p: p[1] is _to_str)
                node = child
        for m in methods:
            node.methods[m] = route

    def match(self, method: str, path: str) -> tuple[Any, dict[str, Any] | None]:
        """``(route, params)``; ``(None, allowed_methods)`` for 405; ``(None, None)`` for 404."""
        table = self._static.get(path)
        allowed: set[str] | None = None
        if table is not None:
            route = table.get(method)
            if route is None and method == "HEAD":
                route = table.get("GET")
            if route is not None:
                return route, {}
            allowed = set(table)
        segments = path.split("/")[1:]
        if "%" in path:
            segments = [unquote(s) if "%" in s else s for s in segments]
        params: dict[str, Any] = {}
        found = _walk(self._root, segments, 0, params, method)
        if found is not None:
            if isinstance(found, set):
                allowed = found if allowed is None else allowed | found
            else:
                return found, params
        return None, allowed

    def match_request(self, method: str, raw_path: bytes) -> tuple[Any, Any]:
        """Like :meth:`match` on the raw (still percent-encoded) request path."""
        path = raw_path.decode("latin-1")
        table = self._static.get(path)
        if table is not None:
            route = table.get(method)
            if route is not None:
                return route, {}
        if "%" in path:
            # static routes are matched on the decoded path; segments are decoded
            # one by one so that an encoded "/" never splits a parameter
            table = self._static.get(unquote(path))
            if table is not None:
                route = table.get(method) or (table.get("GET") if method == "HEAD" else None)
                if route is not None:
                    return route, {}
        return self.match(method, path)


def _walk(node: _Node, segs: list[str], i: int, params: dict[str, Any], method: str) -> Any:
    """Depth-first match; a route, a set of allowed methods (405), or None."""
    allowed: set[str] | None = None
    if i == len(segs):
        if node.methods:
            route = node.methods.get(method)
            if route is None and method == "HEAD":
                route = node.methods.get("GET")
            if route is not None:
                return route
            return set(node.methods)
        if node.catchall is None:
            return None
    else:
        seg = segs[i]
        child = node.static.get(seg)
        if child is not None:
            found = _walk(child, segs, i + 1, params, method)
            if found is not None:
                if not isinstance(found, set):
                    return found
                allowed = found
        for p in node.params:
            name = p[0]
            conv = p[1]
            pchild = p[2]
            try:
                value = conv(seg)
            except (ValueError, TypeError):
                continue
            params[name] = value
            found = _walk(pchild, segs, i + 1, params, method)
            if found is not None:
                if not isinstance(found, set):
                    return found
                allowed = found if allowed is None else allowed | found
            del params[name]
    if node.catchall is not None:
        name = node.catchall[0]
        cnode = node.catchall[1]
        if cnode.methods:
            route = cnode.methods.get(method)
            if route is None and method == "HEAD":
                route = cnode.methods.get("GET")
            if route is not None:
                params[name] = "/".join(segs[i:])
                return route
            allowed = set(cnode.methods) if allowed is None else allowed | set(cnode.methods)
    return allowed
