"""The ``ember`` command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from ember.cli import main
from tests.conftest import free_port

APP = textwrap.dedent('''
    from ember import Ember, RouteLimits, StaticCache
    app = Ember()

    @app.get("/hello", cache=StaticCache())
    async def hello():
        return "Hello from CLI"

    @app.post("/up", limits=RouteLimits(max_body_size=10, timeout=2))
    async def up():
        return ""
''')


def test_routes_table(tmp_path, monkeypatch, capsys):
    (tmp_path / "cliapp.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["routes", "cliapp:app"]) == 0
    out = capsys.readouterr().out
    assert "METHOD" in out and "/hello" in out and "StaticCache" in out
    assert "body<=10" in out and "timeout=2s" in out


@pytest.mark.parametrize("spec,message", [("nomodule_xyz:app", "cannot import"),
                                          ("cliapp:missing", "no attribute"),
                                          (":app", "expected")])
def test_bad_app_spec(tmp_path, monkeypatch, spec, message, capsys):
    (tmp_path / "cliapp.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=message):
        main(["routes", spec])


def test_run_serves_the_app(tmp_path):
    (tmp_path / "cliapp.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "run", "cliapp:app", "--port",
                             str(port), "--access-log"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert r.text == "Hello from CLI"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert '"GET /hello HTTP/1.1" 200' in out  # one access-log line per request


def _wait(predicate, what: str, guard: float = 30.0):
    """Poll until ``predicate()`` is truthy; the guard only catches hangs."""
    deadline = time.monotonic() + guard
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _text(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


SEED_STYLE = textwrap.dedent('''
    from ember import Ember
    app = Ember()

    @app.get("/hello")
    async def hello():
        return "VERSION"

    app.run(host="127.0.0.1", port=MODULE_PORT, workers=4)
''')


def _ember(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    # NOTE: its own process group, so killpg(SIGINT) is what a terminal's Ctrl-C does
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "ember.cli", *args], cwd=cwd,
                                stdout=out, stderr=subprocess.STDOUT, process_group=0)


def test_version(capsys):
    import ember

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"ember {ember.__version__} ")


@pytest.mark.parametrize("spec", ["examples/demo.py", "examples/demo.py:app", "demo.py"])
def test_a_file_path_is_answered_with_the_module_form(spec):
    with pytest.raises(SystemExit, match=r"file path.*module:attribute") as exc:
        main(["routes", spec])
    assert spec.removesuffix(":app").removesuffix(".py").replace("/", ".") + ":app" in str(
        exc.value)


def test_routes_does_not_start_a_module_level_server(tmp_path):
    module_port = free_port()
    (tmp_path / "seedapp.py").write_text(SEED_STYLE.replace("MODULE_PORT", str(module_port)))
    done = subprocess.run([sys.executable, "-m", "ember.cli", "routes", "seedapp:app"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "/hello" in done.stdout
    assert "not serving: ember routes only lists the routes" in done.stderr


def test_run_serves_once_with_the_cli_options_and_ctrl_c_stops_it(tmp_path):
    module_port, cli_port = free_port(), free_port()
    (tmp_path / "seedapp.py").write_text(SEED_STYLE.replace("MODULE_PORT", str(module_port)))
    log = tmp_path / "out.log"
    proc = _ember(["run", "seedapp:app", "--port", str(cli_port)], tmp_path, log)
    try:
        assert _wait(lambda: _text(f"http://127.0.0.1:{cli_port}/hello"), "the CLI port") == (
            "VERSION")
        assert _refused(module_port)  # the module's own app.run did not serve
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0  # no second server after Ctrl-C (hang guard)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert out.count("listening on") == 1, out  # one worker, the CLI's --workers 1
    assert out.count("not serving: the ember command's options win") == 1, out
    assert out.count("Ember stopped") == 1, out


def test_run_on_the_real_seed_example_serves_the_cli_port_once(tmp_path):
    # examples/hello_world.py ends with app.run(host="0.0.0.0", port=8000, workers=4)
    root = Path(__file__).resolve().parents[2]
    port = free_port()
    log = tmp_path / "out.log"
    proc = _ember(["run", "examples.hello_world:app", "--port", str(port)], root, log)
    try:
        assert _wait(lambda: _text(f"http://127.0.0.1:{port}/"), "the CLI port")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert out.count("listening on") == 1 and out.count("Ember stopped") == 1, out
    assert "app.run(port=8000, workers=4) not serving" in out


def test_no_serve_and_env_switch(monkeypatch, caplog):
    from ember import Ember
    from ember.server.run import no_serve

    app = Ember()
    with no_serve("a doc test"), caplog.at_level("INFO", "ember.server"):
        app.run(port=free_port())  # returns at once instead of serving
    assert "not serving: a doc test" in caplog.text
    monkeypatch.setenv("EMBER_NO_SERVE", "1")
    app.run(port=free_port(), workers=2)


def test_reload_survives_a_syntax_error_and_restarts_when_fixed(tmp_path):
    port = free_port()
    source = SEED_STYLE.replace("MODULE_PORT", "8000")
    (tmp_path / "seedapp.py").write_text(source.replace("VERSION", "v1"))
    log = tmp_path / "out.log"
    proc = _ember(["run", "seedapp:app", "--port", str(port), "--reload"], tmp_path, log)
    url = f"http://127.0.0.1:{port}/hello"
    try:
        _wait(lambda: _text(url) == "v1", "v1")
        (tmp_path / "seedapp.py").write_text(source + "\ndef broken(:\n")
        _wait(lambda: "fix the error and save" in log.read_text(), "the reloader to wait")
        assert "SyntaxError" in log.read_text()
        assert proc.poll() is None and _refused(port)
        (tmp_path / "seedapp.py").write_text(source.replace("VERSION", "v2"))
        _wait(lambda: _text(url) == "v2", "v2 after the fix")
        (tmp_path / "helper.py").write_text("import nonexistent_module_xyz\n")
        (tmp_path / "seedapp.py").write_text("import helper\n" + source)
        _wait(lambda: log.read_text().count("fix the error and save") == 2, "import error")
        assert "nonexistent_module_xyz" in log.read_text()
        (tmp_path / "seedapp.py").write_text(source.replace("VERSION", "v3"))
        _wait(lambda: _text(url) == "v3", "v3 after the fix")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _refused(port)  # the server child is gone too


def test_ctrl_c_stops_the_reloader_while_the_app_is_broken(tmp_path):
    # uvicorn #2363: with the app in error, the reloader process never finished
    port = free_port()
    (tmp_path / "seedapp.py").write_text("def broken(:\n")
    log = tmp_path / "out.log"
    proc = _ember(["run", "seedapp:app", "--port", str(port), "--reload"], tmp_path, log)
    try:
        _wait(lambda: "fix the error and save" in log.read_text(), "the reloader to wait")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_app_run_reload_true_reloads_the_script(tmp_path):
    port = free_port()
    source = textwrap.dedent(f'''
        from ember import Ember
        app = Ember()

        @app.get("/hello")
        async def hello():
            return "VERSION"

        app.run(port={port}, reload=True)
    ''')
    script = tmp_path / "scriptapp.py"
    script.write_text(source.replace("VERSION", "s1"))
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path.parent,
                                stdout=out, stderr=subprocess.STDOUT, process_group=0)
    url = f"http://127.0.0.1:{port}/hello"
    try:
        _wait(lambda: _text(url) == "s1", "s1")
        script.write_text(source.replace("VERSION", "s2"))
        _wait(lambda: _text(url) == "s2", "s2 after the change")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().count("listening on") == 2


def test_app_run_reload_true_without_a_script_is_a_config_error():
    done = subprocess.run([sys.executable, "-c", "from ember import Ember\n"
                           "Ember().run(reload=True)"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "ConfigError" in done.stderr and "ember run module:app --reload" in done.stderr
