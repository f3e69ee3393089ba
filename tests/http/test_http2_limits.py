"""HTTP/2 bounds of issue #23: protocol-level stream count, unsent bytes, body rate.

Real server, real sockets, raw frames from the ``h2`` package as the client (the same
``RawClient`` as the attack tests). The tests only look at the wire, so they carry over
to any HTTP/2 implementation behind ``app.run(http2=True)``.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ember import Ember, Request, ServerLimits
from ember.exceptions import ConfigError
from tests._waits import HANG_GUARD, wait_for

pytest.importorskip("h2", reason="HTTP/2 needs the h2 package")
import h2.errors
import h2.events
import h2.settings

from tests.http.test_http2_attacks import RawClient, _goaway


@pytest.fixture
def app() -> Ember:
    app = Ember()

    @app.get("/hello")
    async def hello():
        return "hello"

    @app.get("/chunk")
    async def chunk():
        return b"c" * 65536

    @app.post("/upload")
    async def upload(request: Request):
        return {"size": len(await request.body())}

    @app.post("/late")
    async def late(request: Request):
        await asyncio.sleep(1.0)  # not reading: the window stays shut meanwhile
        return {"size": len(await request.body())}

    return app


def _answers(events: list, sids: list[int]) -> dict[int, object]:
    """Per stream: its :status (bytes) or the RST_STREAM error code (int)."""
    got: dict[int, object] = {}
    for e in events:
        if isinstance(e, h2.events.ResponseReceived) and e.stream_id in sids:
            got.setdefault(e.stream_id, dict(e.headers)[b":status"])
        elif isinstance(e, h2.events.StreamReset) and e.stream_id in sids:
            got.setdefault(e.stream_id, int(e.error_code))
    return got


def test_half_open_streams_count_against_the_limit(serve, app):
    """Issue #23 item 3: streams answered but never ended by the client stay counted."""
    url = serve(app, http2=True, limits=ServerLimits(http2_max_concurrent_streams=20))
    client = RawClient(int(url.rsplit(":", 1)[1]))
    sids = []
    for _ in range(6):
        for _ in range(20):
            sids.append(client.headers("/hello", end_stream=False))  # never ended
        client.flush()
    events = client.read_until(lambda ev: len(_answers(ev, sids)) == len(sids))
    got = _answers(events, sids)
    answered = [sid for sid in sids if got.get(sid) == b"200"]
    refused = [sid for sid in sids if got.get(sid) == h2.errors.ErrorCodes.REFUSED_STREAM]
    assert len(answered) == 20 and len(answered) + len(refused) == len(sids), got
    assert _goaway(events) is None
    # The client ends its 20 half-open streams: new streams are served again.
    for sid in answered:
        client.conn.end_stream(sid)
    more = [client.headers("/hello") for _ in range(20)]
    client.flush()
    events = client.read_until(lambda ev: len(_answers(ev, more)) == len(more))
    client.close()
    assert set(_answers(events, more).values()) == {b"200"}


def test_streams_refused_for_body_overrun_stop_counting(serve, app):
    """A stream Ember ended early is reset with NO_ERROR (RFC 9113 §8.1): no slot leaks."""
    url = serve(app, http2=True, limits=ServerLimits(http2_max_concurrent_streams=10,
                                                     max_body_size=100))
    client = RawClient(int(url.rsplit(":", 1)[1]))
    sids = []
    for _ in range(40):
        sid = client.headers("/upload", "POST", end_stream=False)
        client.conn.send_data(sid, b"x" * 200)  # over the limit, stream left open
        client.flush()
        sids.append(sid)
        client.read_until(lambda ev, sid=sid: sid in _answers(ev, [sid]))
    client.close()
    assert set(_answers(client.events, sids).values()) == {b"413"}
    resets = {e.stream_id: e.error_code for e in client.events
              if isinstance(e, h2.events.StreamReset)}
    assert all(resets.get(sid) == h2.errors.ErrorCodes.NO_ERROR for sid in sids)


