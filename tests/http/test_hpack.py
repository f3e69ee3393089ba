"""HPACK (RFC 7541): Appendix C vectors, round trips and garbage against ``hpack``.

Both twins (pure and compiled) run every test; the ``hpack`` package (what ``h2``
uses) is the oracle.
"""

from __future__ import annotations

import importlib

import pytest

hpack = pytest.importorskip("hpack", reason="the hpack package is the test oracle")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ember._compat import is_compiled  # noqa: E402
from tests._compiled import extensions_expected  # noqa: E402


def _twins() -> list:
    twins = [pytest.param(importlib.import_module("ember.http._hpack_py"), id="py")]
    try:
        compiled = importlib.import_module("ember.http._hpack_c")
    except ImportError:
        compiled = None
    if compiled is not None and is_compiled(compiled):
        twins.append(pytest.param(compiled, id="c", marks=pytest.mark.compiled))
    elif extensions_expected():
        raise RuntimeError("ember.http._hpack_c was not built; run "
                           "`python setup.py build_ext --inplace` (or EMBER_NO_EXTENSIONS=1)")
    return twins


TWINS = _twins()

DATE1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE2 = b"Mon, 21 Oct 2013 20:13:22 GMT"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
LOC = (b"location", b"https://www.example.com")

# RFC 7541 Appendix C.3/C.4 (requests) and C.5/C.6 (responses, table size 256):
# (headers, block without Huffman, block with Huffman, table size after).
REQUESTS = [
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
      (b":authority", b"www.example.com")],
     "828684410f7777772e6578616d706c652e636f6d",
     "828684418cf1e3c2e5f23a6ba0ab90f4ff", 57),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
      (b":authority", b"www.example.com"), (b"cache-control", b"no-cache")],
     "828684be58086e6f2d6361636865",
     "828684be5886a8eb10649cbf", 110),
    ([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
      (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")],
     "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
     "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf", 164),
]
RESPONSES = [
    ([(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE1), LOC],
     "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a32"
     "3120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
     "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad"
     "171863c78f0b97c8e9ae82ae43d3", 222),
    ([(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE1), LOC],
     "4803333037c1c0bf", "4883640effc1c0bf", 222),
    ([(b":status", b"200"), (b"cache-control", b"private"), (b"date", DATE2), LOC,
      (b"content-encoding", b"gzip"), (b"set-cookie", COOKIE)],
     "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970"
     "7738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d61"
     "67653d333630303b2076657273696f6e3d31",
     "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2"
     "e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
     215),
]


def test_vectors_decode_with_the_oracle_too():
    """The transcribed vectors are what the RFC says: ``hpack`` reads them the same."""
    for cases, size in ((REQUESTS, 4096), (RESPONSES, 256)):
        for col in (1, 2):
            oracle = hpack.Decoder()
            oracle.header_table_size = size
            for case in cases:
                assert [tuple(h) for h in oracle.decode(bytes.fromhex(case[col]), raw=True)] \
                    == case[0]


@pytest.mark.parametrize("mod", TWINS)
@pytest.mark.parametrize("huffman", [False, True], ids=["plain", "huffman"])
@pytest.mark.parametrize("kind", ["requests", "responses"])
def test_appendix_c_sequences(mod, huffman, kind):
    """C.3/C.4 and C.5/C.6: decode each block in turn, and encode to the same bytes."""
    cases, size = (REQUESTS, 4096) if kind == "requests" else (RESPONSES, 256)
    decoder = mod.Decoder(max_table_size=size)
    encoder = mod.Encoder(max_table_size=size)
    for headers, plain, coded, table_size in cases:
        block = bytes.fromhex(coded if huffman else plain)
        assert decoder.decode(block) == headers
        assert decoder.table_size == table_size
        assert encoder.encode(headers, huffman=huffman) == block


@pytest.mark.parametrize("mod", TWINS)
def test_appendix_c2_single_fields(mod):
    d = mod.Decoder()
    assert d.decode(bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572")) \
        == [(b"custom-key", b"custom-header")]
    assert d.table_size == 55
    d = mod.Decoder()
    assert d.decode(bytes.fromhex("040c2f73616d706c652f70617468")) == [(b":path",
                                                                       b"/sample/path")]
    assert d.table_size == 0
    assert d.decode(bytes.fromhex("100870617373776f726406736563726574")) == [
        (b"password", b"secret")]
    assert d.table_size == 0
    assert d.decode(b"\x82") == [(b":method", b"GET")]


@pytest.mark.parametrize("mod", TWINS)
def test_never_indexed_fields_stay_out_of_the_table(mod):
    header = hpack.NeverIndexedHeaderTuple(b"authorization", b"Bearer secret")
    enc = mod.Encoder()
    block = enc.encode([header, header])
    assert block[0] & 0xF0 == 0x10  # literal never indexed (RFC 7541 §6.2.3)
    oracle = hpack.Decoder()
    assert [tuple(h) for h in oracle.decode(block, raw=True)] == [tuple(header)] * 2
    assert not oracle.header_table.dynamic_entries


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("mod", TWINS)
@pytest.mark.parametrize("block, error", [
    ("80", "HPACKError"),                  # index 0
    ("be", "HPACKError"),                  # dynamic index past the table
    ("ff", "HPACKError"),                  # integer cut short
    ("ffffffffffffff7f", "HPACKError"),    # integer too large
    ("4005", "HPACKError"),                # string longer than the block
    ("40817f", "HPACKError"),              # Huffman: 7 bits... not all ones (invalid pad)
    ("4081ff00", "HPACKError"),            # Huffman: EOS / 8+ bits of padding
    ("823f e11f", "InvalidTableSize"),     # size update after a field
    ("3fe21f", "InvalidTableSize"),        # size update above the allowed 4096
])
def test_bad_blocks_are_refused(mod, block, error):
    with pytest.raises(getattr(mod, error)):
        mod.Decoder().decode(bytes.fromhex(block.replace(" ", "")))


@pytest.mark.parametrize("mod", TWINS)
def test_hpack_bomb_stops_at_the_header_list_bound(mod):
    """One 3 KB entry referenced 10,000 times inflates to 30 MB: stopped at the bound."""
    first = mod.Encoder().encode([(b"x-bomb", b"b" * 3000)], huffman=False)
    block = first + b"\xbe" * 10_000
    decoder = mod.Decoder(max_header_list_size=65536)
    with pytest.raises(mod.HeaderListTooLarge):
        decoder.decode(block)


@pytest.mark.parametrize("mod", TWINS)
def test_table_size_updates(mod):
    enc = mod.Encoder()
    enc.header_table_size = 0
    enc.header_table_size = 1024
    block = enc.encode([(b"x-a", b"1")])
    assert block[:1] == b"\x20"  # RFC 7541 §4.2: the smallest size first ...
    dec = mod.Decoder()
    assert dec.decode(block) == [(b"x-a", b"1")] and dec.header_table_size == 1024
    oracle = hpack.Decoder()
    assert [tuple(h) for h in oracle.decode(block, raw=True)] == [(b"x-a", b"1")]


# -- differential: hpack as the oracle --------------------------------------------------------

_names = st.one_of(
    st.sampled_from([b":status", b"content-type", b"date", b"set-cookie", b"x-id",
                     b"cache-control", b":path", b"authorization"]),
    st.binary(min_size=1, max_size=20).map(lambda b: bytes(c % 26 + 97 for c in b)))
_headers = st.lists(st.tuples(_names, st.binary(max_size=60)), max_size=12)


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(_headers, min_size=1, max_size=6), huffman=st.booleans(),
       table=st.sampled_from([0, 64, 256, 4096]))
def test_round_trips_against_hpack(mod, blocks, huffman, table):
    ours_enc, ours_dec = mod.Encoder(), mod.Decoder()
    their_enc, their_dec = hpack.Encoder(), hpack.Decoder()
    ours_enc.header_table_size = table
    their_enc.header_table_size = table
    for headers in blocks:
        mine = ours_enc.encode(headers, huffman=huffman)
        assert [tuple(h) for h in their_dec.decode(mine, raw=True)] == headers
        theirs = their_enc.encode(headers, huffman=huffman)
        assert ours_dec.decode(theirs) == headers


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_huffman_against_hpack(mod, data):
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
    from hpack.huffman_table import decode_huffman

    coded = mod.huffman_encode(data)
    assert coded == HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
    assert mod.huffman_decode(coded) == data == decode_huffman(coded)


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=40))
def test_garbage_same_accept_reject_as_hpack(mod, data):
    """Random blocks: either both decoders refuse, or both give the same headers."""
    try:
        theirs = [tuple(h) for h in hpack.Decoder().decode(data, raw=True)]
    except (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError):
        theirs = None
    try:
        ours = mod.Decoder().decode(data)
    except mod.HPACKError:
        ours = None
    assert ours == theirs


