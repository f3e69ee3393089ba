"""``LiveServer``: the app on a real port in a background thread, for URL-based clients."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class LiveServer:
    """A real server for ``app`` on a free loopback port, in a background thread.

    For clients that need a URL (the OpenAI SDK, an MCP client, a browser)::

        with LiveServer(app) as server:
            OpenAI(base_url=server.url + "/v1", api_key=...)

    ``url`` is ``http://127.0.0.1:PORT``.  Leaving the block stops the server
    gracefully (in-flight requests finish).  Raises ``RuntimeError`` if it does not
    start within ``timeout`` seconds, or the error that stopped it from starting.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 10.0, **config: Any) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.timeout = timeout
        self.config = config
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> LiveServer:
        from ember.server.config import ServerConfig
        from ember.server.sockets import bind

        config = ServerConfig(host=self.host, port=self.port,
                              limits=self.config.pop("limits", self.app.server_limits),
                              **self.config)
        sock = bind(config)
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        ready = threading.Event()

        def on_listen(worker: Any, host: str, port: int) -> None:
            self._worker = worker
            ready.set()

        def run() -> None:
            from ember.server.worker import new_event_loop, serve_forever

            self._loop = new_event_loop()
            try:
                self._loop.run_until_complete(serve_forever(self.app, config, sock))
            except BaseException as exc:  # NOTE: handed to __enter__, which raises it
                self._error = exc
                ready.set()
            finally:
                self._loop.close()
                sock.close()

        config.on_listen = on_listen
        self._thread = threading.Thread(target=run, name="ember-live-server", daemon=True)
        self._thread.start()
        if not ready.wait(self.timeout):
            raise RuntimeError(f"LiveServer did not start within {self.timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._thread is None:
            return
        if self._worker is not None and self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._worker.stop)
        self._thread.join(30)
        self._thread = None



__all__ = ["LiveServer"]