def test_non_reading_client_flooding_resets_is_dropped(server_factory, app):
    """Issue #23 item 4: the unsent-reply buffer of a peer that never reads is bounded."""
    limits = ServerLimits(http2_reset_burst=1_000_000, http2_reset_rate=1_000_000,
                          http2_max_concurrent_streams=20)
    server = server_factory(app, http2=True, limits=limits)
    # Wide windows, so that replies are not held back by flow control: only by reading.
    client = RawClient(server.port, rcvbuf=4096,
                       settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    client.conn.increment_flow_control_window(2**31 - 1 - 65535)
    client.flush()
    sent = 0
    dropped = False
    try:
        for _ in range(400):  # up to 8,000 × 16 KiB = 125 MiB if nothing stopped it
            batch = [client.headers("/chunk") for _ in range(20)]
            client.flush()
            time.sleep(0.005)  # the handlers start and write
            for sid in batch:
                client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            client.flush()
            sent += 20
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        dropped = True
    client.close()
    assert dropped, f"a non-reading peer was sent replies for {sent} streams and kept"
    wait_for(lambda: not server.state.connections, "the flooding connection released")
    with httpx.Client(http1=False, http2=True, base_url=server.url, timeout=HANG_GUARD) as c:
        assert c.get("/hello").text == "hello"


def test_reading_client_with_many_streams_is_not_dropped(serve, app):
    """The unsent-bytes bound never hits a peer that reads, however many streams it runs."""
    url = serve(app, http2=True)
    with httpx.Client(http1=False, http2=True, base_url=url, timeout=HANG_GUARD) as c:
        for _ in range(3):
            assert all(c.get("/chunk").content == b"c" * 65536 for _ in range(30))


def test_min_body_rate_on_http2(serve, app):
    """Issue #23 item 6: a trickled body gets 408 after the grace, despite body_timeout."""
    url = serve(app, http2=True, limits=ServerLimits(min_body_rate=(1000, 0.3),
                                                     body_timeout=30))
    client = RawClient(int(url.rsplit(":", 1)[1]))
    sid = client.headers("/upload", "POST", end_stream=False)
    client.flush()
    status = None
    for _ in range(int(HANG_GUARD / 0.1)):
        try:
            client.conn.send_data(sid, b"x" * 10)  # 100 bytes/s
            client.flush()
        except h2.exceptions.StreamClosedError:
            break
        client.sock.settimeout(0.1)
        try:
            client.events.extend(client.conn.receive_data(client.sock.recv(65536)))
        except TimeoutError:
            pass
        status = _answers(client.events, [sid]).get(sid)
        if status is not None:
            break
    client.close()
    assert status == b"408"


def test_min_body_rate_does_not_count_time_the_handler_is_not_reading(serve, app):
    """Backpressure: while the window is shut by a handler that does not read, the client
    cannot send, so a high minimum rate must not fail it."""
    url = serve(app, http2=True, limits=ServerLimits(min_body_rate=(1_000_000, 0.3)))
    with httpx.Client(http1=False, http2=True, base_url=url, timeout=HANG_GUARD) as c:
        r = c.post("/late", content=b"y" * 700_000)
    assert r.status_code == 200 and r.json() == {"size": 700_000}


def test_fast_body_passes_min_body_rate(serve, app):
    url = serve(app, http2=True, limits=ServerLimits(min_body_rate=(240, 0.2)))
    with httpx.Client(http1=False, http2=True, base_url=url, timeout=HANG_GUARD) as c:
        assert c.post("/upload", content=b"z" * 500_000).json() == {"size": 500_000}


# NOTE: a list [240, 5] is accepted like the tuple (configuration read from JSON/TOML)
@pytest.mark.parametrize("value", ["240/5", (0, 5), (240,), (240.5, 5), (True, 5),
                                   (240, -1), (240, "5"), (-240, 5.0)])
def test_min_body_rate_garbage_is_a_config_error(value):
    with pytest.raises(ConfigError, match="min_body_rate"):
        ServerLimits(min_body_rate=value)


def test_min_body_rate_default_and_off():
    assert ServerLimits().min_body_rate == (240, 5.0)
    assert ServerLimits(min_body_rate=None).min_body_rate is None
