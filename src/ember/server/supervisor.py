"""The supervisor of ``workers=N``: fork, watch, restart with backoff, stop.

Each child binds its own ``SO_REUSEPORT`` socket so the kernel spreads
connections; the supervisor holds no socket and runs no event loop.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from ember.server.config import ServerConfig
from ember.server.sockets import bind

logger = logging.getLogger("ember.server")

_MAX_BACKOFF = 10.0


class Supervisor:
    """Keeps ``config.workers`` children alive until told to stop."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.children: dict[int, int] = {}  # pid -> slot
        self.failures: dict[int, int] = {}  # slot -> consecutive quick deaths
        self.started_at: dict[int, float] = {}
        self.stopping = False
        self.port = config.port

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                from ember.server.worker import run_worker

                sock = bind(self.config, self.port, reuse_port=True)
                run_worker(self.app, self.config, sock)
            except BaseException:
                logger.exception("worker %d crashed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = slot
        self.started_at[pid] = time.monotonic()

    def run(self) -> None:
        """Start the workers and supervise them until SIGINT/SIGTERM."""
        if self.port == 0:
            # NOTE: every worker must share one port; reserve it up front.
            probe = bind(self.config, reuse_port=True)
            self.port = probe.getsockname()[1]
            probe.close()
        received: list[int] = []

        def on_signal(signum: int, frame: Any) -> None:
            received.append(signum)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in range(self.config.workers):
                self._spawn(slot)
            logger.info("Ember supervisor %d: %d workers on %s:%d", os.getpid(),
                        self.config.workers, self.config.host, self.port)
            while not received:
                self._reap_and_restart()
                time.sleep(0.05)
            self.stop(received[0])
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _reap_and_restart(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is None:
                continue
            lived = time.monotonic() - self.started_at.pop(pid, time.monotonic())
            self.failures[slot] = self.failures.get(slot, 0) + 1 if lived < 5 else 0
            delay = min(_MAX_BACKOFF, 0.1 * 2 ** self.failures[slot]) if self.failures[slot] else 0
            logger.warning("worker %d exited (%s) after %.1fs; restarting in %.1fs", pid,
                           _describe(status), lived, delay)
            if delay:
                time.sleep(delay)
            self._spawn(slot)

    def stop(self, signum: int) -> None:
        """Forward ``signum`` to every worker and wait for them (graceful_timeout + 5 s)."""
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.config.limits.graceful_timeout + 5
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.01)
        for pid in list(self.children):
            logger.warning("worker %d did not stop in time; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.children.clear()


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"
