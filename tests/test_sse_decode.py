"""The SSE decoder: any split of the bytes gives the same events."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember._sse_decode import SSEDecoder, SSEEvent

STREAM = (b"\xef\xbb\xbf: comment\r\n"
          b"event: message_start\r\ndata: {\"a\":\r\ndata:  1}\r\n\r\n"
          b"data: two\rid: 7\r\r"
          b"data\n\n"
          b"retry: 10\nunknown: x\n\n"
          b"data: caf\xc3\xa9 \xe2\x9c\x93\n\n"
          b"data: [DONE]\n\n")
EXPECTED = [SSEEvent("message_start", '{"a":\n 1}', None), SSEEvent("message", "two", "7"),
            SSEEvent("message", "", "7"), SSEEvent("message", "café ✓", "7"),
            SSEEvent("message", "[DONE]", "7")]


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    for p in pieces:
        out += d.feed(p)
    assert not d.pending()
    return out


def test_whole() -> None:
    assert decode([STREAM]) == EXPECTED


def test_byte_by_byte() -> None:
    assert decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=20))
def test_random_splits(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    assert decode([STREAM[a:b] for a, b in itertools.pairwise(points)]) == EXPECTED


def test_truncated_event_is_pending() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: {\"partial\": tr") == []
    assert d.pending()
    d2 = SSEDecoder()
    assert d2.feed(b"data: x\n") == [] and d2.pending()


# -- blocks=True: what the test client shows (ember.testing's event API) ----------------------
BLOCKS = [SSEEvent("message_start", '{"a":\n 1}'), SSEEvent("message", "two", "7"),
          SSEEvent("message", ""), SSEEvent("message", "", None, 10),
          SSEEvent("message", "café ✓"), SSEEvent("message", "[DONE]")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=20))
def test_blocks_mode_random_splits(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    d = SSEDecoder(blocks=True)
    out: list[SSEEvent] = []
    for a, b in itertools.pairwise(points):
        out += d.feed(STREAM[a:b])
    assert out + d.flush() == BLOCKS


def test_flush_gives_the_unterminated_last_event() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\n\ndata: b") == [SSEEvent("message", "a")]
    assert d.pending() and d.flush() == [SSEEvent("message", "b")] and not d.pending()
    assert SSEDecoder().flush() == []
    only_event = SSEDecoder(blocks=True)
    assert only_event.feed(b"event: ping\n") == [] and only_event.pending()
    assert only_event.flush() == [SSEEvent("ping", "")]


@pytest.fixture
def stream_app():
    from ember import Ember, StreamingResponse

    app = Ember()
    pieces = [STREAM[i:i + 7] for i in range(0, len(STREAM), 7)]

    @app.get("/raw")
    async def raw():
        async def gen():
            for p in pieces:
                yield p
        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


def test_test_client_event_api_uses_the_decoder(stream_app) -> None:
    """``events()``, ``iter_events()`` and ``aiter_events()`` agree, on a stream whose
    bytes arrive in 7-byte pieces with CR, CRLF and LF line ends and a BOM."""
    import asyncio

    want = [{"event": "message_start", "data": '{"a":\n 1}'},
            {"event": "message", "id": "7", "data": "two"},
            {"event": "message", "data": ""},
            {"event": "message", "retry": 10, "data": ""},
            {"event": "message", "data": "café ✓"},
            {"event": "message", "data": "[DONE]"}]
    with stream_app.test_client() as c:
        assert c.get("/raw").events() == want
        with c.stream("GET", "/raw") as r:
            assert list(r.iter_events()) == want

    async def main():
        async with stream_app.test_client() as c, c.stream("GET", "/raw") as r:
            return [e async for e in r.aiter_events()]

    assert asyncio.run(main()) == want
