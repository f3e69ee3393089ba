"""Our HTTP/2 connection against ``h2``'s, on random frame sequences (hypothesis).

Both server-side connections get the same bytes (preface, SETTINGS, then random
frames: HEADERS/CONTINUATION with valid header blocks, DATA, RST_STREAM,
WINDOW_UPDATE, PING, SETTINGS, PRIORITY, GOAWAY, on a few stream ids, split
anywhere).  They must agree on whether the connection fails and with which error
code, and on the requests and body bytes delivered before that.  Where RFC 9113
lets the two differ, the test says so (``_known_difference``).
"""

from __future__ import annotations

import importlib

import pytest

pytest.importorskip("h2", reason="h2 is the differential oracle")
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

F = importlib.import_module("ember.http._frames_py")
TWINS = [pytest.param("ember.http._h2conn_py", id="py"),
         pytest.param("ember.http._h2conn_c", id="c", marks=pytest.mark.compiled)]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WINDOW = 256 * 1024


class _Settings(h2.settings.Settings):
    @property
    def max_concurrent_streams(self) -> int:  # as ember.http.h2 does: we refuse, not h2
        return 2**31 - 1


def _h2_server() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_inbound_headers=True))
    conn.local_settings = _Settings(client=False, initial_values={
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
        h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 16384,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
    conn.initiate_connection()
    return conn


def _ours(module: str):
    mod = importlib.import_module(module)
    conn = mod.H2Connection(max_concurrent_streams=100, max_header_list_size=16384,
                            initial_window_size=WINDOW)
    conn.initiate_connection()
    return mod, conn


_SIDS = st.sampled_from([1, 1, 3, 3, 5, 7, 2])
_ops = st.one_of(
    st.tuples(st.just("headers"), _SIDS, st.booleans(), st.booleans()),
    st.tuples(st.just("continuation"), _SIDS, st.booleans()),
    st.tuples(st.just("data"), _SIDS, st.integers(0, 20000), st.booleans()),
    st.tuples(st.just("rst"), _SIDS, st.integers(0, 13)),
    st.tuples(st.just("window"), st.sampled_from([0, 1, 3]),
              st.sampled_from([0, 1, 1000, 2**31 - 1])),
    st.tuples(st.just("ping"), st.booleans()),
    st.tuples(st.just("settings"), st.sampled_from([(4, 0), (4, 70000), (4, 2**31),
                                                    (5, 16384), (5, 100), (2, 0), (2, 5),
                                                    (1, 0), (3, 10), (6, 100)])),
    st.tuples(st.just("priority"), _SIDS, st.sampled_from([0, 1, 3, 9])),
)


def _wire(ops: list) -> bytes:
    enc = hpack.Encoder()
    out = [PREFACE, F.settings_frame([])]
    for op in ops:
        kind = op[0]
        if kind == "headers":
            _, sid, end_stream, end_headers = op
            block = enc.encode([(b":method", b"POST"), (b":scheme", b"http"),
                                (b":path", f"/p{sid}".encode()),
                                (b":authority", b"localhost")])
            flags = (F.FLAG_END_STREAM if end_stream else 0) | \
                (F.FLAG_END_HEADERS if end_headers else 0)
            out.append(F.frame_header(len(block), F.HEADERS, flags, sid) + block)
        elif kind == "continuation":
            _, sid, end = op
            block = enc.encode([(b"x-more", b"1")])
            out.append(F.frame_header(len(block), F.CONTINUATION,
                                      F.FLAG_END_HEADERS if end else 0, sid) + block)
        elif kind == "data":
            _, sid, size, end = op
            out.append(F.data_frame(sid, b"d" * min(size, 16384), end))
        elif kind == "rst":
            out.append(F.rst_stream_frame(op[1], op[2]))
        elif kind == "window":
            out.append(F.frame_header(4, F.WINDOW_UPDATE, 0, op[1]) + op[2].to_bytes(4, "big"))
        elif kind == "ping":
            out.append(F.ping_frame(b"12345678", ack=op[1]))
        elif kind == "settings":
            ident, value = op[1]
            out.append(F.frame_header(6, F.SETTINGS, 0, 0) + ident.to_bytes(2, "big")
                       + value.to_bytes(4, "big"))
        elif kind == "priority":
            out.append(F.priority_frame(op[1], op[2], 16))
    return b"".join(out)


def _run_h2(wire: bytes) -> tuple:
    conn = _h2_server()
    seen = []
    try:
        for event in conn.receive_data(wire):
            if isinstance(event, h2.events.RequestReceived):
                seen.append(("request", event.stream_id))
            elif isinstance(event, h2.events.DataReceived):
                seen.append(("data", event.stream_id, len(event.data)))
            elif isinstance(event, h2.events.StreamEnded):
                seen.append(("end", event.stream_id))
    except h2.exceptions.ProtocolError as exc:
        return seen, int(exc.error_code or F.PROTOCOL_ERROR)
    return seen, None


def _run_ours(module: str, wire: bytes) -> tuple:
    mod, conn = _ours(module)
    seen = []
    try:
        for event in conn.receive_data(wire):
            if isinstance(event, mod.RequestReceived):
                seen.append(("request", event.stream_id))
            elif isinstance(event, mod.DataReceived):
                seen.append(("data", event.stream_id, len(event.data)))
            elif isinstance(event, mod.StreamEnded):
                seen.append(("end", event.stream_id))
    except mod.ProtocolError as exc:
        return seen, int(exc.error_code)
    return seen, None


def _known_difference(ops: list) -> bool:
    """Inputs where RFC 9113 allows both answers and the two implementations differ."""
    for op in ops:
        # h2 treats frames on streams it closed, and flow-control errors on a stream,
        # as connection errors more often than we do (we reset the stream, §5.4.2);
        # and it applies our SETTINGS' window only once the peer ACKs them.
        if op == ("settings", (4, 2**31)):
            return True
        # WINDOW_UPDATE of 0 on a stream: a stream error (§6.9); h2 ends the connection.
        if op[0] == "window" and op[1] != 0 and op[2] == 0:
            return True
        # A PRIORITY making a stream depend on itself: a stream error (§5.3.1); h2
        # ends the connection.
        if op[0] == "priority" and op[1] == op[2]:
            return True
    # A second HEADERS on a stream (here always malformed trailers: without END_STREAM
    # or with pseudo-headers): a stream error (§8.1); h2 ends the connection.
    # RST_STREAM on an idle stream: a connection error (§6.4); h2 lets it pass.
    opened = set()
    for op in ops:
        if op[0] == "rst" and (op[1] > max(opened, default=0) or op[1] % 2 == 0):
            return True
        if op[0] == "headers":
            if op[1] in opened:
                return True
            opened.add(op[1])
    return False


@pytest.mark.parametrize("module", TWINS)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_ops, max_size=12))
def test_same_connection_errors_as_h2(module, ops):
    if module.endswith("_c"):
        mod = importlib.import_module(module)
        if not getattr(mod, "__file__", "").endswith(".so"):
            pytest.skip("compiled twin not built")
    wire = _wire(ops)
    theirs = _run_h2(wire)
    ours = _run_ours(module, wire)
    if _known_difference(ops):
        # Still: neither may raise anything but a protocol error, and when h2 accepts
        # everything we deliver the same requests.
        if theirs[1] is None and ours[1] is None:
            assert [e for e in ours[0] if e[0] == "request"] == \
                [e for e in theirs[0] if e[0] == "request"]
        return
    assert (ours[1] is None) == (theirs[1] is None), (ops, ours, theirs)
    if ours[1] is None:  # NOTE: h2 drops the events of a read that ends in an error
        assert ours[0] == theirs[0], (ops, ours, theirs)


