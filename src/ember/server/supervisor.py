"""The supervisor of ``workers=N``: fork, watch, restart, reload on SIGHUP, stop.

Each child binds its own ``SO_REUSEPORT`` socket so the kernel spreads
connections; the supervisor holds no socket and runs no event loop. It sleeps
in ``select`` on a self-pipe woken by signals (SIGCHLD included) and by the
children's readiness pipes, so it reacts at once and never polls.

* SIGINT/SIGTERM: each worker gets one SIGTERM, drains (``graceful_timeout``), exits.
* SIGHUP: a new generation of workers starts; once it listens, the old one is
  sent SIGTERM and drains (gunicorn's graceful reload).
* A worker that dies before it listens is a startup failure: after
  ``_MAX_STARTUP_FAILURES`` in a row the supervisor stops with that error.
* Workers exit when the supervisor dies, even by SIGKILL (``PR_SET_PDEATHSIG``
  on Linux, a ``getppid()`` check once a second elsewhere).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from ember.server.config import ServerConfig
from ember.server.sockets import BindError, bind, reserve_port

logger = logging.getLogger("ember.server")

_MAX_STARTUP_FAILURES = 3
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
#: env var naming the directory where workers keep metrics for each other
METRICS_DIR_ENV = "EMBER_METRICS_DIR"


class _Child:
    __slots__ = ("generation", "pid", "ready", "ready_fd", "slot", "started", "text")

    def __init__(self, pid: int, slot: int, generation: int, ready_fd: int) -> None:
        self.pid, self.slot, self.generation, self.ready_fd = pid, slot, generation, ready_fd
        self.ready = False
        self.started = time.monotonic()
        self.text = b""  # what the child wrote on its readiness pipe


class Supervisor:
    """Keeps ``config.workers`` children alive until told to stop."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self.children: dict[int, _Child] = {}
        self.retiring: set[int] = set()  # old generation, drained after SIGHUP
        self.generation = 0
        self.startup_failures = 0
        self.last_error = ""
        self.respawn_at: dict[int, float] = {}  # slot -> monotonic time
        self.signals: list[int] = []
        self.port = config.port
        self.pid = os.getpid()
        self._wake_r = self._wake_w = -1

    # -- children -------------------------------------------------------------------------
    def _spawn(self, slot: int) -> None:
        ready_r, ready_w = os.pipe()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                self._child(ready_w, self.startup_failures, old_mask)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        self.children[pid] = _Child(pid, slot, self.generation, ready_r)

    def _child(self, ready_w: int, attempt: int, mask: Any) -> None:
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            for fd in (self._wake_r, self._wake_w, *(c.ready_fd for c in self.children.values())):
                os.close(fd)
            for sig in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            # NOTE: Ctrl-C and a closed terminal signal the whole process group; those are
            # for the supervisor, which tells each worker with one SIGTERM. A worker
            # acting on them too would see two signals and could die mid-shutdown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            die_with_parent(self.pid)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            from ember.server.worker import run_worker

            def on_ready() -> None:
                try:
                    os.write(ready_w, b"ok\n")
                except OSError:  # the supervisor is gone; the parent check stops us
                    pass

            try:
                sock = bind(self.config, self.port, reuse_port=True)
                run_worker(self.app, self.config, sock, stop_signals=(signal.SIGTERM,),
                           on_ready=on_ready, parent_pid=self.pid)
            except BaseException as exc:
                line = str(exc.strerror) if isinstance(exc, BindError) else (
                    f"{type(exc).__name__}: {exc}".splitlines()[0])
                try:
                    os.write(ready_w, b"error: " + line.encode("utf-8", "replace") + b"\n")
                except OSError:
                    pass
                if attempt == 0 and not isinstance(exc, BindError | SystemExit):
                    logger.exception("worker %d crashed", os.getpid())
                code = 1
        finally:
            os._exit(code)

    def run(self) -> None:
        """Start the workers and supervise them until SIGINT/SIGTERM.

        Raises :class:`BindError` when the port is taken, ``SystemExit`` when workers
        keep failing during startup.
        """
        self.port = reserve_port(self.config)
        if self.config.http3:  # NOTE(h3): the UDP port too, before workers share it
            from ember.server.quic import bind_udp

            bind_udp(self.config, self.port).close()
        metrics_dir = tempfile.mkdtemp(prefix="ember-metrics-")
        previous_env = os.environ.get(METRICS_DIR_ENV)
        os.environ[METRICS_DIR_ENV] = metrics_dir
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        old = {s: signal.signal(s, self._on_signal) for s in _SIGNALS}
        try:
            for slot in range(self.config.workers):
                if signal.SIGINT in self.signals or signal.SIGTERM in self.signals:
                    break  # NOTE: stopped while forking: stop now, not after the last fork
                self._spawn(slot)
            logger.info("Ember supervisor %d: %d workers on %s://%s:%d", self.pid,
                        self.config.workers, self.config.scheme, self.config.host, self.port)
            error = self._supervise()
            self._stop()
            if error:
                raise SystemExit(f"error: {error}")
        finally:
            if self.children:  # NOTE: never leave workers behind, whatever went wrong
                self._stop()
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in old.items():
                signal.signal(s, handler)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            if previous_env is None:
                os.environ.pop(METRICS_DIR_ENV, None)
            else:
                os.environ[METRICS_DIR_ENV] = previous_env
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _supervise(self) -> str | None:
        """Run until a stop signal (→ None) or repeated startup failures (→ the error)."""
        while True:
            timeout = None
            if self.respawn_at:
                timeout = max(0.0, min(self.respawn_at.values()) - time.monotonic())
            fds = [self._wake_r, *(c.ready_fd for c in self.children.values())]
            try:
                readable, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                readable = []
            if self._wake_r in readable:
                _drain(self._wake_r)
            for child in list(self.children.values()):
                if child.ready_fd in readable:
                    self._read_ready(child)
            while self.signals:
                signum = self.signals.pop(0)
                if signum in (signal.SIGINT, signal.SIGTERM):
                    self.signals.insert(0, signum)
                    return None
                if signum == signal.SIGHUP:
                    self._reload()
            error = self._reap()
            if error:
                return error
            self._retire_if_replaced()
            now = time.monotonic()
            for slot, when in list(self.respawn_at.items()):
                if when <= now:
                    del self.respawn_at[slot]
                    self._spawn(slot)

    def _read_ready(self, child: _Child) -> None:
        try:
            data = os.read(child.ready_fd, 4096)
        except BlockingIOError:
            return
        child.text += data
        if child.text.startswith(b"ok") and not child.ready:
            child.ready = True
            self.startup_failures = 0

    def _reload(self) -> None:
        self.generation += 1
        self.retiring |= set(self.children)
        self.respawn_at.clear()
        logger.info("SIGHUP: starting %d new workers, then draining the old ones",
                    self.config.workers)
        for slot in range(self.config.workers):
            self._spawn(slot)

    def _retire_if_replaced(self) -> None:
        if not self.retiring:
            return
        current = [c for c in self.children.values() if c.generation == self.generation]
        if len(current) < self.config.workers or not all(c.ready for c in current):
            return
        for pid in self.retiring:
            _kill(pid, signal.SIGTERM)
        self.retiring = set()

    def _reap(self) -> str | None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            child = self.children.pop(pid, None)
            if child is None:
                continue
            _forget_metrics(pid)
            self._read_ready(child)
            os.close(child.ready_fd)
            self.retiring.discard(pid)
            if child.generation != self.generation:
                continue  # an old worker finished draining after SIGHUP
            if not child.ready:
                self.startup_failures += 1
                text = child.text.decode("utf-8", "replace").strip()
                self.last_error = (text.removeprefix("error: ") if text.startswith("error: ")
                                   else f"worker exited ({_describe(status)}) during startup")
                if self.startup_failures >= _MAX_STARTUP_FAILURES:
                    return (f"a worker failed to start {self.startup_failures} times in a row: "
                            f"{self.last_error}")
                delay = 0.1 * 2 ** (self.startup_failures - 1)
                logger.warning("worker %d failed during startup (%s); retrying in %.1fs", pid,
                               self.last_error, delay)
                self.respawn_at[child.slot] = time.monotonic() + delay
                continue
            lived = time.monotonic() - child.started
            logger.warning("worker %d exited (%s) after %.1fs; restarting", pid,
                           _describe(status), lived)
            # NOTE: a worker that dies right after it started listening is paced (1 s), so
            # a crash loop in a request-independent task cannot spin the CPU.
            self.respawn_at[child.slot] = time.monotonic() + (1.0 if lived < 1.0 else 0.0)

    def _stop(self) -> None:
        """SIGTERM every worker and wait for them (graceful_timeout + 5 s), then SIGKILL."""
        self.respawn_at.clear()
        self.signals.clear()
        for pid in list(self.children):
            _kill(pid, signal.SIGTERM)
        limits = self.config.limits
        deadline = time.monotonic() + limits.shutdown_delay + limits.graceful_timeout + 5
        forced = False
        while self.children:
            self._reap_quietly()
            left = deadline - time.monotonic()
            if not self.children or left <= 0:
                break
            try:
                select.select([self._wake_r], [], [], left)
            except InterruptedError:
                pass
            _drain(self._wake_r)
            if not forced and any(s in (signal.SIGINT, signal.SIGTERM) for s in self.signals):
                # NOTE: a second Ctrl-C: a second SIGTERM makes each worker stop now
                forced = True
                self.signals.clear()
                for pid in list(self.children):
                    _kill(pid, signal.SIGTERM)
        for pid in list(self.children):
            logger.warning("worker %d did not stop in time; killing it", pid)
            _kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            _forget_metrics(pid)
        for child in self.children.values():
            os.close(child.ready_fd)
        self.children.clear()

    def _reap_quietly(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is not None:
                os.close(child.ready_fd)
                _forget_metrics(pid)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGTERM this process when ``parent`` dies (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _forget_metrics(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: totals never go down)."""
    from ember.observability import forget_worker

    forget_worker(pid)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    except OSError as exc:  # pragma: no cover - closed pipe
        if exc.errno != errno.EBADF:
            raise


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"
