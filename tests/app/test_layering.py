"""The import graph of ``src/ember`` looks only down (issue #24, docs/engine.md "Layers").

The graph is built from the source with :mod:`ast`, so it sees every import statement:
those run when a module loads (module level, including ``try``/``if`` blocks and class
bodies, but not ``if TYPE_CHECKING:``) and those run later, inside a function (lazy).

* module-level imports form no cycle;
* no import, eager or lazy, points from a layer to a higher one (:data:`LAYERS`);
* the only way up is a lazy loader listed in :data:`DYNAMIC_IMPORTS`, above all the
  feature entry points of :mod:`ember.features` (``app.mount_openai``, ``app.add_mcp``,
  ``ai_route``/``websocket`` route wrappers...), whose targets are checked to exist.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

import ember

SRC = Path(ember.__file__).resolve().parent

#: The layers, lowest first: a module may import its own layer and those below it.
#: A module belongs to the layer of the longest entry that is its name or a parent package.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # 0 foundation: the vocabulary every other layer speaks (errors, status codes, headers,
    #   limits) and private helpers; ``ember`` itself is only a table of lazy names.
    ("foundation", (
        "ember", "ember._compat", "ember._cython_shim", "ember._json", "ember._hints",
        "ember._redact", "ember._chunks", "ember._lazy", "ember._threadpool", "ember.status",
        "ember.exceptions", "ember.http.errors", "ember.datastructures", "ember.limits",
        "ember.outages",
    )),
    # 1 messages: what the wire and the app exchange: a request (its client and host, as
    #   proxies and Host say; its body channel, the Cycle the wire feeds), a response, the
    #   body formats, WebSocket frames.
    ("messages", (
        "ember.requests", "ember._request_py", "ember.http.cycle", "ember.http._cycle_py",
        "ember.responses", "ember.files", "ember.sse", "ember.forms", "ember.wsframes",
        "ember._wsframes_py", "ember.proxies", "ember.hosts",
    )),
    # 2 routing: the path template (one parser, one set of converters) and the router.
    ("routing", ("ember.routing",)),
    # 3 wire: HTTP/1.1, HTTP/2 and the WebSocket protocol; handed one object that answers.
    ("wire", ("ember.http", "ember.websockets")),
    # 4 app: routes and their injection plans, the application, OpenAPI, the feature registry.
    ("app", (
        "ember._plan", "ember._markers", "ember.params", "ember.validation", "ember.injection",
        "ember.dependencies", "ember.route_config", "ember.routes", "ember.blueprints",
        "ember.features", "ember.app", "ember.openapi", "ember.openapi_infer",
        "ember.openapi_params", "ember.openapi_schema",
    )),
    # 5 extensions: features around routes: middleware, caches, sessions, database, probes,
    #   metrics, static files, mounted ASGI apps.
    ("extensions", (
        "ember.middleware", "ember.cache", "ember.sessions", "ember.db", "ember.health",
        "ember.observability", "ember.staticfiles", "ember.asgi", "ember.asgi_app",
    )),
    # 6 AI: the model system and what is built on it (AI routes, gateway, MCP, tracing).
    ("ai", (
        "ember.models", "ember.api", "ember.ai", "ember.gateway", "ember.mcp", "ember.tracing",
    )),
    # 7 entry points: the server, the CLI, the test client, project scaffolding.
    ("entry", ("ember.server", "ember.cli", "ember.testing", "ember.scaffold")),
]

#: The modules allowed to import by name at run time (importlib / __import__), and why.
#: Everything else imports with a statement, which the layering checks.
DYNAMIC_IMPORTS = {
    "ember": "the public names, loaded on first use (PEP 562)",
    "ember._lazy": "the same for subpackages; each table names its own package's modules",
    "ember._compat": "the compiled or pure twin of a hot module, beside the selector",
    "ember.features": "feature entry points: the one way up (checked below)",
    "ember.exceptions": "require(): optional third-party packages, naming the pip extra",
    "ember.cli": "the user's app module (`ember run module:app`)",
    "ember.models.providers": "provider classes of its own package, on first use",
    "ember.models.providers.base": "a provider's SDK-free factory, by name",
}

#: Upward arrows waiting for a rewrite, each with its reason. Empty since issue #24 parts
#: 1-2: the app hands the connection what it needs (``_answer_plan``, ``_direct_routing``)
#: and the wire never imports it. Each entry must still exist (a stale one fails, so the
#: list only shrinks).
PENDING_CORE: dict[tuple[str, str], str] = {}


#: Cycles that exist only through lazy (function-level) imports, inside one layer. None
#: may grow or appear; each is a candidate for the next clean-up. (The injection cycle
#: {_markers, dependencies, injection, validation} is gone: they import one way,
#: _plan <- validation <- _markers <- dependencies <- injection; ``Depends`` builds its
#: plan with the ``analyse`` its Build was handed.)
LAZY_CYCLES: list[set[str]] = []


def _modules() -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.is_symlink():  # NOTE: _x_c.py, the compiled twin's name for _x_py.py
            continue
        parts = ["ember", *path.relative_to(SRC).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        found[".".join(parts)] = (path, is_pkg)
    return found


MODULES = _modules()


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module][0].read_text(encoding="utf-8"))


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(module: str) -> list[tuple[str, str, int]]:
    """``(target, "module" | "lazy", line)`` of each import of another ember module."""
    is_pkg = MODULES[module][1]
    package = module if is_pkg else module.rpartition(".")[0]
    out: list[tuple[str, str, int]] = []

    def add(target: str | None, kind: str, line: int) -> None:
        if target is not None and target != module:
            out.append((target, kind, line))

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "lazy")
            elif _is_type_checking(child):
                for other in child.orelse:
                    visit(other, kind)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "ember":
                        add(_owner(alias.name), kind, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - child.level + 1]
                    base = ".".join([*parts, *([child.module] if child.module else [])])
                if base.split(".")[0] != "ember":
                    continue
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in MODULES else _owner(base), kind, child.lineno)
            else:
                visit(child, kind)

    visit(_tree(module), "module")
    return out


def _layer_of(module: str) -> int | None:
    best, layer = "", None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, layer = name, index
    return layer


EDGES = {m: _imports(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _entry_points() -> dict[str, str]:
    """``ember.features.ENTRY_POINTS`` read from the source (a literal dict)."""
    tree = ast.parse((SRC / "features.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "ENTRY_POINTS":
            value = ast.literal_eval(node.value)  # type: ignore[arg-type]
            assert isinstance(value, dict)
            return value
    raise AssertionError("ember/features.py defines no ENTRY_POINTS literal")


def _defines(module: str, name: str) -> bool:
    for node in _tree(module).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and node.name == name:
            return True
        if isinstance(node, ast.ImportFrom) and any(
                (a.asname or a.name) == name for a in node.names):
            return True
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer_of(m) is None)
    assert not missing, f"give these modules a layer in LAYERS: {missing}"


def test_no_import_cycles_at_module_level():
    graph = {m: {t for t, kind, _ in edges if kind == "module"} for m, edges in EDGES.items()}
    assert _cycles(graph) == []


def test_lazy_cycles_only_the_known_ones():
    graph = {m: {t for t, _, _ in edges} for m, edges in EDGES.items()}
    found = [set(c) for c in _cycles(graph)]
    new = [sorted(c) for c in found if not any(c <= known for known in LAZY_CYCLES)]
    assert new == [], f"new import cycles (through lazy imports): {new}"
    gone = [sorted(k) for k in LAZY_CYCLES if not any(c == k for c in found)]
    assert gone == [], f"these cycles changed or are gone: update LAZY_CYCLES: {gone}"


def test_no_upward_imports():
    upward = []
    for module, edges in sorted(EDGES.items()):
        mine = _layer_of(module)
        for target, kind, line in edges:
            theirs = _layer_of(target)
            if mine is None or theirs is None or theirs <= mine:
                continue
            if (module, target) in PENDING_CORE:
                continue
            upward.append(f"{module}:{line} -> {target} ({kind}; {LAYERS[mine][0]} -> "
                          f"{LAYERS[theirs][0]})")
    assert upward == [], "\n".join(upward)


def test_pending_exemptions_are_still_needed():
    present = {(m, t) for m, edges in EDGES.items() for t, _, _ in edges}
    stale = sorted(set(PENDING_CORE) - present)
    assert stale == [], f"these arrows are gone: delete them from PENDING_CORE: {stale}"


def test_dynamic_imports_only_in_the_listed_loaders():
    found = set()
    for module in MODULES:
        for node in ast.walk(_tree(module)):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name == "import_module" or (name == "__import__" and not (
                    node.args and isinstance(node.args[0], ast.Constant)
                    and not str(node.args[0].value).startswith("ember"))):
                found.add(module)
    assert found - set(DYNAMIC_IMPORTS) == set()
    assert set(DYNAMIC_IMPORTS) - found == set(), "a listed loader no longer loads: unlist it"


@pytest.mark.parametrize("key", sorted(_entry_points()))
def test_feature_entry_points_exist(key):
    """Each entry point names a module of ours and a name it defines at top level."""
    spec = _entry_points()[key]
    module, _, attr = spec.partition(":")
    assert module in MODULES, f"{key}: no module {module}"
    assert attr and _defines(module, attr), f"{key}: {module} defines no {attr!r}"
    assert _layer_of(module) is not None


def test_the_graph_is_seen():
    """The checks above look at real arrows (guards against a parser that sees nothing)."""
    arrows = {(m, t, k) for m, edges in EDGES.items() for t, k, _ in edges}
    assert ("ember.app", "ember.routes", "module") in arrows
    assert ("ember.routes", "ember.injection", "module") in arrows
    assert any(m == "ember.http.handover" and k == "lazy" for m, _, k in arrows)
    by_layer: dict[int, int] = defaultdict(int)
    for m in MODULES:
        by_layer[_layer_of(m) or 0] += 1
    assert all(by_layer[i] for i in range(len(LAYERS)))
