"""The ``ember`` command line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

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


def test_reload_restarts_on_change(tmp_path):
    (tmp_path / "cliapp.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "run", "cliapp:app", "--port",
                             str(port), "--reload"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/hello"

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).text == text:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"never saw {text!r}")

    try:
        wait_for("Hello from CLI")
        time.sleep(1.1)  # mtime granularity
        (tmp_path / "cliapp.py").write_text(APP.replace("Hello from CLI", "Reloaded"))
        wait_for("Reloaded")
    finally:
        proc.terminate()
        proc.wait(10)
