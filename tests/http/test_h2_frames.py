"""HTTP/2 frames (RFC 9113 §4, §6): our reader/writers against ``hyperframe``.

Both twins run every test; ``hyperframe`` (what ``h2`` uses) is the oracle for the
frame layout, the RFC for the rules it leaves to the connection.
"""

from __future__ import annotations

import importlib

import pytest

hyperframe = pytest.importorskip("hyperframe", reason="hyperframe is the test oracle")
import hyperframe.frame as hf  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ember._compat import is_compiled  # noqa: E402
from tests._compiled import extensions_expected  # noqa: E402


def _twins() -> list:
    twins = [pytest.param(importlib.import_module("ember.http._frames_py"), id="py")]
    try:
        compiled = importlib.import_module("ember.http._frames_c")
    except ImportError:
        compiled = None
    if compiled is not None and is_compiled(compiled):
        twins.append(pytest.param(compiled, id="c", marks=pytest.mark.compiled))
    elif extensions_expected():
        raise RuntimeError("ember.http._frames_c was not built; run "
                           "`python setup.py build_ext --inplace` (or EMBER_NO_EXTENSIONS=1)")
    return twins


TWINS = _twins()
F = importlib.import_module("ember.http._frames_py")  # constants (same in both twins)

_sid = st.integers(1, 2**31 - 1)
_u32 = st.integers(0, 2**32 - 1)
_data = st.binary(max_size=300)
_pad = st.integers(0, 40)


def _oracle_frames() -> st.SearchStrategy:
    """Valid frames of all ten types, serialised by hyperframe, with what we must read."""
    def data(sid, body, pad, end):
        f = hf.DataFrame(sid, body, flags=["END_STREAM"] if end else [])
        if pad:
            f.flags.add("PADDED")
            f.pad_length = pad
        return f, (F.DATA, int(end), sid, body, len(f.serialize()) - 9)

    def headers(sid, block, pad, end, prio):
        flags = ["END_HEADERS"] + (["END_STREAM"] if end else [])
        f = hf.HeadersFrame(sid, block, flags=flags)
        if pad:
            f.flags.add("PADDED")
            f.pad_length = pad
        if prio:
            f.flags.add("PRIORITY")
            f.depends_on, f.stream_weight, f.exclusive = (sid + 1) % 2**31, 15, True
        return f, (F.HEADERS, F.FLAG_END_HEADERS | int(end), sid, block, 0)

    def priority(sid, dep):
        f = hf.PriorityFrame(sid, depends_on=dep if dep != sid else 0, stream_weight=7)
        return f, (F.PRIORITY, 0, sid, b"", 0)

    def rst(sid, code):
        return hf.RstStreamFrame(sid, error_code=code), (F.RST_STREAM, 0, sid, b"", code)

    def settings_(pairs):
        f = hf.SettingsFrame(0, settings=dict(pairs))
        return f, (F.SETTINGS, 0, 0, list(dict(pairs).items()), 0)

    def push(sid, promised, block):
        f = hf.PushPromiseFrame(sid, promised_stream_id=promised, data=block,
                                flags=["END_HEADERS"])
        return f, (F.PUSH_PROMISE, F.FLAG_END_HEADERS, sid, block, promised)

    def ping(opaque, ack):
        f = hf.PingFrame(0, opaque_data=opaque, flags=["ACK"] if ack else [])
        return f, (F.PING, int(ack), 0, opaque, 0)

    def goaway(last, code, debug):
        f = hf.GoAwayFrame(0, last_stream_id=last, error_code=code, additional_data=debug)
        return f, (F.GOAWAY, 0, 0, debug, (last, code))

    def window(sid, inc):
        return hf.WindowUpdateFrame(sid, window_increment=inc), (F.WINDOW_UPDATE, 0, sid,
                                                                 b"", inc)

    def cont(sid, block, end):
        f = hf.ContinuationFrame(sid, block, flags=["END_HEADERS"] if end else [])
        return f, (F.CONTINUATION, F.FLAG_END_HEADERS if end else 0, sid, block, 0)

    setting = st.one_of(
        st.tuples(st.sampled_from([1, 3, 6, 0x99]), _u32),
        st.tuples(st.just(2), st.integers(0, 1)),
        st.tuples(st.just(4), st.integers(0, 2**31 - 1)),
        st.tuples(st.just(5), st.integers(16384, 2**24 - 1)))
    return st.one_of(
        st.builds(data, _sid, _data, _pad, st.booleans()),
        st.builds(headers, _sid, _data, _pad, st.booleans(), st.booleans()),
        st.builds(priority, _sid, st.integers(0, 2**31 - 1)),
        st.builds(rst, _sid, _u32),
        st.builds(settings_, st.lists(setting, max_size=6, unique_by=lambda p: p[0])),
        st.builds(push, _sid, _sid, _data),
        st.builds(ping, st.binary(min_size=8, max_size=8), st.booleans()),
        st.builds(goaway, st.integers(0, 2**31 - 1), _u32, st.binary(max_size=40)),
        st.builds(window, st.integers(0, 2**31 - 1), st.integers(1, 2**31 - 1)),
        st.builds(cont, _sid, _data, st.booleans()))


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_oracle_frames(), min_size=1, max_size=8), cuts=st.lists(
    st.integers(0, 4000), max_size=5))
