"""HTTP/2 under the attacks that took down nghttp2, Go, Node, netty and Envoy.

Each test drives a real server over a real socket with raw frames from the ``h2``
package as the client (its own validation relaxed where an attack needs it), and
checks what matters: handlers that keep running, memory that grows, whether the
connection is dropped and whether another client is still served.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import threading
from typing import Any

import httpx
import pytest

from ember import Ember, Request, ServerLimits, StreamingResponse
from tests._waits import HANG_GUARD, wait_for

pytest.importorskip("h2", reason="HTTP/2 needs the h2 package")
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings


class Tracker:
    """Handler bookkeeping shared between the server thread and the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.finished = 0
        self.running = 0
        self.peak = 0
        self.release: asyncio.Event | None = None

    def enter(self) -> None:
        with self.lock:
            self.started += 1
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self.lock:
            self.finished += 1
            self.running -= 1



@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


@pytest.fixture
def app(tracker: Tracker) -> Ember:
    app = Ember()

    @app.get("/hello")
    async def hello():
        return "hello"

    @app.get("/block")
    async def block():
        tracker.enter()
        try:
            if tracker.release is None:
                tracker.release = asyncio.Event()
            await tracker.release.wait()
            return "released"
        finally:
            tracker.leave()

    @app.post("/upload")
    async def upload(request: Request):
        tracker.enter()
        try:
            return {"size": len(await request.body())}
        finally:
            tracker.leave()

    @app.get("/big")
    async def big():
        async def gen():
            tracker.enter()
            try:
                for _ in range(64):
                    yield b"z" * 16384
            finally:
                tracker.leave()
        return StreamingResponse(gen())

    return app


class _NoStreamLimit(h2.settings.Settings):
    """The client's view of the server's settings, without h2's outbound stream check."""

    @property
    def max_concurrent_streams(self) -> int:
        return 2**31 - 1


class RawClient:
    """A raw HTTP/2 client: h2 framing, a plain socket, no politeness."""

    def __init__(self, port: int, *, rcvbuf: int | None = None,
                 settings: dict[int, int] | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(HANG_GUARD)
        self.sock.connect(("127.0.0.1", port))
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            validate_inbound_headers=False, normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.remote_settings.__class__ = _NoStreamLimit  # attackers ignore the limit
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.events: list[Any] = []
        self.closed = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, path: str, method: str = "GET", end_stream: bool = True,
                extra: list[tuple[bytes, bytes]] | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(b":method", method.encode()), (b":path", path.encode()),
                                     (b":scheme", b"http"), (b":authority", b"localhost"),
                                     *(extra or [])], end_stream=end_stream)
        return sid

    def read_until(self, predicate: Any) -> list[Any]:
        """Read events until ``predicate(events)`` or the server closes."""
        while not predicate(self.events):
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                self.closed = True
                return self.events
            if not data:
                self.closed = True
                return self.events
            try:
                self.events.extend(self.conn.receive_data(data))
            except h2.exceptions.ProtocolError:
                pass
            self.flush()
        return self.events

    def close(self) -> None:
        self.sock.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _goaway(events: list[Any]) -> Any:
    return next((e for e in events if isinstance(e, h2.events.ConnectionTerminated)), None)


def test_rapid_reset_gets_goaway_enhance_your_calm(server_factory, app, tracker):
    """CVE-2023-44487: HEADERS + RST_STREAM pairs are cut off after the reset budget."""
    limits = ServerLimits(http2_reset_burst=200)
    server = server_factory(app, http2=True, limits=limits)
    client = RawClient(server.port)
    sent = 0
    try:
        for _ in range(50):  # up to 5,000 pairs, 100 per write
            for _ in range(100):
                sid = client.headers("/block")
                client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                sent += 1
            client.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    events = client.read_until(lambda ev: _goaway(ev) is not None)
    client.close()
    goaway = _goaway(events)
    assert goaway is not None, f"no GOAWAY after {sent} reset streams"
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    # Work was bounded by the budget, not by what the client sent ...
    assert tracker.started <= 200 + limits.http2_max_concurrent_streams
    # ... and every reset handler was cancelled, its `finally` run.
    wait_for(lambda: tracker.running == 0, "reset handlers cancelled")
    wait_for(lambda: not server.state.connections, "the attacking connection released")
    # Another client is still served.
    with httpx.Client(http1=False, http2=True, base_url=server.url, timeout=HANG_GUARD) as c:
        assert c.get("/hello").text == "hello"


