"""A small HTTP/3 client on aioquic (the tests' client): requests, streams, resets."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset


@dataclass
class Reply:
    """What came back on one request stream."""

    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None  # the server's RESET_STREAM error code
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def text(self) -> str:
        return self.body.decode()


class H3Client(QuicConnectionProtocol):
    """aioquic's client protocol with an H3Connection and per-stream replies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.replies: dict[int, Reply] = {}
        self.terminated: ConnectionTerminated | None = None
        self.closed_event = asyncio.Event()

    def quic_event_received(self, event: Any) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            self.closed_event.set()
            for reply in self.replies.values():
                reply.done.set()
                reply.queue.put_nowait(None)
        if isinstance(event, StreamReset) and event.stream_id in self.replies:
            reply = self.replies[event.stream_id]
            reply.reset = event.error_code
            reply.done.set()
            reply.queue.put_nowait(None)
        for h3_event in self.h3.handle_event(event):
            reply = self.replies.get(getattr(h3_event, "stream_id", -1))
            if reply is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                if not reply.status:
                    for name, value in h3_event.headers:
                        if name == b":status":
                            reply.status = int(value)
                        else:
                            reply.headers[name] = value
            elif isinstance(h3_event, DataReceived):
                reply.body += h3_event.data
                if h3_event.data:
                    reply.queue.put_nowait(h3_event.data)
            if getattr(h3_event, "stream_ended", False):
                reply.ended = True
                reply.done.set()
                reply.queue.put_nowait(None)

    def start(self, method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
              body: bytes | None = None, end: bool = True, raw: list | None = None) -> int:
        """Send a request head (+ body); return the stream id (``raw``: exact fields)."""
        sid = self._quic.get_next_available_stream_id()
        fields = raw if raw is not None else [
            (b":method", method.encode()), (b":scheme", b"https"),
            (b":authority", b"localhost"), (b":path", path.encode()),
            *(headers or [])]
        self.replies[sid] = Reply()
        self.h3.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.h3.send_data(sid, body, end_stream=end)
        self.transmit()
        return sid

    def send_body(self, sid: int, data: bytes, end: bool = False) -> None:
        self.h3.send_data(sid, data, end_stream=end)
        self.transmit()

    def reset(self, sid: int) -> None:
        self._quic.reset_stream(sid, ErrorCode.H3_REQUEST_CANCELLED)
        self._quic.stop_stream(sid, ErrorCode.H3_REQUEST_CANCELLED)
        self.transmit()

    async def request(self, method: str, path: str, headers: list | None = None,
                      body: bytes | None = None, timeout: float = 10) -> Reply:
        sid = self.start(method, path, headers, body)
        reply = self.replies[sid]
        await asyncio.wait_for(reply.done.wait(), timeout)
        return reply


def client_config(**kwargs: Any) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, **kwargs)
    config.verify_mode = ssl.CERT_NONE
    return config


@contextlib.asynccontextmanager
async def h3_connect(port: int, host: str = "127.0.0.1", **kwargs: Any
                     ) -> AsyncIterator[H3Client]:
    """An HTTP/3 connection to ``host:port`` (self-signed certificates accepted)."""
    async with connect(host, port, configuration=client_config(**kwargs),
                       create_protocol=H3Client) as client:
        yield client  # type: ignore[misc]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
