"""Flow control of one transport, in both directions, written once.

Reading is paused for *reasons* (a bit each) and resumes only when none is
left, so two independent causes (an unread body, a client that does not read
its responses) never resume each other's pause by accident.  Writing follows
the transport's ``pause_writing``/``resume_writing``: ``await drain()`` waits
while the transport's buffer is over its high-water mark and raises
:class:`~ember.exceptions.ClientDisconnect` once the connection is gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ember.exceptions import ClientDisconnect

# Why reading is paused (bit flags).
READ_BODY = 1  # an unread request body is over its byte/chunk limits
READ_PIPELINE = 2  # too many parsed requests are queued
READ_WRITE = 4  # the client does not read its responses (write buffer full)
READ_FAILED = 8  # the byte stream is unusable (framing error): never resumes
READ_WAITING = 16  # over max_connections: waiting for a slot
READ_BUDGET = 32  # one read's work budget is spent: the rest is parsed a loop turn later


class FlowControl:
    """Read-pause reasons and write drain waiters for one transport."""

    __slots__ = ("_transport", "_waiters", "closed", "read_paused", "write_paused")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._waiters: list[asyncio.Future[None]] = []
        self.read_paused = 0
        self.write_paused = False
        self.closed = False

    def pause_reading(self, reason: int) -> None:
        """Stop reading for ``reason`` (a ``READ_*`` flag)."""
        if not self.read_paused and not self.closed:
            self._transport.pause_reading()
        self.read_paused |= reason

    def resume_reading(self, reason: int) -> bool:
        """Drop ``reason``; reading resumes when no reason is left (True then)."""
        paused = self.read_paused
        if not paused & reason:
            return False
        self.read_paused = paused = paused & ~reason
        if not paused and not self.closed:
            self._transport.resume_reading()
            return True
        return False

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full; raise once closed."""
        if self.closed:
            raise ClientDisconnect("client disconnected")
        if not self.write_paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass
        if self.closed:
            raise ClientDisconnect("client disconnected")

    def connection_lost(self) -> None:
        """Wake every writer; they see ClientDisconnect."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
