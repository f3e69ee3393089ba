"""Every seed example in examples/ runs unchanged (only the port differs) and answers."""

from __future__ import annotations

import os
import re
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run_script(name: str, tmp_path: Path, env: dict[str, str] | None = None):
    source = (EXAMPLES / name).read_text()
    port = free_port()
    patched, n = re.subn(r"port=8000", f"port={port}", source)
    assert n == 1, "the example must call app.run(..., port=8000, ...)"
    script = tmp_path / name
    script.write_text(patched)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                            env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode())
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("example did not start")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return out


def test_hello_world(tmp_path):
    proc, url = _run_script("hello_world.py", tmp_path)
    try:
        assert httpx.get(url + "/").json() == {"hello": "world"}
    finally:
        _stop(proc)


def test_full_crud_with_redis_cache(tmp_path, redis_server):
    proc, url = _run_script("crud.py", tmp_path, {"EMBER_REDIS_URL": redis_server.url})
    try:
        with httpx.Client(base_url=url) as c:
            created = c.post("/tasks", json={"title": "write tests"})
            assert created.status_code == 201
            task = created.json()
            assert task["title"] == "write tests" and len(task["id"]) == 36
            # 4 workers: the task lives in the worker that created it (in-memory dict)
            seen = {c.get(f"/tasks/{task['id']}").status_code for _ in range(20)}
            assert 200 in seen and seen <= {200, 404}
            r = c.get("/tasks/unknown")
            assert r.status_code == 404 and r.json() == {"error": "not found"}
            listing = c.get("/tasks?page=1&limit=10")
            assert listing.status_code == 200 and "tasks" in listing.json()
            assert c.get("/tasks?page=1&limit=10").headers.get("x-cache") in ("HIT", "MISS")
            assert c.get("/tasks?page=x").status_code == 500  # int("x") in the seed handler
    finally:
        _stop(proc)


def test_ai_chat_streams(tmp_path):
    proc, url = _run_script("ai_chat.py", tmp_path)
    try:
        with httpx.stream("POST", url + "/v1/chat", json={"message": "hi there"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            text = "".join(r.iter_text())
        words = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert "".join(words) == "You asked: hi there "
    finally:
        _stop(proc)


def test_blueprints(tmp_path):
    proc, url = _run_script("blueprints.py", tmp_path)
    try:
        assert httpx.get(url + "/admin/users").json() == {"users": []}
        r = httpx.post(url + "/admin/users", json={"name": "ann"})
        assert r.status_code == 201 and r.json() == {"name": "ann"}
    finally:
        _stop(proc)


def _load(name: str):
    return runpy.run_path(str(EXAMPLES / name))["app"]


def test_caching(serve, redis_server, memcached_server):
    app = _load("caching.py")
    url = serve(app)
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert httpx.get(url + "/health").headers["x-cache"] == "HIT"
    # /tasks and /posts point at the default localhost ports; served (uncached) either way
    assert httpx.get(url + "/tasks").status_code == 204
    assert httpx.get(url + "/posts").status_code == 204


def test_middleware(serve):
    app = _load("middleware.py")

    @app.get("/data")
    async def data():
        return {"ok": True}

    url = serve(app)
    assert httpx.get(url + "/data").status_code == 401
    ok = httpx.get(url + "/data", headers={"authorization": "Bearer secret", "x-api-key": "key-1",
                                           "origin": "https://myapp.com"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://myapp.com"
    pre = httpx.options(url + "/data", headers={"origin": "https://myapp.com",
                                                "access-control-request-method": "GET"})
    assert pre.status_code == 204


def test_limits(serve):
    app = _load("limits.py")
    assert app.server_limits.keep_alive_timeout == 30
    url = serve(app)
    r = httpx.post(url + "/upload", content=b"x" * (2 * 1024 * 1024))
    assert r.json() == {"size": 2 * 1024 * 1024}  # above the 1 MiB default, within 50 MB
    assert httpx.post(url + "/v1/chat", json={"message": "hello"}).status_code == 204
    too_long = " ".join(["word"] * 5000)
    assert httpx.post(url + "/v1/chat", json={"message": too_long}).status_code == 413


@pytest.mark.slow
def test_demo_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "demo.py")],
                            env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert "try" in r.json()
        assert httpx.get(url + "/hello").text == "Hello, World!"
        assert httpx.get(url + "/users/7").json()["id"] == 7
        with httpx.stream("POST", url + "/v1/chat", json={"message": "hi"}) as s:
            body = "".join(s.iter_text())
        assert "data:" in body and "offline" in body.lower()
    finally:
        out = _stop(proc)
    assert '"GET /hello HTTP/1.1" 200' in out
