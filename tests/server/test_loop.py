"""The worker's event loop: ``app.run(loop=...)``, ``ember run --loop``, ``EMBER_LOOP``.

Every loop must give handlers a real asyncio Task on a real asyncio loop, so the
libraries a handler awaits first (asyncio.timeout, anyio, httpx) behave the same.
Also the seed's ``io_uring_num_bufs`` / ``io_uring_buf_size``: accepted, validated and
reported as ignored (no io_uring layer ships).
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

from ember import Ember
from ember.exceptions import ConfigError
from ember.server.config import ServerConfig
from ember.server.loops import LOOPS, resolve_loop
from ember.server.run import no_serve
from tests.conftest import free_port, raw_exchange
from tests.server._proc import AppProcess, refused, wait_for

LOOP_MODULE = {"uvloop": "uvloop", "rloop": "rloop", "asyncio": "asyncio"}
CONCRETE = [pytest.param(name, marks=pytest.mark.skipif(
    importlib.util.find_spec(name) is None and name != "asyncio",
    reason=f"{name} not installed")) for name in ("uvloop", "rloop", "asyncio")]


# NOTE: servers on a chosen loop run in their own process: rloop's Rust side keeps
# references the GC cannot see (a connection it never closed keeps its protocol alive),
# which would leak into later tests' leak checks if it ran in the pytest process.
LOOP_APP = textwrap.dedent('''
    import asyncio, sys
    import anyio, httpx
    from ember import Ember
    app = Ember()

    @app.get("/probe")
    async def probe():
        task = asyncio.current_task()
        async with asyncio.timeout(5):  # the first await of the handler
            await asyncio.sleep(0)
        await anyio.sleep(0)
        mro = type(asyncio.get_running_loop()).__mro__
        return {"task": task is not None, "loop": [c.__module__.split(".")[0] for c in mro]}

    @app.get("/hello")
    async def hello():
        return "hello"

    @app.get("/via-httpx")
    async def via_httpx(port: int):
        # a client library's own connection from inside a handler, on the same loop
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/hello")
        return {"status": r.status_code, "text": r.text}

    @app.get("/sync")
    def sync_handler():
        return "from a thread"

    app.run(port=int(sys.argv[1]), loop=sys.argv[2], **dict(a.split("=") for a in sys.argv[3:]))
''')


@pytest.fixture
def loop_server(tmp_path, monkeypatch):
    """``start(loop, **run_kwargs) -> (url, port)``: LOOP_APP served in a child process."""
    monkeypatch.delenv("EMBER_LOOP", raising=False)
    script = tmp_path / "loop_app.py"
    script.write_text(LOOP_APP)
    procs: list[subprocess.Popen] = []

    def start(name: str, **kwargs: int) -> tuple[str, int]:
        port = free_port()
        log = open(tmp_path / f"out-{len(procs)}.log", "w+")  # noqa: SIM115 (closed at teardown)
        proc = subprocess.Popen([sys.executable, str(script), str(port), name,
                                 *[f"{k}={v}" for k, v in kwargs.items()]],
                                stdout=log, stderr=subprocess.STDOUT)
        proc.log = log  # type: ignore[attr-defined]
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (log.seek(0), log.read())[1]
            try:
                return httpx.get(url + "/hello", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, f"the {name} server")
        return url, port

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.log.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", CONCRETE)
def test_each_loop_runs_handlers_in_asyncio_tasks(name, loop_server):
    url, port = loop_server(name)
    with httpx.Client(base_url=url, timeout=10) as client:
        body = client.get("/probe").json()
        assert body["task"] is True
        assert body["loop"][0 if name != "rloop" else 1] == LOOP_MODULE[name]
        assert client.get("/via-httpx", params={"port": port}).json() == {
            "status": 200, "text": "hello"}
        assert client.get("/sync").text == "from a thread"
        # pipelined requests answered in order on one connection
        out = raw_exchange(url, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                           + b"GET /sync HTTP/1.1\r\nHost: x\r\n\r\n", until_close=False,
                           expect=4)
        assert out.count(b"HTTP/1.1 200 OK") == 4
        assert out.endswith(b"from a thread")


@pytest.mark.parametrize("bad", ["tokio", "", "uv loop", 3, None, True, ["uvloop"]])
def test_a_garbage_loop_names_the_allowed_values(bad):
    with pytest.raises(ConfigError, match="loop must be one of auto, uvloop, rloop, asyncio"):
        ServerConfig(loop=bad)


def test_app_run_validates_loop_before_binding():
    app = Ember()
    with no_serve("test"), pytest.raises(ConfigError, match="got 'tokio'"):
        app.run(port=free_port(), loop="tokio")


def test_loop_names_ignore_case_and_spaces(monkeypatch):
    monkeypatch.delenv("EMBER_LOOP", raising=False)
    assert ServerConfig(loop=" Asyncio ").loop == "asyncio"
    assert set(LOOPS) == {"auto", "uvloop", "rloop", "asyncio"}


def test_auto_prefers_uvloop_then_asyncio(monkeypatch):
    monkeypatch.delenv("EMBER_LOOP", raising=False)
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert ServerConfig().loop == expected
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if uvloop were not installed
    assert ServerConfig().loop == "asyncio"


def test_a_missing_loop_package_names_the_pip_command(monkeypatch):
    monkeypatch.delenv("EMBER_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "rloop", None)
    with pytest.raises(ConfigError, match=r"pip install 'ember-api\[rloop\]'"):
        ServerConfig(loop="rloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ConfigError, match="pip install uvloop"):
        ServerConfig(loop="uvloop")


def test_env_var_picks_the_loop_for_auto_only(monkeypatch):
    monkeypatch.setenv("EMBER_LOOP", "asyncio")
    assert ServerConfig().loop == "asyncio"
    if importlib.util.find_spec("uvloop"):
        assert ServerConfig(loop="uvloop").loop == "uvloop"  # an explicit choice wins
    monkeypatch.setenv("EMBER_LOOP", "libev")
    with pytest.raises(ConfigError, match="EMBER_LOOP must be one of auto, uvloop"):
        ServerConfig()


@pytest.mark.skipif(importlib.util.find_spec("rloop") is None, reason="rloop not installed")
def test_rloop_refuses_tls_with_a_reason(tls_files, monkeypatch):
    monkeypatch.delenv("EMBER_LOOP", raising=False)
    cert, key = tls_files
    with pytest.raises(ConfigError, match=r"rloop.*cannot serve TLS"):
        ServerConfig(loop="rloop", ssl_certfile=cert, ssl_keyfile=key)
    assert resolve_loop("auto", tls=True) in ("uvloop", "asyncio")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", CONCRETE)
def test_graceful_stop_finishes_in_flight_and_refuses_new(name, workers, tmp_path):
    """SIGTERM: new connections are refused, the request in flight still gets its answer.

    (rloop's Server.close() aborts accepted connections; the worker stops listening
    another way there.)
    """
    app = AppProcess(tmp_path, workers, loop=name)
    try:
        app.worker_pids(workers)
        result: dict[str, object] = {}

        def held() -> None:
            try:
                result["r"] = httpx.get(app.url + "/hold", timeout=30)
            except httpx.HTTPError as exc:
                result["r"] = exc

        thread = threading.Thread(target=held)
        thread.start()
        wait_for(app.started_holds, "the held request to start")
        app.signal(signal.SIGTERM)

        wait_for(lambda: refused(app.port), "new connections to be refused")
        app.release()
        thread.join(30)
        assert getattr(result.get("r"), "text", result.get("r")) == "released"
        assert app.wait_exit() == 0
        assert f"(loop: {name})" in app.output()
        assert ("loop='rloop' is experimental" in app.output()) == (name == "rloop")
    finally:
        app.stop()


@pytest.mark.parametrize("name", [
    *CONCRETE[:1], *CONCRETE[2:],
    pytest.param("rloop", marks=[*CONCRETE[1].marks, pytest.mark.xfail(
        strict=True, reason="rloop 0.5: transport.close() never shuts the socket down")]),
])
def test_a_connection_the_server_closes_reaches_eof(name, loop_server):
    """``Connection: close`` ends with EOF (the server shuts the socket down).

    This is why rloop is experimental: strict xfail, so it shows when rloop fixes it.
    """
    _url, port = loop_server(name)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pytest.fail(f"no EOF after the response: {data[-60:]!r}")
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello")


def test_cli_loop_flag(tmp_path):
    (tmp_path / "loopapp.py").write_text(textwrap.dedent('''
        import asyncio
        from ember import Ember
        app = Ember()

        @app.get("/")
        async def index():
            return type(asyncio.get_running_loop()).__module__
    '''))
    bad = subprocess.run([sys.executable, "-m", "ember.cli", "run", "loopapp:app", "--loop",
                          "tokio"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "loop must be one of auto, uvloop, rloop, asyncio, got 'tokio'" in bad.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "run", "loopapp:app",
                             "--port", str(port), "--loop", "asyncio"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answer() -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                return None

        assert wait_for(answer, "the CLI server") == "asyncio.unix_events"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "(loop: asyncio)" in out


# -- the seed's io_uring buffer pool -----------------------------------------------------

def test_io_uring_options_are_accepted_and_kept():
    config = ServerConfig(io_uring_num_bufs=512, io_uring_buf_size=4096)
    assert (config.io_uring_num_bufs, config.io_uring_buf_size) == (512, 4096)
    with no_serve("test"):
        Ember().run(io_uring_num_bufs=512, io_uring_buf_size=4096)  # no "unknown field"


@pytest.mark.parametrize("field", ["io_uring_num_bufs", "io_uring_buf_size"])
@pytest.mark.parametrize("bad", [0, -1, 1.5, "4096", True, [1]])
def test_io_uring_garbage_is_a_value_error_naming_the_fix(field, bad):
    with no_serve("test"), pytest.raises(ValueError, match=f"{field} must be a positive integer"):
        Ember().run(**{field: bad})


def test_io_uring_options_say_they_are_ignored(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="ember.server")
    server = server_factory(Ember(), io_uring_num_bufs=64, io_uring_buf_size=2048)
    assert httpx.get(server.url + "/nope").status_code == 404
    assert any("io_uring_num_bufs/io_uring_buf_size are ignored" in r.getMessage()
               for r in caplog.records)


def test_without_io_uring_options_nothing_is_said(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="ember.server")
    server_factory(Ember())
    assert not any("io_uring" in r.getMessage() for r in caplog.records)
