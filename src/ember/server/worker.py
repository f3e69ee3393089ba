"""One worker: an event loop serving the app on a listening socket.

Used in-process for ``workers=1`` and inside each forked child otherwise.
Shutdown is graceful and immediate when idle: stop accepting, close idle
keep-alive connections, let in-flight requests finish within
``graceful_timeout``, then abort what is left and run the app's shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from ember.http.protocol import HttpProtocol, ServerState
from ember.server.config import ServerConfig
from ember.server.loops import new_event_loop as _new_loop
from ember.server.sockets import ssl_context

logger = logging.getLogger("ember.server")


def new_event_loop(name: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``name`` names (``ServerConfig.loop``; see ember.server.loops)."""
    return _new_loop(name)


def run_worker(app: Any, config: ServerConfig, sock: socket.socket, *,
               stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
               on_ready: Callable[[], None] | None = None,
               parent_pid: int | None = None) -> None:
    """Serve on ``sock`` until one of ``stop_signals``, in this process.

    ``on_ready`` is called once listening; with ``parent_pid`` the worker stops
    gracefully when that process is gone (a supervisor that was SIGKILLed).
    """
    loop = new_event_loop(config.loop)
    asyncio.set_event_loop(loop)
    main = loop.create_task(serve_forever(app, config, sock, stop_signals=stop_signals,
                                          on_ready=on_ready, parent_pid=parent_pid,
                                          freeze_gc=config.gc_freeze))
    try:
        while True:
            try:
                loop.run_until_complete(main)
                break
            except (SystemExit, KeyboardInterrupt) as exc:
                # NOTE: asyncio re-raises SystemExit/KeyboardInterrupt from *any* task out
                # of run_until_complete; one raised by a handler (the protocol answers its
                # request with 500) must not stop the server, so keep running the loop.
                # Real Ctrl-C arrives as a loop signal handler, never as an exception here.
                if main.done():
                    raise
                logger.error("a handler raised %s; the server keeps serving",
                             type(exc).__name__)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class Worker:
    """A running worker; ``stop()`` begins the graceful shutdown."""

    def __init__(self, app: Any, config: ServerConfig, parent_pid: int | None = None,
                 freeze_gc: bool = False) -> None:
        self.app = app
        self.freeze_gc = freeze_gc
        self.parent_pid = parent_pid
        self.config = config
        self.state = ServerState(access_log=config.access_log)
        self.server: asyncio.base_events.Server | None = None
        self.stopping = asyncio.Event()
        self.forced = False  # a second stop request: abort what is in flight
        self._skip_delay = asyncio.Event()
        self._ticker: asyncio.TimerHandle | None = None
        self._listen_fd = -1
        self.quic: Any = None  # NOTE(h3): the HTTP/3 listener (ember.server.quic)

    async def start(self, sock: socket.socket) -> tuple[str, int]:
        """Run the app's startup, then accept connections on ``sock``."""
        loop = asyncio.get_running_loop()
        udp = None
        if self.config.http3:  # NOTE(h3): UDP on the same port number, bound first
            from ember.server.quic import bind_udp

            udp = bind_udp(self.config, sock.getsockname()[1],
                           reuse_port=self.config.workers > 1)
        state = getattr(self.app, "state", None)
        if state is not None:  # NOTE: startup checks that depend on the address read it
            state.bound_address = sock.getsockname()[:2]
            state.worker_count = self.config.workers  # NOTE: per-process stores warn on it
        await self.app.startup()
        if self.freeze_gc:
            _freeze_gc()
        app, state, limits = self.app, self.state, self.config.limits
        scheme = self.config.scheme

        http2 = self.config.http2

        def factory() -> HttpProtocol:
            proto = HttpProtocol(app, state, limits, scheme)
            if http2:
                proto._http2 = True
            return proto

        # NOTE: read the address first: rloop's create_server(sock=) detaches ``sock``
        # (its fd becomes -1; the server owns and closes the listening socket, as asyncio's).
        host, port = sock.getsockname()[:2]
        self._listen_fd = sock.fileno()
        self.server = await loop.create_server(
            factory, sock=sock, ssl=ssl_context(self.config), backlog=self.config.backlog
        )
        if udp is not None:
            from ember.server.quic import alt_svc, start_quic

            self.quic = await start_quic(app, state, self.config, udp)
            state.alt_svc = alt_svc(port)  # NOTE(h3): both TCP transports advertise it
        self._tick()
        return host, port

    def _tick(self) -> None:
        self.state.refresh_date()
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            # NOTE: the supervisor died without telling us (SIGKILL, OOM killer); on Linux
            # PR_SET_PDEATHSIG already sent SIGTERM, this poll covers other platforms.
            logger.warning("supervisor %d is gone; stopping", self.parent_pid)
            self.stop()
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)

    def stop(self) -> None:
        """Ask the worker to shut down (safe from signal handlers).

        A second call while it drains (a second Ctrl-C) stops it now: what is still in
        flight is aborted instead of waiting up to ``graceful_timeout``.
        """
        if self.stopping.is_set():
            self.forced = True
            self._skip_delay.set()
            return
        health = getattr(self.app, "_health", None)
        if health is not None:  # NOTE(health): readiness answers 503 from now on
            health.draining = True
        self.stopping.set()

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests (bounded), close, run app shutdown."""
        state = self.state
        delay = self.config.limits.shutdown_delay
        if delay > 0 and not self.forced:
            # NOTE(health): the lame-duck period: keep serving (and accepting) while load
            # balancers see readiness fail and stop sending here
            logger.info("SIGTERM: readiness is 503; serving %ss more before closing", delay)
            try:
                await asyncio.wait_for(self._skip_delay.wait(), delay)
            except TimeoutError:
                pass
        state.shutting_down = True
        rloop = self.config.loop == "rloop"
        if self.server is not None:
            if rloop:
                _stop_listening(self._listen_fd)
            else:
                self.server.close()
        for conn in list(state.connections):
            conn.shutdown()
        timeout = self.config.limits.graceful_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        if state.connections:
            logger.info("waiting for %d connection(s) to finish (at most %ss; Ctrl-C again "
                        "to stop now)", len(state.connections), timeout)
        while state.connections and not self.forced \
                and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if state.connections:
            logger.warning("%s: aborting %d connection(s)",
                           "stopped again" if self.forced else "graceful_timeout reached",
                           len(state.connections))
            for conn in list(state.connections):
                conn.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        if self.quic is not None:  # NOTE(h3): its connections drained with the others
            self.quic.close()
        if self.server is not None:
            if rloop:
                self.server.close()
            await self.server.wait_closed()
        if state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)
        await self.app.shutdown()


def _freeze_gc() -> None:
    """Move everything alive after startup to the collector's permanent generation.

    PERF: a served worker holds its modules, the app and its routes (~21k objects for a minimal app) for
    its whole life; without this every full collection (triggered by the requests in
    flight being promoted) walks them all: ~4 ms p99 at 100 connections on GET /hello
    against ~1.8 ms with it (BENCHMARKS.md, "gc.freeze").  Collected first, so startup
    garbage is not kept.  Only in a process that serves (run_worker), never in an
    embedding process (tests, serve_forever).  Handlers see the collector enabled with
    its thresholds unchanged; ``app.run(gc_freeze=False)`` turns it off.
    """
    gc.collect()
    gc.freeze()


def _stop_listening(fd: int) -> None:
    """Stop accepting on listening socket ``fd`` and refuse what waits in its backlog.

    NOTE: rloop's ``Server.close()`` aborts every accepted connection too (rloop's
    ``TCPServer::close`` calls ``streams_abort``), which would cut in-flight requests
    short; ``shutdown(SHUT_RD)`` on a listener makes Linux stop listening (new and queued
    connections are refused) while the loop keeps the fd, so the drain can proceed and
    ``close()`` runs after it.  Not used on uvloop: its accept watcher spins on it.
    """
    if fd < 0:
        return
    try:
        listener = socket.socket(fileno=fd)
    except OSError as exc:  # not a socket any more: nothing to stop
        logger.debug("stopping the listener: %s", exc)
        return
    try:
        listener.shutdown(socket.SHUT_RD)
    except OSError as exc:
        logger.debug("stopping the listener: %s", exc)
    finally:
        listener.detach()


async def serve_forever(app: Any, config: ServerConfig, sock: socket.socket, *,
                        stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
                        on_ready: Callable[[], None] | None = None,
                        parent_pid: int | None = None, freeze_gc: bool = False) -> None:
    """Start a :class:`Worker`, wait for a stop signal, shut down gracefully.

    ``freeze_gc``: see :func:`_freeze_gc` (``run_worker`` passes ``config.gc_freeze``).
    """
    loop = asyncio.get_running_loop()
    worker = Worker(app, config, parent_pid, freeze_gc=freeze_gc)
    installed = []
    for sig in stop_signals:
        try:
            loop.add_signal_handler(sig, worker.stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests) or no signals on this platform
    try:
        host, port = await worker.start(sock)
        logger.info("Ember worker listening on %s://%s:%d (loop: %s)", config.scheme,
                    f"[{host}]" if ":" in host else host, port, config.loop)
        if config.loop == "rloop":
            logger.warning("loop='rloop' is experimental: with rloop 0.5 connections the "
                           "server closes are never shut down (clients wait, descriptors "
                           "leak); use uvloop in production (docs/engine.md)")
        if config.io_uring_num_bufs is not None or config.io_uring_buf_size is not None:
            # NOTE: honest no-op: no io_uring layer ships (BENCHMARKS.md "Issue 9 — the I/O
            # layer"); say so at the default level instead of pretending to size a pool.
            logger.info("io_uring_num_bufs/io_uring_buf_size are ignored: this worker runs on "
                        "%s (epoll), not io_uring", config.loop)
        if callable(config.on_listen):
            config.on_listen(worker, host, port)
        if on_ready is not None:
            on_ready()
        await worker.stopping.wait()
        await worker.shutdown()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
