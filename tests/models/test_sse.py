"""The SSE decoder: any split of the bytes gives the same events."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from ember.models._sse import SSEDecoder, SSEEvent

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