def test_reads_what_hyperframe_writes_split_anywhere(mod, frames, cuts):
    wire = b"".join(f.serialize() for f, _ in frames)
    reader = mod.FrameReader(max_frame_size=2**24 - 1)
    got = []
    last = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        got += reader.feed(wire[last:cut])
        last = cut
    assert got == [want for _, want in frames]
    assert reader.buffered == 0


@pytest.mark.parametrize("mod", TWINS)
def test_writers_read_back_by_hyperframe(mod):
    def parse(wire):
        frame, length = hf.Frame.parse_frame_header(memoryview(wire[:9]))
        frame.parse_body(memoryview(wire[9:9 + length]))
        assert len(wire) == 9 + length
        return frame

    f = parse(mod.data_frame(3, b"abc", end_stream=True))
    assert (f.stream_id, f.data, "END_STREAM" in f.flags) == (3, b"abc", True)
    f = parse(mod.settings_frame([(3, 100), (4, 65535)]))
    assert f.settings == {3: 100, 4: 65535}
    assert "ACK" in parse(mod.settings_frame([], ack=True)).flags
    f = parse(mod.ping_frame(b"12345678", ack=True))
    assert (f.opaque_data, "ACK" in f.flags) == (b"12345678", True)
    f = parse(mod.rst_stream_frame(5, 8))
    assert (f.stream_id, f.error_code) == (5, 8)
    f = parse(mod.window_update_frame(0, 1000))
    assert f.window_increment == 1000
    f = parse(mod.goaway_frame(7, 11, b"calm"))
    assert (f.last_stream_id, f.error_code, f.additional_data) == (7, 11, b"calm")
    f = parse(mod.priority_frame(9, 3, 200, exclusive=True))
    assert (f.depends_on, f.stream_weight, f.exclusive) == (3, 200, True)
    f = parse(mod.push_promise_frame(1, 2, b"blk"))
    assert (f.promised_stream_id, f.data) == (2, b"blk")


@pytest.mark.parametrize("mod", TWINS)
def test_big_header_block_is_split_into_continuations(mod):
    block = bytes(range(256)) * 200  # 51,200 bytes
    wire = mod.headers_frames(1, block, end_stream=True, max_frame_size=16384)
    frames = mod.FrameReader().feed(wire)
    assert [f[0] for f in frames] == [F.HEADERS] + [F.CONTINUATION] * 3
    assert frames[0][1] == F.FLAG_END_STREAM and frames[-1][1] == F.FLAG_END_HEADERS
    assert b"".join(f[3] for f in frames) == block


