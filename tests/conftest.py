"""Shared fixtures: a real Ember server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# NOTE: real redis/memcached/postgres processes, started on demand (tests/_services.py)
pytest_plugins = [
    f"tests.{name}" for name in ("_services", "_browser", "_fakes")
    if os.path.exists(os.path.join(os.path.dirname(__file__), f"{name}.py"))
]


class RunningServer:
    """An app served by a real worker on its own event loop thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        from ember.server.config import ServerConfig
        from ember.server.sockets import bind

        config.setdefault("port", 0)
        self.config = ServerConfig(limits=config.pop("limits", app.server_limits), **config)
        self.sock = bind(self.config)
        self.port = self.sock.getsockname()[1]
        host = self.config.host
        self.url = f"{self.config.scheme}://{'[' + host + ']' if ':' in host else host}:{self.port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(app,), daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start within 10 s")
        if self._error is not None:
            raise self._error

    def _run(self, app: Any) -> None:
        from ember.server.worker import new_event_loop, serve_forever

        def on_listen(worker: Any, host: str, port: int) -> None:
            self.worker = worker
            self._ready.set()

        self.config.on_listen = on_listen
        self.loop = new_event_loop(self.config.loop)  # EMBER_LOOP=rloop runs tests on rloop
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(serve_forever(app, self.config, self.sock))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    @property
    def state(self) -> Any:
        """The worker's ServerState (connections, counters)."""
        return self.worker.state

    def stop(self) -> None:
        """Graceful stop, as on SIGTERM."""
        if self.worker is not None and self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(15)


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(app, **config) -> base_url``; servers stop at teardown."""
    servers: list[RunningServer] = []

    def start(app: Any, **config: Any) -> str:
        server = RunningServer(app, **config)
        servers.append(server)
        return server.url

    start.servers = servers  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RunningServer]]:
    """Like ``serve`` but returns the RunningServer (for its state and worker)."""
    servers: list[RunningServer] = []

    def start(app: Any, **config: Any) -> RunningServer:
        server = RunningServer(app, **config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_exchange(url: str, data: bytes, *, timeout: float = 5.0, until_close: bool = True,
                 expect: int | None = None) -> bytes:
    """Send raw bytes to the server and return what comes back."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if (expect is not None and b"".join(chunks).count(b"HTTP/1.1 ") >= expect
                    and not until_close):
                break
        return b"".join(chunks)



@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """``(certfile, keyfile)``: a self-signed certificate for ``localhost`` (openssl).

    Skipped without the openssl binary, unless ``EMBER_REQUIRE_SERVICES=1`` (CI) makes
    that a failure, so a missing binary can never hide the TLS tests.
    """
    import shutil
    import subprocess

    from tests._services import skip_or_fail

    if shutil.which("openssl") is None:
        skip_or_fail("openssl binary not found")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return str(cert), str(key)