def test_resets_within_budget_keep_connection(serve, app, tracker):
    """Ordinary cancellation (a browser navigating away) is not an attack."""
    url = serve(app, http2=True)
    client = RawClient(_port(url))
    for _ in range(50):
        sid = client.headers("/block")
        client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    wait_for(lambda: tracker.running == 0 and tracker.started == tracker.finished,
             "reset handlers cancelled")
    sid = client.headers("/hello")
    client.flush()
    events = client.read_until(
        lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in ev))
    client.close()
    assert _goaway(events) is None
    assert any(isinstance(e, h2.events.DataReceived) and e.data == b"hello" for e in events)


@pytest.mark.parametrize("flood", ["ping", "settings"])
def test_control_frame_flood_from_a_peer_that_never_reads(server_factory, app, flood):
    """CVE-2019-9512/9515: control replies queued for a non-reading peer are bounded."""
    server = server_factory(app, http2=True, limits=ServerLimits(max_pending_control_frames=100))
    client = RawClient(server.port, rcvbuf=4096)
    client.read_until(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                     for e in ev))
    sent = 0
    dropped = False
    try:
        for i in range(20_000):  # at most ~20 MiB of replies if nothing stopped it
            for j in range(64):
                if flood == "ping":
                    client.conn.ping(((i * 64 + j) % 2**63).to_bytes(8, "big"))
                else:
                    client.conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
            client.flush()
            sent += 64
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        dropped = True
    client.close()
    assert dropped, f"the server kept accepting {sent} {flood} frames from a peer that never reads"
    wait_for(lambda: not server.state.connections, "flooding connection released")
    with httpx.Client(http1=False, http2=True, base_url=server.url, timeout=HANG_GUARD) as c:
        assert c.get("/hello").status_code == 200


@pytest.mark.parametrize("one_write", [True, False])
def test_extra_stream_is_refused_alone(serve, app, tracker, one_write):
    """RFC 9113 §5.1.2: the 101st stream gets REFUSED_STREAM; the 100 others complete."""
    url = serve(app, http2=True)
    client = RawClient(_port(url))
    client.read_until(lambda ev: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                     for e in ev))
    ids = []
    for _ in range(100):
        ids.append(client.headers("/block"))
        if not one_write:
            client.flush()
    if not one_write:
        wait_for(lambda: tracker.running == 100, "100 handlers running")
    extra = client.headers("/block")
    client.flush()
    events = client.read_until(lambda ev: any(
        isinstance(e, h2.events.StreamReset) and e.stream_id == extra for e in ev))
    reset = next(e for e in events if isinstance(e, h2.events.StreamReset))
    assert reset.stream_id == extra and reset.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    assert _goaway(events) is None
    wait_for(lambda: tracker.running == 100, "100 handlers running")
    assert tracker.started == 100
    server_loop_event = tracker.release
    assert server_loop_event is not None
    # Release the handlers from the server's loop and read the 100 answers.
    serve.servers[0].loop.call_soon_threadsafe(server_loop_event.set)
    ended = {ids[-1]}
    events = client.read_until(lambda ev: ended <= {
        e.stream_id for e in ev if isinstance(e, h2.events.StreamEnded)})
    done = {e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)}
    client.close()
    assert set(ids) <= done and extra not in done


def test_stream_ended_by_server_cancels_its_handler(serve, app, tracker):
    """MadeYouReset (CVE-2025-8671): a 413 ends the stream and its handler; the count holds."""
    url = serve(app, http2=True, limits=ServerLimits(max_body_size=1024))
    client = RawClient(_port(url))
    statuses = []
    for _ in range(3):  # 3 × 150 streams on a connection limited to 100
        batch = []
        for _ in range(150):
            sid = client.headers("/upload", "POST", end_stream=False)
            client.conn.send_data(sid, b"x" * 2048)  # over the limit, stream left open
            batch.append(sid)
            client.flush()
            client.read_until(lambda ev, sid=sid: any(
                isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid for e in ev))
        for e in client.events:
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id in batch:
                statuses.append(dict(e.headers)[b":status"])
        wait_for(lambda: tracker.running == 0, "ended streams' handlers cancelled")
    client.close()
    assert statuses == [b"413"] * 450
    assert tracker.peak <= 100
    assert tracker.started == tracker.finished


