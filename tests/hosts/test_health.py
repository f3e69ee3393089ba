"""``app.add_health``: liveness, readiness with per-check JSON, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ember import Ember, RedisCache, Request
from ember.exceptions import ConfigError
from ember.health import Check
from ember.limits import ServerLimits
from ember.sessions import RedisSessionStore, SessionMiddleware
from tests.conftest import free_port
from tests.server._proc import HANG_GUARD, wait_for


def _deny_all(request: Request, call_next: Any) -> Any:
    from ember.responses import JSONResponse

    async def deny() -> Any:
        return JSONResponse({"detail": "no"}, 401)
    return deny()


def test_liveness_and_readiness_report_each_check(serve: Any, redis_server: Any) -> None:
    async def ok() -> None:
        return None

    async def broken() -> None:
        raise RuntimeError("queue is full")

    async def slow() -> None:
        await asyncio.sleep(60)

    app = Ember()
    app.add_middleware(_deny_all)  # NOTE: probes never reach middleware (auth, sessions)
    app.add_middleware(SessionMiddleware("k" * 32, store=RedisSessionStore(redis_server.url)))

    @app.get("/cached", cache=RedisCache(url=redis_server.url))
    async def cached() -> str:
        return "x"

    app.add_health(checks=[ok, Check("queue", broken), Check("slow", slow, timeout=0.2)])
    base = serve(app)
    assert httpx.get(base + "/cached").status_code == 401
    live = httpx.get(base + "/livez")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = httpx.get(base + "/readyz", timeout=HANG_GUARD)
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "fail"
    checks = body["checks"]
    assert checks["ok"]["status"] == "ok"
    assert checks["sessions"]["status"] == "ok"
    assert [v["status"] for k, v in checks.items() if k.startswith("cache:")] == ["ok"]
    assert checks["queue"] == {"status": "fail", "error": "RuntimeError: queue is full",
                               "ms": checks["queue"]["ms"]}
    assert checks["slow"]["status"] == "fail" and "TimeoutError" in checks["slow"]["error"]
    assert ready.headers["cache-control"] == "no-store"


def test_readiness_fails_for_a_dead_dependency_and_recovers_for_ok(serve: Any,
                                                                   closed_port: int) -> None:
    app = Ember()
    app.add_middleware(SessionMiddleware(
        "k" * 32, store=RedisSessionStore(f"redis://:pw-secret@127.0.0.1:{closed_port}")))
    app.add_health()
    base = serve(app)
    r = httpx.get(base + "/readyz")
    assert r.status_code == 503 and r.json()["checks"]["sessions"]["status"] == "fail"
    assert "pw-secret" not in r.text
    assert httpx.get(base + "/livez").status_code == 200
    ok = Ember()
    ok.add_health(liveness=None)
    base2 = serve(ok)
    assert httpx.get(base2 + "/readyz").json() == {"status": "ok", "checks": {}}
    assert httpx.get(base2 + "/livez").status_code == 404


def test_probes_stay_out_of_the_access_log(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = Ember()

    @app.get("/work")
    async def work() -> str:
        return "done"

    app.add_health()
    base = serve(app, access_log=True)
    with caplog.at_level(logging.INFO, logger="ember.access"):
        for path in ("/livez", "/readyz", "/work"):
            assert httpx.get(base + path).status_code == 200
        wait_for(lambda: any("/work" in r.getMessage() for r in caplog.records), "access log")
    lines = [r.getMessage() for r in caplog.records if r.name == "ember.access"]
    assert not any("/livez" in line or "/readyz" in line for line in lines), lines


@pytest.mark.parametrize("kwargs", [
    {"liveness": "livez"}, {"liveness": None, "readiness": None}, {"readiness": "/livez"},
    {"checks": "db"}, {"checks": [1]}, {"timeout": 0}, {"timeout": "1"},
    {"checks": [Check("a", lambda: None), Check("a", lambda: None)]},
])
def test_bad_health_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Ember().add_health(**kwargs)


@pytest.mark.parametrize("delay", [-1, "1", True, 1e9, float("nan")])
def test_bad_shutdown_delay(delay: Any) -> None:
    with pytest.raises(ConfigError, match="shutdown_delay"):
        ServerLimits(shutdown_delay=delay)


SCRIPT = textwrap.dedent('''
    import sys
    from ember import Ember
    app = Ember()

    @app.get("/hit")
    async def hit():
        return "hit"

    app.add_health()
    app.run(port=int(sys.argv[1]), workers=int(sys.argv[2]), shutdown_delay=float(sys.argv[3]))
''')


def _start(tmp_path: Path, workers: int, delay: float) -> tuple[subprocess.Popen, str, Path]:
    script = tmp_path / "healthapp.py"
    script.write_text(SCRIPT)
    port = free_port()
    log = tmp_path / f"log-{workers}-{delay}.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script), str(port), str(workers),
                                 str(delay)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_for(up, "server up")
    return proc, url, log


def _status(url: str) -> int | None:
    """The status of ``GET url`` on a fresh connection (raw socket: cheap), None if refused."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as s:
            s.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            head = s.recv(64)
    except OSError:
        return None
    return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_turns_readiness_503_and_keeps_serving_for_shutdown_delay(
        tmp_path: Path, workers: int) -> None:
    proc, url, log = _start(tmp_path, workers, 5.0)
    try:
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _status(url + "/readyz") == 503, "readiness 503 after SIGTERM")
        # every worker drains: new connections are still accepted and served meanwhile
        for _ in range(5):
            assert _status(url + "/hit") == 200
            assert _status(url + "/livez") == 200
        body = httpx.get(url + "/readyz").json()
        assert body == {"status": "draining", "checks": {}}
        assert proc.wait(HANG_GUARD) == 0
        assert _status(url + "/hit") is None
        assert "readiness is 503" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_second_sigterm_skips_the_delay(tmp_path: Path) -> None:
    proc, url, _log = _start(tmp_path, 1, 3600)
    try:
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _status(url + "/readyz") == 503, "draining")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_GUARD) == 0  # far less than the 3600 s delay
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_dead_cache_is_reported_but_keeps_readiness(serve: Any, closed_port: int) -> None:
    app = Ember()

    @app.get("/c", cache=RedisCache(url=f"redis://127.0.0.1:{closed_port}"))
    async def c() -> str:
        return "served uncached"

    app.add_health()
    base = serve(app)
    ready = httpx.get(base + "/readyz")
    assert ready.status_code == 200, ready.text
    [(name, entry)] = ready.json()["checks"].items()
    assert name.startswith("cache:") and entry["status"] == "fail"
    assert entry["critical"] is False
    assert httpx.get(base + "/c").text == "served uncached"