# -- request heads: the RFC 9113 §8.1-8.3 field rules, h2 as the oracle ----------------------

_PSEUDO = st.sampled_from([(b":method", b"GET"), (b":method", b"CONNECT"), (b":scheme", b"http"),
                           (b":path", b"/x"), (b":path", b""), (b":authority", b"a.example"),
                           (b":status", b"200"), (b":bogus", b"1")])
_REGULAR = st.one_of(
    st.sampled_from([(b"accept", b"*/*"), (b"te", b"trailers"), (b"te", b"gzip"),
                     (b"content-length", b"0"), (b"content-length", b"12"),
                     (b"content-length", b"-1"), (b"content-length", b"1x"),
                     (b"connection", b"close"), (b"keep-alive", b"1"), (b"upgrade", b"h2c"),
                     (b"transfer-encoding", b"chunked"), (b"x-a", b" lead"), (b"x-a", b"trail\t"),
                     (b"x-a", b"in\r\nside"), (b"x-a", b"nul\x00"), (b"x-a", b""),
                     (b"X-Upper", b"1"), (b"x y", b"1"), (b"x:y", b"1"), (b"x\x7f", b"1"),
                     (b"user-agent", b"h2load nghttp2/1.52.0"), (b"x-\xff", b"1")]),
    st.tuples(st.binary(min_size=1, max_size=6), st.binary(max_size=6)))