def test_client_reset_cancels_handler(serve, app, tracker):
    url = serve(app, http2=True)
    client = RawClient(_port(url))
    ids = [client.headers("/block") for _ in range(50)]
    client.flush()
    wait_for(lambda: tracker.running == 50, "50 handlers running")
    for sid in ids:
        client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    wait_for(lambda: tracker.running == 0, "reset handlers cancelled")
    client.close()
    assert tracker.finished == 50


def test_peer_that_keeps_the_window_shut_is_timed_out(serve, app, tracker):
    """A send timeout: a peer advertising a zero window cannot hold a handler forever."""
    url = serve(app, http2=True, limits=ServerLimits(send_timeout=0.3))
    client = RawClient(_port(url),
                       settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = client.headers("/big")
    client.flush()
    events = client.read_until(lambda ev: any(
        isinstance(e, h2.events.StreamReset) and e.stream_id == sid for e in ev))
    client.close()
    reset = next(e for e in events if isinstance(e, h2.events.StreamReset))
    assert reset.error_code == h2.errors.ErrorCodes.CANCEL
    wait_for(lambda: tracker.running == 0, "the stalled stream's generator closed")


def test_body_timeout_on_http2(serve, app, tracker):
    url = serve(app, http2=True, limits=ServerLimits(body_timeout=0.3))
    client = RawClient(_port(url))
    sid = client.headers("/upload", "POST", end_stream=False)
    client.conn.send_data(sid, b"x" * 10)
    client.flush()
    events = client.read_until(lambda ev: any(
        isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid for e in ev))
    client.close()
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[b":status"] == b"408"
    wait_for(lambda: tracker.running == 0, "the waiting handler cancelled")


def test_header_limits_on_http2(serve, app):
    url = serve(app, http2=True, limits=ServerLimits(max_header_size=4096, max_headers=20,
                                                     max_url_size=200))
    client = RawClient(_port(url))
    cases = {
        client.headers("/hello", extra=[(b"x-big", b"v" * 5000)]): b"431",
        client.headers("/hello", extra=[(f"x-{i}".encode(), b"v") for i in range(30)]): b"431",
        client.headers("/hello?" + "q" * 300): b"414",
        client.headers("/hello"): b"200",
    }
    client.flush()
    events = client.read_until(lambda ev: set(cases) <= {
        e.stream_id for e in ev if isinstance(e, h2.events.StreamEnded)})
    client.close()
    got = {e.stream_id: dict(e.headers)[b":status"] for e in events
           if isinstance(e, h2.events.ResponseReceived)}
    assert got == cases


# -- h2c upgrade rules -----------------------------------------------------------------

def _settings_b64() -> str:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    return conn.initiate_upgrade_connection().decode()


def _upgrade(url: str, settings_lines: list[str]) -> bytes:
    from tests.conftest import raw_exchange

    head = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n" \
           "Upgrade: h2c\r\n" + "".join(f"HTTP2-Settings: {v}\r\n" for v in settings_lines) \
           + "Connection: close\r\n\r\n"
    return raw_exchange(url, head.encode(), timeout=HANG_GUARD)


@pytest.mark.parametrize("values", [
    pytest.param(["!!!not base64!!!"], id="not-base64url"),
    pytest.param(["AAMAAABkAAQAAP__A"], id="not-whole-settings"),
    pytest.param(["AAMAAABkAAQAAP__", "AAMAAABkAAQAAP__"], id="two-fields"),
    pytest.param([], id="missing"),
    pytest.param(["AAMAAABk+AQAAP/"], id="base64-not-url"),
])
def test_invalid_h2c_upgrade_is_served_as_http1(serve, app, values):
    url = serve(app, http2=True)
    reply = _upgrade(url, values)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert b"101 Switching" not in reply and reply.endswith(b"hello")


def test_valid_h2c_upgrade_still_works(serve, app):
    url = serve(app, http2=True)
    settings = _settings_b64()
    assert base64.urlsafe_b64decode(settings + "=" * (-len(settings) % 4))
    port = _port(url)
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as s:
        s.sendall(("GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, "
                   f"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: {settings}\r\n\r\n")
                  .encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 101 Switching Protocols")


def test_no_h2c_upgrade_over_tls(serve, app, tls_files):
    """h2c smuggling: an Upgrade: h2c over TLS (ALPN http/1.1) is never honoured."""
    cert, key = tls_files
    url = serve(app, http2=True, ssl_certfile=cert, ssl_keyfile=key)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=HANG_GUARD) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(("GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, "
                   f"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: {_settings_b64()}\r\n"
                   "Connection: close\r\n\r\n").encode())
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"hello"), reply[:200]
