"""Run an Ember app script in a real process and wait on events, never on the clock.

Timeouts here only guard against hangs; every wait ends on an observable event
(a response, a file appearing, a process exiting).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import free_port

HANG_GUARD = 30.0  # seconds; only ever reached when something hangs

APP = textwrap.dedent('''
    import asyncio, json, os, sys
    from ember import Ember
    from ember.observability import Metrics

    port, workers, extra = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    flags = extra.pop("flags", "")
    app = Ember()
    metrics = Metrics()
    app.add_middleware(metrics)
    metrics.mount(app)

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid(), "metrics_dir": os.environ.get("EMBER_METRICS_DIR")}

    @app.get("/hit")
    async def hit():
        return "hit"

    @app.get("/gc")
    async def gc_state():
        import gc
        return {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled(),
                "threshold": list(gc.get_threshold()), "app_tracked": gc.is_tracked(app)}

    @app.get("/metrics-of")
    async def metrics_of():
        return {"pid": os.getpid(), "text": metrics.render()}

    @app.get("/hold")
    async def hold():
        # holds the request until the test creates flags/release (an event, not a sleep)
        open(os.path.join(flags, f"started-{os.getpid()}"), "w").close()
        while not os.path.exists(os.path.join(flags, "release")):
            await asyncio.sleep(0.005)
        return "released"

    @app.get("/exit")
    async def exit_after_await():
        await asyncio.sleep(0)
        raise SystemExit(0)

    @app.get("/exit-now")
    async def exit_now():
        raise SystemExit(3)

    @app.get("/interrupt")
    async def interrupt():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    if extra.pop("fail_startup", False):
        @app.on_startup
        async def boom():
            raise RuntimeError("database unreachable")

    app.run(port=port, workers=workers, **extra)
''')


def wait_for(predicate: Callable[[], object], what: str, guard: float = HANG_GUARD) -> object:
    """Poll ``predicate`` until truthy; fail after ``guard`` seconds (a hang)."""
    deadline = time.monotonic() + guard
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} (hang guard {guard}s)")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class AppProcess:
    """``python app.py PORT WORKERS '{json}'`` with output captured to a file."""

    def __init__(self, tmp_path: Path, workers: int, port: int | None = None, *,
                 wait: bool = True, **extra: object) -> None:
        self.flags = tmp_path / f"flags-{id(self)}"
        self.flags.mkdir()
        script = tmp_path / "procapp.py"
        script.write_text(APP)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"out-{id(self)}.log"
        extra["flags"] = str(self.flags)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), str(self.port), str(workers), json.dumps(extra)],
                stdout=out, stderr=subprocess.STDOUT, process_group=0)
        if wait:
            wait_for(self._up, f"server on {self.url}")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
        try:
            return httpx.get(self.url + "/pid", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, **kw: object) -> httpx.Response:
        """A request on a fresh connection (so SO_REUSEPORT may pick any worker)."""
        with httpx.Client(timeout=kw.pop("timeout", 10)) as client:  # type: ignore[arg-type]
            return client.get(self.url + path, **kw)  # type: ignore[arg-type]

    def pid(self) -> int | None:
        """The pid of the worker answering a new connection; None if the connection failed.

        NOTE: a connection queued on a listening socket at the moment its worker closes
        it (SIGHUP retiring, a killed worker) is reset by the kernel; callers retry.
        """
        try:
            return self.get("/pid").json()["pid"]
        except httpx.TransportError:
            return None

    def worker_pids(self, n: int) -> set[int]:
        """Connect until ``n`` distinct worker pids answered."""
        pids: set[int] = set()
        wait_for(lambda: pids.add(self.pid()) or len(pids - {None}) >= n,
                 f"{n} workers answering")
        return pids - {None}  # type: ignore[return-value]

    def new_pids(self, old: set[int], n: int) -> set[int]:
        """Connect until ``n`` pids not in ``old`` answered (workers replaced)."""
        new: set[int] = set()
        wait_for(lambda: new.add(self.pid()) or len(new - old - {None}) >= n,
                 f"{n} new workers answering")
        return new - old - {None}  # type: ignore[operator]

    def release(self) -> None:
        (self.flags / "release").touch()

    def started_holds(self) -> list[str]:
        return [p.name for p in self.flags.iterdir() if p.name.startswith("started-")]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """What a terminal (Ctrl-C, hang-up) or ``pkill`` does: signal every process."""
        os.killpg(self.proc.pid, signum)

    def wait_exit(self, guard: float = HANG_GUARD) -> int:
        return self.proc.wait(guard)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(HANG_GUARD)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.output()


def refused(port: int) -> bool:
    """Does a new connection to ``port`` fail because nothing listens any more?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # NOTE: a SYN that raced the listener's close is reset rather than refused
        # (it sat in the closing socket's accept queue): refused all the same.
        return not _listening(port)
    return False


def _listening(port: int) -> bool:
    """Is anything still listening on ``port`` (``/proc/net/tcp``, state 0A = LISTEN)?"""
    needle = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(needle.strip()) and fields[3] == "0A":
                return True
    return False
