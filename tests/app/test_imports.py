"""What importing Ember and serving a minimal app load: nothing a plain-text/JSON app never uses.

Each check runs a fresh interpreter (``sys.modules`` of this test process is full of
everything) and compares its modules with a ``python -c pass`` baseline, so modules that
site-packages ``.pth`` hooks of the environment import do not count.  Issue #9: idle RSS
and ``from ember import Ember`` time depend on these lists staying short.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import ember
from tests._waits import wait_for
from tests.conftest import free_port

#: Never loaded by ``import ember``: the package itself is a table of lazy names.
NOT_BY_IMPORT_EMBER = {
    "asyncio", "ssl", "socket", "email", "http.cookies", "inspect", "logging", "orjson",
    "dataclasses", "uuid", "ember.app", "ember.http", "ember.routes", "ember.responses",
}

#: Never loaded by ``from ember import Ember`` (building an app needs none of them).
NOT_BY_EMBER_CLASS = {
    "asyncio", "ssl", "_ssl", "socket", "selectors", "email", "email.utils", "calendar",
    "concurrent.futures", "uvloop", "queue", "http.cookies", "h2", "pydantic", "msgspec",
    "jinja2", "sqlite3", "zoneinfo", "multiprocessing", "ember._threadpool", "ember.server",
    "ember.http.protocol", "ember.openapi", "ember.openapi_schema", "ember.openapi_infer",
    "ember.websockets", "ember.testing", "ember.forms", "ember.files", "ember.sse",
    "ember.middleware", "ember.ai", "ember.mcp", "ember.gateway", "ember.cache",
    "ember.sessions", "ember.observability", "ember.models", "ember.db", "ember.api",
    "ember.cli",
}

#: Never loaded by a served minimal app (async handlers, text and JSON, no middleware).
#: asyncio and uvloop bring ssl, socket, concurrent.futures (and queue): those are allowed.
NOT_WHILE_SERVING = NOT_BY_EMBER_CLASS - {
    "asyncio", "ssl", "_ssl", "socket", "selectors", "concurrent.futures", "uvloop", "queue",
    "ember.server", "ember.http.protocol",
} | {"ember.server.supervisor", "ember.server.reload", "watchfiles"}
# NOTE: two stdlib modules are still imported at module level on the request path and are
# left out of this list until the protocol/request rewrite drops them (~0.45 MB RSS and
# ~2 ms together): email.utils (+ calendar, email.*), for the Date header's formatdate in
# ember.http._protocol_py, and http.cookies in ember.requests.
NOT_WHILE_SERVING -= {"http.cookies", "email", "email.utils", "calendar"}


SRC = str(Path(ember.__file__).resolve().parent.parent)


def _modules(code: str, *flags: str, **env: str) -> set[str]:
    """``sys.modules`` after running ``code`` in a fresh interpreter."""
    dump = "\nimport sys as _s; print(repr(sorted(_s.modules)))"  # NOTE: json would add modules
    full = {**os.environ, **env}
    if "-S" in flags:
        # NOTE: -S skips the .pth files, among them an editable install's: point at ember.
        full["PYTHONPATH"] = os.pathsep.join(
            p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, *flags, "-c", code + dump], capture_output=True,
                         text=True, env=full, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def baseline() -> set[str]:
    return _modules("pass")


def _loaded(found: set[str], baseline: set[str], forbidden: set[str]) -> list[str]:
    """Forbidden modules (or their submodules) in ``found`` that the baseline lacks."""
    new = found - baseline
    return sorted(m for m in new if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_import_ember_loads_nothing_heavy(baseline: set[str], pure: bool) -> None:
    env = {"EMBER_NO_EXTENSIONS": "1" if pure else ""}
    found = _modules("import ember", **env)
    assert _loaded(found, baseline, NOT_BY_IMPORT_EMBER) == []
    assert {m for m in found - baseline if m.startswith("ember")} == {"ember"}


def test_import_ember_in_a_clean_interpreter_loads_only_ember() -> None:
    # NOTE: -S: no site-packages .pth hooks, which here already import typing, re, pathlib...
    # (PYTHONPATH still points at src). typing alone would cost ~8 ms in such a process.
    clean = _modules("pass", "-S")
    found = _modules("import ember", "-S")
    assert "ember" in found
    allowed = {"ember", "importlib", "warnings", "__future__"}  # + importlib's own submodules
    assert {m for m in found - clean if not m.startswith("importlib.")} <= allowed


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_from_ember_import_ember_loads_no_server_nor_optional_pieces(
        baseline: set[str], pure: bool) -> None:
    env = {"EMBER_NO_EXTENSIONS": "1" if pure else ""}
    found = _modules("from ember import Ember", **env)
    assert "ember.app" in found  # the check can fail: the app layer did load
    assert _loaded(found, baseline, NOT_BY_EMBER_CLASS) == []


def test_building_an_app_with_routes_loads_no_server_pieces(baseline: set[str]) -> None:
    code = textwrap.dedent("""
        from ember import Ember
        app = Ember()

        @app.get("/hello")
        async def hello():
            return "Hello, World!"

        @app.get("/users/{id:int}")
        def user(id: int):  # a def handler: its pool loads on its first call, not here
            return {"id": id}
    """)
    found = _modules(code)
    assert _loaded(found, baseline, NOT_BY_EMBER_CLASS) == []


def test_the_thread_pool_loads_on_the_first_def_handler_call() -> None:
    code = textwrap.dedent("""
        import sys
        from ember import Ember, TestClient
        app = Ember()

        @app.get("/sync")
        def sync():
            return "ok"

        assert "ember._threadpool" not in sys.modules
        with TestClient(app) as client:
            assert client.get("/sync").text == "ok"
        assert "ember._threadpool" in sys.modules
    """)
    assert "ember._threadpool" in _modules(code)


def test_every_public_name_imports_in_a_fresh_interpreter() -> None:
    names = [n for n in ember.__all__ if n != "__version__"]
    code = f"import ember\nfor n in {names!r}:\n    getattr(ember, n)\nfrom ember import *"
    found = _modules(code)
    assert "ember.app" in found


@pytest.mark.parametrize("name", ["Nope", "ember", "_EXPORTS_", "__path__x", "App", ""])
def test_unknown_names_raise_a_clear_error(name: str) -> None:
    with pytest.raises(AttributeError, match=f"module 'ember' has no attribute {name!r}"):
        getattr(ember, name)


def test_from_ember_import_a_missing_name_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="cannot import name 'Embr'"):
        exec("from ember import Embr", {})


def test_the_cli_help_loads_no_server_nor_app(baseline: set[str]) -> None:
    code = ("import sys\nfrom ember.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass")
    found = _modules(code)
    assert "ember.cli" in found
    heavy = {"asyncio", "ssl", "_ssl", "uvloop", "ember.app", "ember.http", "ember.routes",
             "ember.server.config", "ember.server.run", "ember.server.sockets",
             "ember.server.worker", "ember.server.supervisor", "watchfiles"}
    assert _loaded(found, baseline, heavy) == []


def test_ember_server_names_load_on_first_use() -> None:
    code = textwrap.dedent("""
        import sys
        import ember.server as server
        assert "ember.server.sockets" not in sys.modules
        from ember.server import ServerConfig, no_serve, serve
        assert ServerConfig.__module__ == "ember.server.config"
        assert serve.__module__ == no_serve.__module__ == "ember.server.run"
        assert {"ServerConfig", "no_serve", "serve"} <= set(dir(server))
        try:
            server.ServerConfg
        except AttributeError as exc:
            assert "'ember.server' has no attribute 'ServerConfg'" in str(exc), exc
        else:
            raise AssertionError("no AttributeError")
    """)
    assert "ember.server.run" in _modules(code)


def test_dir_lists_the_public_names() -> None:
    assert set(dir(ember)) >= {"Ember", "Request", "Response", "TestClient", "__version__"}


SERVER = textwrap.dedent("""
    import atexit, json, re, sys
    from ember import Ember

    port, out = int(sys.argv[1]), sys.argv[2]
    app = Ember()

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    @app.get("/json")
    async def json_():
        return {"message": "Hello, World!"}

    @app.get("/users/{id:int}")
    async def user(id: int):
        return {"id": id}

    def dump():
        status = open("/proc/self/status").read() if sys.platform == "linux" else ""
        threads = re.search(r"^Threads:\\s+(\\d+)", status, re.M)
        with open(out, "w") as f:
            json.dump({"modules": sorted(sys.modules),
                       "threads": int(threads.group(1)) if threads else None}, f)

    atexit.register(dump)
    app.run(host="127.0.0.1", port=port, workers=1)
""")


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_serving_a_minimal_app_loads_only_what_it_uses(
        tmp_path: Path, baseline: set[str], pure: bool) -> None:
    script, out, log = tmp_path / "minimal.py", tmp_path / "modules.json", tmp_path / "log"
    script.write_text(SERVER)
    port = free_port()
    env = {**os.environ, "EMBER_NO_EXTENSIONS": "1" if pure else ""}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(port), str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "the server to answer /hello")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/hello").text == "Hello, World!"
            assert client.get("/json").json() == {"message": "Hello, World!"}
            assert client.get("/users/7").json() == {"id": 7}
            assert client.get("/users/x").status_code == 404  # garbage: no match
            assert client.get("/nope").status_code == 404
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)  # a hang guard only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
    dumped = json.loads(out.read_text())
    found = set(dumped["modules"])
    assert "ember.http.protocol" in found  # it did serve through the engine
    assert _loaded(found, baseline, NOT_WHILE_SERVING) == []
    if dumped["threads"] is not None:
        assert dumped["threads"] == 1  # no thread pool started for async handlers