_pool_pairs = st.lists(st.tuples(st.sampled_from([b"server", b"date", b"x-a", b"x-b", b":status"]),
                                 st.sampled_from([b"", b"1", b"ember", b"x" * 40, b"200"])),
                       max_size=8)


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(st.tuples(_pool_pairs, st.sampled_from([None, 0, 60, 100, 200, 4096])),
                       min_size=1, max_size=25))
def test_encoder_table_index_under_repeats_and_evictions(mod, blocks):
    """The encoder's lookup of table entries (kept beside the table) stays in step with it
    while the same fields repeat, entries are evicted and the table is resized: hpack
    decodes every block back to the fields sent."""
    ours, theirs = mod.Encoder(), hpack.Decoder()
    for headers, resize in blocks:
        if resize is not None:
            ours.header_table_size = resize
        assert [tuple(h) for h in theirs.decode(ours.encode(headers), raw=True)] == headers


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(st.tuples(_pool_pairs, st.sampled_from([None, None, 0, 60, 200, 4096])),
                       min_size=1, max_size=30))
def test_encoder_block_cache_never_reuses_a_stale_block(mod, blocks):
    """``encode_cached`` (the server's repeated responses) reuses a block only while
    the table is the one it was encoded against: under repeats, insertions, evictions
    and resizes, hpack decodes every block back to the fields sent."""
    ours, theirs = mod.Encoder(), hpack.Decoder()
    for headers, resize in blocks:
        if resize is not None:
            ours.header_table_size = resize
        for _ in range(2):  # the second time from the cache when the table did not move
            block = ours.encode_cached(tuple(headers), headers)
            assert [tuple(h) for h in theirs.decode(block, raw=True)] == headers


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(_pool_pairs, st.integers(min_value=0, max_value=30),
                                st.sampled_from([None, None, 0, 100, 4096])),
                      min_size=1, max_size=30))