_HEAD = st.lists(st.one_of(_PSEUDO, _REGULAR), max_size=8)


def _one_request(headers: list, end_stream: bool) -> bytes:
    block = hpack.Encoder().encode(headers)
    flags = F.FLAG_END_HEADERS | (F.FLAG_END_STREAM if end_stream else 0)
    return (PREFACE + F.settings_frame([]) + F.frame_header(len(block), F.HEADERS, flags, 1)
            + block)


def _h2_accepts(wire: bytes) -> bool:
    try:
        events = _h2_server().receive_data(wire)
    except h2.exceptions.ProtocolError:
        return False
    return any(isinstance(e, h2.events.RequestReceived) for e in events)


def _ours_accepts(module: str, wire: bytes) -> bool:
    mod, conn = _ours(module)
    try:
        events = conn.receive_data(wire)
    except mod.ProtocolError:
        return False
    return any(isinstance(e, mod.RequestReceived) for e in events)


@pytest.mark.parametrize("module", TWINS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pseudo=st.permutations([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                               (b":authority", b"a.example")]),
       extra=_HEAD, position=st.integers(0, 8), end_stream=st.booleans())
def test_same_request_head_verdicts_as_h2(module, pseudo, extra, position, end_stream):
    """A request head that h2 refuses (stream or connection error) we refuse (RST_STREAM
    PROTOCOL_ERROR), and one it accepts we deliver: field names, values, pseudo-header
    order and duplicates, connection-specific fields, TE, content-length."""
    if module.endswith("_c"):
        mod = importlib.import_module(module)
        if not getattr(mod, "__file__", "").endswith(".so"):
            pytest.skip("compiled twin not built")
    headers = list(pseudo)
    headers[position:position] = extra
    wire = _one_request(headers, end_stream)
    if any(name[:1] != b":" and any(c in _SEPARATORS for c in name) for name, _ in headers):
        # NOTE: stricter than h2 on purpose: a field name is a token (RFC 9110 §5.1), so a
        # separator in one makes the request malformed here; h2 lets some through.
        assert not _ours_accepts(module, wire), headers
        return
    assert _ours_accepts(module, wire) == _h2_accepts(wire), headers


_SEPARATORS = frozenset(b'()<>@,;\\"/[]?={}:')


@pytest.mark.parametrize("module", TWINS)
def test_headers_cannot_open_a_stream_we_reset_for_stray_data(module):
    """Found by the differential run: DATA on stream 1 after stream 3 opened (stream 1 is
    implicitly closed) is answered RST_STREAM, but a later HEADERS on stream 1 must still be a
    connection error (RFC 9113 §5.1.1), not ignored as a frame in flight after our reset."""
    if module.endswith("_c") and not getattr(importlib.import_module(module), "__file__",
                                             "").endswith(".so"):
        pytest.skip("compiled twin not built")
    ops = [("headers", 3, False, True), ("data", 1, 0, False), ("headers", 1, False, True)]
    wire = _wire(ops)
    assert _run_h2(wire)[1] is not None
    seen, error = _run_ours(module, wire)
    assert error is not None, seen
    # a stream WE reset while open still ignores the HEADERS the client sent before it saw
    # the reset (no connection error for that)
    _mod, conn = _ours(module)
    conn.receive_data(_wire([("headers", 1, False, True)]))
    conn.reset_stream(1, 8)
    enc = hpack.Encoder()
    block = enc.encode([(b"x-trailer", b"1")])
    conn.receive_data(F.frame_header(len(block), F.HEADERS,
                                     F.FLAG_END_STREAM | F.FLAG_END_HEADERS, 1) + block)
    assert not conn.closed
