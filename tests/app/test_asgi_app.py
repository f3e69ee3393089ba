"""``app.asgi``: a subset of the suite's behaviours with Ember under uvicorn and granian."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

GUARD = 20
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: Any = None) -> None:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url + "/hello", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start (hang guard)")


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def url(request: Any) -> Iterator[str]:
    port = _port()
    base = f"http://127.0.0.1:{port}"
    if request.param == "uvicorn":
        import uvicorn

        from tests.app._asgi_target import asgi

        config = uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        _wait_up(base)
        yield base
        server.should_exit = True
        thread.join(GUARD)
        return
    granian = os.path.join(os.path.dirname(sys.executable), "granian")
    proc = subprocess.Popen([granian, "--interface", "asgi", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning",
                             "tests.app._asgi_target:asgi"], cwd=ROOT)
    try:
        _wait_up(base, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(GUARD)


def test_routes_injection_dependencies_and_errors(url: str) -> None:
    assert httpx.get(url + "/hello").text == "hello"
    assert httpx.get(url + "/items/3?page=2", headers={"x-user": "ada"}).json() == {
        "n": 3, "who": "ada", "page": 2}
    r = httpx.get(url + "/items/3?page=x")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "page"]
    assert httpx.get(url + "/items/x").status_code == 404
    r = httpx.get(url + "/teapot")
    assert (r.status_code, r.json()) == (418, {"detail": "short and stout"})
    assert httpx.post(url + "/hello").status_code == 405
    assert httpx.get(url + "/openapi.json").json()["info"]["title"] == "Ember"


def test_bodies_limits_streaming_head_and_lifespan(url: str) -> None:
    assert httpx.post(url + "/echo", content=b"x" * 50_000).json() == {"size": 50_000}

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000
    assert httpx.post(url + "/echo", content=chunks()).json() == {"size": 10_000}
    assert httpx.post(url + "/echo", content=b"x" * 100_000).status_code == 413

    def big() -> Iterator[bytes]:  # chunked, no Content-Length: counted while read
        for _ in range(100):
            yield b"z" * 1000
    r = httpx.post(url + "/echo", content=big())
    assert r.status_code == 413  # JSON {"detail"} like every error Ember makes itself
    assert r.headers["content-type"] == "application/json" and "detail" in r.json()
    assert httpx.get(url + "/stream").text == "0\n1\n2\n"
    r = httpx.head(url + "/hello")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "5")
    assert httpx.get(url + "/started").json() == ["startup"]


def test_a_client_leaving_mid_body_stops_the_reading_handler(url: str) -> None:
    """The adapter feeds the request's cycle; ``http.disconnect`` mid-body ends the read
    (ClientDisconnect, or the handler cancelled) instead of leaving it waiting."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=GUARD) as sock:
        sock.sendall(b"POST /cut HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
                     + b"a" * 10)
        time.sleep(0.2)  # NOTE: not a timing claim: lets the handler start reading first
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        seen = httpx.get(url + "/cut-seen").json()
        if seen:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the handler still waits for a body whose client left")
    assert seen[-1] in ("ClientDisconnect", "CancelledError"), seen
    r = httpx.post(url + "/cut", content=b"b" * 3000)
    assert r.json() == {"size": 3000}
    assert httpx.get(url + "/cut-seen").json()[-1] == "complete 3000"


def test_websocket_routes_say_they_need_embers_server(url: str) -> None:
    import websockets.sync.client as ws_client
    from websockets.exceptions import InvalidStatus, WebSocketException

    try:
        with ws_client.connect(url.replace("http", "ws") + "/ws", open_timeout=GUARD) as ws:
            ws.recv(timeout=GUARD)
    except InvalidStatus as exc:  # refused during the handshake
        assert exc.response.status_code == 403
    except WebSocketException as exc:  # or closed right after it
        assert "1008" in str(exc) or "Ember" in str(exc)
    else:
        raise AssertionError("the WebSocket was served")
