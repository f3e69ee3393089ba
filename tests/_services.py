"""Real Redis, Memcached and PostgreSQL processes for the tests.

Each service is started once per test session from the system binary, on a
free port, in a temp dir, and stopped at the end.  When a binary is missing the
tests that need it are skipped with the reason — unless
``EMBER_REQUIRE_SERVICES=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class Service:
    """A running service: where it listens and how to reach it."""

    name: str
    host: str
    port: int
    url: str
    process: subprocess.Popen


def skip_or_fail(message: str) -> None:
    """Skip with ``message``; under ``EMBER_REQUIRE_SERVICES=1`` (CI) fail instead, so a
    missing binary or side install can never hide the tests that need it."""
    if os.environ.get("EMBER_REQUIRE_SERVICES", "") not in ("", "0"):
        pytest.fail(f"EMBER_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def _missing(what: str) -> None:
    skip_or_fail(f"{what} is not installed (Debian: apt-get install -y {what.split()[0]})")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test run dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Service]:
    """A private ``redis-server`` (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="ember-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    try:
        _wait_port(port, proc, "redis-server")
        yield Service("redis", "127.0.0.1", port, f"redis://127.0.0.1:{port}", proc)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[Service]:
    """A private ``memcached``."""
    binary = shutil.which("memcached")
    if binary is None:
        _missing("memcached")
    port = _free_port()
    args = [binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    try:
        _wait_port(port, proc, "memcached")
        yield Service("memcached", "127.0.0.1", port, f"memcached://127.0.0.1:{port}", proc)
    finally:
        _stop(proc)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Service]:
    """A private PostgreSQL cluster (initdb in a temp dir, trust auth, user ``ember``)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        _missing("postgresql")
    tmp = tempfile.mkdtemp(prefix="ember-pg-")
    data = os.path.join(tmp, "data")
    port = _free_port()
    preexec = _die_with_parent
    if os.geteuid() == 0:  # NOTE: PostgreSQL refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to drop to")
        os.chown(tmp, user.pw_uid, user.pw_gid)

        def preexec() -> None:
            _die_with_parent()
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    subprocess.run([initdb, "-D", data, "-U", "ember", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True, preexec_fn=preexec)
    proc = subprocess.Popen([os.path.join(os.path.dirname(pg_ctl), "postgres"), "-D", data,
                             "-p", str(port), "-k", tmp, "-h", "127.0.0.1", "-F"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=preexec)
    try:
        _wait_port(port, proc, "postgres", timeout=30)
        yield Service("postgres", "127.0.0.1", port,
                      f"postgresql://ember@127.0.0.1:{port}/postgres", proc)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (a backend that is down)."""
    return _free_port()


class BlackholePort(int):
    """The port number, plus what the hung backend saw (``connections``, ``received()``)."""

    connections: list[socket.socket]

    def received(self) -> bytes:
        """Every byte clients sent so far (read without blocking)."""
        data = []
        for conn in list(self.connections):
            conn.setblocking(False)
            try:
                while chunk := conn.recv(65536):
                    data.append(chunk)
            except (BlockingIOError, OSError):
                pass
        self._seen = getattr(self, "_seen", b"") + b"".join(data)
        return self._seen


@pytest.fixture
def blackhole_port() -> Iterator[BlackholePort]:
    """A port that accepts connections and never answers (a hung backend)."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    conns: list[socket.socket] = []
    port = BlackholePort(server.getsockname()[1])
    port.connections = conns
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conns.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(2)
    for c in conns:
        c.close()
    server.close()