def _raw(length: int, ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return F.frame_header(length, ftype, flags, sid) + payload


# RFC 9113 §4.2, §6.x: each malformed frame and the error it must give
# (code, connection error?).
BAD = {
    "data-on-stream-0": (_raw(1, 0, 0, 0, b"x"), F.PROTOCOL_ERROR, True),
    "data-pad-too-long": (_raw(3, 0, 0x8, 1, b"\x05ab"), F.PROTOCOL_ERROR, True),
    "data-pad-equal-length": (_raw(3, 0, 0x8, 1, b"\x03ab"), F.PROTOCOL_ERROR, True),
    "data-padded-empty": (_raw(0, 0, 0x8, 1, b""), F.FRAME_SIZE_ERROR, True),
    "headers-on-stream-0": (_raw(1, 1, 4, 0, b"\x82"), F.PROTOCOL_ERROR, True),
    "headers-priority-short": (_raw(3, 1, 0x24, 1, b"abc"), F.FRAME_SIZE_ERROR, True),
    "headers-depends-on-itself": (_raw(6, 1, 0x24, 3, b"\x00\x00\x00\x03\x10\x82"),
                                  F.PROTOCOL_ERROR, True),
    "priority-on-stream-0": (_raw(5, 2, 0, 0, b"\x00" * 5), F.PROTOCOL_ERROR, True),
    "priority-wrong-size": (_raw(4, 2, 0, 1, b"\x00" * 4), F.FRAME_SIZE_ERROR, False),
    "priority-depends-on-itself": (_raw(5, 2, 0, 1, b"\x00\x00\x00\x01\x10"),
                                   F.PROTOCOL_ERROR, False),
    "rst-on-stream-0": (_raw(4, 3, 0, 0, b"\x00" * 4), F.PROTOCOL_ERROR, True),
    "rst-wrong-size": (_raw(3, 3, 0, 1, b"\x00" * 3), F.FRAME_SIZE_ERROR, True),
    "settings-on-stream": (_raw(0, 4, 0, 1, b""), F.PROTOCOL_ERROR, True),
    "settings-ack-with-payload": (_raw(6, 4, 1, 0, b"\x00" * 6), F.FRAME_SIZE_ERROR, True),
    "settings-not-6n": (_raw(5, 4, 0, 0, b"\x00" * 5), F.FRAME_SIZE_ERROR, True),
    "settings-enable-push-2": (_raw(6, 4, 0, 0, b"\x00\x02\x00\x00\x00\x02"),
                               F.PROTOCOL_ERROR, True),
    "settings-window-too-big": (_raw(6, 4, 0, 0, b"\x00\x04\x80\x00\x00\x00"),
                                F.FLOW_CONTROL_ERROR, True),
    "settings-frame-size-small": (_raw(6, 4, 0, 0, b"\x00\x05\x00\x00\x3f\xff"),
                                  F.PROTOCOL_ERROR, True),
    "settings-frame-size-big": (_raw(6, 4, 0, 0, b"\x00\x05\x01\x00\x00\x00"),
                                F.PROTOCOL_ERROR, True),
    "push-on-stream-0": (_raw(4, 5, 4, 0, b"\x00\x00\x00\x02"), F.PROTOCOL_ERROR, True),
    "push-short": (_raw(3, 5, 4, 1, b"\x00\x00\x00"), F.FRAME_SIZE_ERROR, True),
    "ping-on-stream": (_raw(8, 6, 0, 1, b"\x00" * 8), F.PROTOCOL_ERROR, True),
    "ping-wrong-size": (_raw(7, 6, 0, 0, b"\x00" * 7), F.FRAME_SIZE_ERROR, True),
    "goaway-on-stream": (_raw(8, 7, 0, 1, b"\x00" * 8), F.PROTOCOL_ERROR, True),
    "goaway-short": (_raw(7, 7, 0, 0, b"\x00" * 7), F.FRAME_SIZE_ERROR, True),
    "window-wrong-size": (_raw(3, 8, 0, 1, b"\x00" * 3), F.FRAME_SIZE_ERROR, True),
    "window-zero-connection": (_raw(4, 8, 0, 0, b"\x00" * 4), F.PROTOCOL_ERROR, True),
    "window-zero-stream": (_raw(4, 8, 0, 1, b"\x00" * 4), F.PROTOCOL_ERROR, False),
    "continuation-on-stream-0": (_raw(1, 9, 4, 0, b"\x82"), F.PROTOCOL_ERROR, True),
    "over-max-frame-size": (F.frame_header(16385, 0, 0, 1), F.FRAME_SIZE_ERROR, True),
}


@pytest.mark.parametrize("mod", TWINS)
@pytest.mark.parametrize("name", list(BAD))
def test_malformed_frames(mod, name):
    wire, code, connection = BAD[name]
    after = mod.ping_frame(b"8bytes!!")
    reader = mod.FrameReader()
    frames = reader.feed(wire + after)
    assert frames[0][0] == F.ERROR and frames[0][1] == code, frames
    if connection:
        assert frames[0][2] == 0 and len(frames) == 1 and reader.failed
        assert reader.feed(after) == []
    else:
        assert frames[0][2] != 0 and frames[1][0] == F.PING and not reader.failed


@pytest.mark.parametrize("mod", TWINS)
def test_unknown_types_and_reserved_bit_are_ignored(mod):
    wire = _raw(3, 0xEE, 0xFF, 5, b"abc") + _raw(1, 0, 1, 0x80000001, b"x")
    assert mod.FrameReader().feed(wire) == [(F.DATA, 1, 1, b"x", 1)]


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_garbage_never_raises(mod, data):
    """Any bytes: frames or a protocol error tuple, never an exception."""
    frames = mod.FrameReader().feed(data)
    for frame in frames:
        assert frame[0] in range(-1, 10)
