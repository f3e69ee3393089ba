"""The process model: in-process worker, forked workers, signals, TLS, IPv6."""

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

from ember.exceptions import ConfigError
from ember.server.config import ServerConfig
from tests.conftest import free_port

APP = textwrap.dedent('''
    import asyncio, os, sys
    from ember import Ember
    app = Ember()

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid()}

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(1.0)
        return "finished"

    app.run(host=sys.argv[1], port=int(sys.argv[2]), workers=int(sys.argv[3]),
            **({"ssl_certfile": sys.argv[4], "ssl_keyfile": sys.argv[5]} if len(sys.argv) > 5
               else {}))
''')


def _start(tmp_path: Path, workers: int, host: str = "127.0.0.1", tls: tuple[str, str] | None = None):
    script = tmp_path / "app.py"
    script.write_text(APP)
    port = free_port()
    args = [sys.executable, str(script), host, str(port), str(workers)]
    if tls:
        args += list(tls)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/pid", verify=False, timeout=1)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode())
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start: " + proc.stdout.read().decode())


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return out


def test_single_worker_runs_in_process(tmp_path):
    proc, url = _start(tmp_path, 1)
    try:
        assert httpx.get(url + "/pid").json()["pid"] == proc.pid
    finally:
        _stop(proc)


# NOTE: stopping (idle and in-flight) is tested event-based in test_process_model.py.


def test_workers_fork_and_share_the_port(tmp_path):
    proc, url = _start(tmp_path, 2)
    try:
        pids = set()
        for _ in range(60):
            with httpx.Client() as c:  # a new connection each time
                pids.add(c.get(url + "/pid").json()["pid"])
        assert proc.pid not in pids
        assert len(pids) == 2
    finally:
        _stop(proc)


def test_killed_worker_is_replaced(tmp_path):
    proc, url = _start(tmp_path, 2)
    try:
        victim = httpx.get(url + "/pid").json()["pid"]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        pids: set[int] = set()
        while time.monotonic() < deadline:
            try:
                with httpx.Client() as c:
                    pids.add(c.get(url + "/pid", timeout=2).json()["pid"])
            except httpx.HTTPError:
                pass
            if len(pids - {victim}) == 2:
                break
            time.sleep(0.02)
        assert len(pids - {victim}) == 2
    finally:
        out = _stop(proc)
    assert "restarting" in out


def test_supervisor_sigterm_stops_everything(tmp_path):
    proc, url = _start(tmp_path, 2)
    children = set()
    for _ in range(10):
        with httpx.Client() as c:
            children.add(c.get(url + "/pid").json()["pid"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0  # hang guard only
    _stop(proc)
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ipv6(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured")
    proc, url = _start(tmp_path, 1, host="::1")
    try:
        assert httpx.get(url + "/pid").status_code == 200
    finally:
        _stop(proc)


def test_tls(tmp_path, tls_files):
    proc, url = _start(tmp_path, 1, tls=tls_files)
    try:
        r = httpx.get(url + "/pid", verify=False)
        assert r.status_code == 200
    finally:
        _stop(proc)


@pytest.mark.parametrize("kwargs,message", [
    ({"port": 70000}, "port"), ({"port": "80"}, "port"), ({"workers": -1}, "workers"),
    ({"host": ""}, "host"), ({"log_level": "loud"}, "log_level"),
    ({"ssl_certfile": "/nope.pem"}, "ssl_keyfile"),
    ({"ssl_certfile": "/nope.pem", "ssl_keyfile": "/nope.key"}, "not found"),
    ({"reload": "yes"}, "reload"),
    # a typo must not fork the machine into swap (a new user's workers=100000 did)
    ({"workers": 100_000}, r"workers must be an integer from 0 to \d+ \(0 = one per CPU; "
                           r"this machine has \d+\), got 100000"),
    ({"workers": 2.0}, "workers"), ({"workers": True}, "workers"),
])
def test_bad_run_options_fail_clearly(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**kwargs)


def test_the_most_workers_is_generous_but_bounded():
    from ember.server.config import MAX_WORKERS, MAX_WORKERS_CAP

    most = min(max(MAX_WORKERS, 8 * (os.cpu_count() or 1)), MAX_WORKERS_CAP)
    assert ServerConfig(workers=most).workers == most
    with pytest.raises(ConfigError, match="workers"):
        ServerConfig(workers=most + 1)


def test_port_in_use_is_a_clear_error(tmp_path):
    from ember.server.sockets import bind

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{port}: address "
                           r"already in use.*--port"):
            bind(ServerConfig(port=port))
