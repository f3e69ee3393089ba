"""A lean, pipelined Redis client for the gateway's two per-request scripts.

PERF: through ``redis.asyncio`` each script call of the money path (one to reserve, one to
settle: :mod:`ember.gateway.ledger`) cost ~250 µs of the gateway's CPU (connection pool
and its condition, an ``asyncio.timeout`` per read, retry wrapper, arguments encoded one
by one in Python), about half of a served request with the money path on
(``python bench/gateway_cpu.py``).  This client speaks RESP on **one** connection per
worker with every concurrent command pipelined on it (Redis answers in order, so a FIFO of
futures matches replies to callers), the commands queued in one event-loop iteration
go out in one write, it packs with ``hiredis.pack_command`` and parses with
``hiredis.Reader``: a few µs per command.

Behaviour is redis-py's for what the ledger uses: ``EVALSHA`` then ``EVAL`` on
``NOSCRIPT`` (a restarted or flushed Redis), the same replies (bytes and ints), a command
that has not answered within ``timeout`` seconds (1 to connect) fails and drops the
connection, a lost connection fails the commands in flight and the next command dials
again.  It is used only when ``hiredis`` is installed and the URL is a plain
``redis://[[user]:password@]host[:port][/db]``; anything else (TLS, a socket path, query
options) stays on redis-py (:func:`lean_client` answers None).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit


class RedisReplyError(Exception):
    """An error reply from Redis (``-ERR ...``)."""


def lean_client(url: str, timeout: float) -> LeanRedis | None:
    """A :class:`LeanRedis` for ``url``, or None when ``hiredis`` is missing or the URL
    needs more than host, port, credentials and a database number."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        return None
    path = parts.path.strip("/")
    if parts.scheme != "redis" or not parts.hostname or parts.query or parts.fragment or \
            (path and not path.isdigit()):
        return None
    return LeanRedis(parts.hostname, port, int(path or 0), unquote(parts.username or ""),
                     unquote(parts.password) if parts.password is not None else None, timeout)


class _Conn(asyncio.Protocol):
    """One connection: replies go to the oldest waiting future."""

    def __init__(self) -> None:
        import hiredis

        self.reader = hiredis.Reader(replyError=RedisReplyError)
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: Any = None
        self.closed = False
        self.outbox: list[bytes] = []

    def flush(self) -> None:
        """Write the commands queued in this loop iteration in one ``send``."""
        out, self.outbox = self.outbox, []
        if not self.closed:
            self.transport.write(b"".join(out))

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            try:
                reply = self.reader.gets()
            except Exception as exc:  # NOTE: a protocol error: nothing after it is trusted
                self.close(exc)
                return
            if reply is False:
                return
            if not waiters:
                self.close(ConnectionError("Redis sent a reply nobody asked for"))
                return
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(exc or ConnectionError("Redis closed the connection"))

    def close(self, exc: BaseException) -> None:
        self.closed = True
        waiters, self.waiters = self.waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(ConnectionError(f"Redis connection lost: {exc!r}"))
        if self.transport is not None:
            self.transport.close()


class LeanRedis:
    """Pipelined commands on one connection per event loop (see the module docstring)."""

    def __init__(self, host: str, port: int, db: int, username: str, password: str | None,
                 timeout: float) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout = timeout
        self._conn: _Conn | None = None
        self._loop: Any = None
        self._dialing: asyncio.Future[_Conn] | None = None

    def register_script(self, text: str) -> Script:
        """An awaitable ``script(keys=..., args=...)`` as ``register_script`` gives."""
        return Script(self, text)

    async def _connection(self) -> _Conn:
        conn, loop = self._conn, asyncio.get_running_loop()
        if conn is not None and not conn.closed and self._loop is loop:
            return conn
        if self._dialing is not None and self._loop is loop and not self._dialing.done():
            return await asyncio.shield(self._dialing)
        self._loop = loop
        self._dialing = dialing = loop.create_future()
        try:
            conn = await self._dial(loop)
        except BaseException as exc:
            dialing.set_exception(exc if isinstance(exc, Exception) else
                                  ConnectionError("cancelled while connecting"))
            dialing.exception()  # NOTE: retrieved: no "never retrieved" warning
            raise
        self._conn = conn
        dialing.set_result(conn)
        return conn

    async def _dial(self, loop: Any) -> _Conn:
        _t, conn = await asyncio.wait_for(
            loop.create_connection(_Conn, self.host, self.port), min(1.0, self.timeout))
        hello: list[tuple[Any, ...]] = []
        if self.password is not None:
            hello.append(("AUTH", self.username, self.password) if self.username else
                         ("AUTH", self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        try:
            for command in hello:
                reply = await self._send(conn, command)
                if isinstance(reply, Exception):
                    raise reply
        except BaseException:
            conn.close(ConnectionError("setup failed"))
            raise
        return conn

    async def execute(self, *args: Any) -> Any:
        """Send one command, answer its reply (an error reply raises)."""
        reply = await self._send(await self._connection(), args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _send(self, conn: _Conn, args: Sequence[Any]) -> Any:
        import hiredis

        loop = asyncio.get_running_loop()
        if conn.closed:
            raise ConnectionError("Redis connection lost")
        fut = loop.create_future()
        conn.waiters.append(fut)
        # PERF: one send per loop iteration for all the commands queued in it (a send on
        # loopback runs Redis's receive path in our process: ~40 µs each, measured)
        if not conn.outbox:
            loop.call_soon(conn.flush)
        conn.outbox.append(hiredis.pack_command(tuple(args)))
        timer = loop.call_later(self.timeout, _expire, conn, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def aclose(self) -> None:
        """Close the connection (at worker shutdown)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close(ConnectionError("client closed"))


def _expire(conn: _Conn, fut: asyncio.Future[Any]) -> None:
    """A command past its timeout: fail it and drop the connection (the replies of a
    stalled server are not waited for)."""
    if not fut.done():
        fut.set_exception(TimeoutError("Redis did not answer in time"))
        conn.close(TimeoutError("timeout"))


class Script:
    """A Lua script run by ``EVALSHA``, loaded by ``EVAL`` when Redis answers ``NOSCRIPT``."""

    __slots__ = ("client", "sha", "text")

    def __init__(self, client: LeanRedis, text: str) -> None:
        self.client, self.text = client, text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.client.execute("EVAL", self.text, len(keys), *keys, *args)