def test_decoder_block_cache_against_hpack(mod, steps):
    """The decoder remembers blocks that did not change its table; the same bytes later
    may mean other fields (an insertion shifts every dynamic index): replaying earlier
    blocks, ours gives what hpack gives, or both refuse."""
    encoder = hpack.Encoder()
    ours, theirs = mod.Decoder(), hpack.Decoder()
    sent: list[bytes] = []
    for headers, replay, resize in steps:
        if resize is not None:
            encoder.header_table_size = resize
        sent.append(encoder.encode(headers, huffman=False))
        for block in (sent[-1], sent[replay % len(sent)], sent[-1]):
            try:
                expected = [tuple(h) for h in theirs.decode(block, raw=True)]
            except (hpack.HPACKError, IndexError):
                expected = None
            try:
                got = ours.decode(block)
            except mod.HPACKError:
                got = None
            assert got == expected


@pytest.mark.parametrize("mod", TWINS)
def test_decoder_cache_keeps_the_header_list_bound(mod):
    """A block remembered under a larger bound is refused once the bound is lower, and
    each call returns its own list (a caller may change it)."""
    block = b"\x00\x03x-a\x64" + b"v" * 100  # a literal without indexing: cacheable
    dec = mod.Decoder(max_header_list_size=1000)
    first = dec.decode(block)
    first.append((b"x", b"y"))
    assert dec.decode(block) == [(b"x-a", b"v" * 100)]
    dec.max_header_list_size = 50
    with pytest.raises(mod.HPACKError):
        dec.decode(block)
