"""A fake transport and a loop with a hand-driven clock, for protocol tests.

The protocol runs for real (parser, cycles, Tasks, timers); only the socket
and the clock are replaced, so tests are fast, deterministic and never sleep:
``conn.send(b"...")`` feeds bytes, ``conn.settle()`` runs every ready callback
and Task until nothing is left to do, ``conn.advance(seconds)`` moves the clock
(timers due fire), ``conn.output`` is what the server wrote.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ember.http.protocol import HttpProtocol, ServerState


class FakeClockLoop(asyncio.SelectorEventLoop):
    """A real event loop whose ``time()`` only moves when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def settle(self) -> None:
        """Run until no callback is ready (timers in the future do not count)."""
        for _ in range(10_000):
            self.run_until_complete(asyncio.sleep(0))
            if not self._ready:  # type: ignore[attr-defined]
                return
        raise AssertionError("the loop never went quiet (busy loop in the protocol?)")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.settle()

    def pending_timers(self) -> list[Any]:
        return [h for h in self._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


class FakeTransport(asyncio.Transport):
    """Collects writes; simulates a write buffer with a high-water mark."""

    def __init__(self, high_water: int = 64 * 1024) -> None:
        super().__init__()
        self.protocol: Any = None
        self.buffer = bytearray()  # written, not yet read by the fake client
        self.output = bytearray()  # everything ever written
        self.closed = False
        self.aborted = False
        self.reading = True
        self.high_water = high_water
        self.write_paused = False
        self.extra = {"peername": ("127.0.0.1", 40000)}
        self.writes = 0  # transport.write calls (one send() each on a real socket)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes += 1
        self.buffer += data
        self.output += data
        if not self.write_paused and len(self.buffer) > self.high_water:
            self.write_paused = True
            self.protocol.pause_writing()

    def client_read(self) -> bytes:
        """The client reads everything: the buffer drains."""
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.write_paused:
            self.write_paused = False
            self.protocol.resume_writing()
        return data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_event_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()


class Conn:
    """One fake connection to ``app``: send bytes, settle, read the output."""

    def __init__(self, app: Any, limits: Any = None, loop: FakeClockLoop | None = None,
                 state: ServerState | None = None, high_water: int = 64 * 1024) -> None:
        self.loop = loop or FakeClockLoop()
        asyncio.set_event_loop(self.loop)
        self.state = state or ServerState()
        self.transport = FakeTransport(high_water)
        self.proto = HttpProtocol(app, self.state, limits or app.server_limits)
        self.transport.protocol = self.proto
        self.proto.connection_made(self.transport)
        self.settle()

    def send(self, data: bytes, settle: bool = True) -> None:
        """Deliver bytes (only while the protocol reads, like a real socket)."""
        if self.transport.closed:
            return
        assert self.transport.reading, "sent while the protocol paused reading"
        self.proto.data_received(data)
        if settle:
            self.settle()

    def eof(self) -> None:
        if not self.transport.closed and not self.proto.eof_received():
            self.transport.close()
        self.settle()

    def settle(self) -> None:
        self.loop.settle()

    def advance(self, seconds: float) -> None:
        self.loop.advance(seconds)

    @property
    def output(self) -> bytes:
        return bytes(self.transport.output)

    @property
    def closed(self) -> bool:
        return self.transport.closed

    def statuses(self) -> list[int]:
        """Status codes of the responses written, in order (100 Continue excluded)."""
        return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n", self.output)
                if m != b"100"]

    def close(self) -> None:
        """Tear down like a client that leaves; check nothing outlives the connection."""
        if not self.transport.closed:
            self.transport.close()
        self.settle()
        leaks = self.leaks()
        self.loop.close()
        asyncio.set_event_loop(None)
        assert not leaks, f"outlived the connection: {leaks}"

    def leaks(self) -> list[Any]:
        """Tasks and timers still alive after the connection closed.

        NOTE: no gc.collect() first: a stalled Task is only reachable from its own
        future, so collecting would hide exactly the leak this looks for.
        """
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        timers = self.loop.pending_timers()
        return tasks + timers
