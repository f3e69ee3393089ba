# cython: annotation_typing=False
"""HPACK (RFC 7541): header compression for HTTP/2, the pure-Python reference.

The same file is compiled by Cython as ``_hpack_c`` (``_hpack_c.pxd`` types it);
``ember.http.hpack`` picks the compiled twin unless ``EMBER_NO_EXTENSIONS`` is set.

* :class:`Decoder` — header blocks to ``(name, value)`` byte pairs: the static and
  dynamic tables, Huffman (a 4-bit state machine built from Appendix B at import),
  table-size updates (only at the start of a block, never above what we allowed),
  and a bound on the decoded header list (name + value + 32 per field, RFC 9113
  §6.5.2) checked while decoding, so an HPACK bomb stops at the bound.
* :class:`Encoder` — pairs to a block: fully indexed when the table has the pair,
  incremental indexing otherwise (never for a pair marked ``indexable = False``, as
  ``h2`` marks secrets, nor for one too big to fit), Huffman when asked.

Errors raise :class:`HPACKError` (a subclass says which); the connection answers
``COMPRESSION_ERROR`` (RFC 9113 §4.3).
"""

from __future__ import annotations


class HPACKError(Exception):
    """A header block that cannot be decoded (COMPRESSION_ERROR)."""


class HeaderListTooLarge(HPACKError):
    """The decoded header list passed ``max_header_list_size``."""


class InvalidTableSize(HPACKError):
    """A dynamic table size update above the allowed size, or in the wrong place."""


DEFAULT_TABLE_SIZE = 4096
# NOTE: integers longer than this many continuation bytes (values >= 2**35) are refused:
# nothing in HTTP/2 needs them, and an unbounded loop over 0x80 bytes is a cheap DoS.
_MAX_INT_BYTES = 5

STATIC_TABLE = (
    (b':authority', b''), (b':method', b'GET'), (b':method', b'POST'), (b':path', b'/'),
    (b':path', b'/index.html'), (b':scheme', b'http'), (b':scheme', b'https'),
    (b':status', b'200'), (b':status', b'204'), (b':status', b'206'), (b':status', b'304'),
    (b':status', b'400'), (b':status', b'404'), (b':status', b'500'),
    (b'accept-charset', b''), (b'accept-encoding', b'gzip, deflate'),
    (b'accept-language', b''), (b'accept-ranges', b''), (b'accept', b''),
    (b'access-control-allow-origin', b''), (b'age', b''), (b'allow', b''),
    (b'authorization', b''), (b'cache-control', b''), (b'content-disposition', b''),
    (b'content-encoding', b''), (b'content-language', b''), (b'content-length', b''),
    (b'content-location', b''), (b'content-range', b''), (b'content-type', b''),
    (b'cookie', b''), (b'date', b''), (b'etag', b''), (b'expect', b''), (b'expires', b''),
    (b'from', b''), (b'host', b''), (b'if-match', b''), (b'if-modified-since', b''),
    (b'if-none-match', b''), (b'if-range', b''), (b'if-unmodified-since', b''),
    (b'last-modified', b''), (b'link', b''), (b'location', b''), (b'max-forwards', b''),
    (b'proxy-authenticate', b''), (b'proxy-authorization', b''), (b'range', b''),
    (b'referer', b''), (b'refresh', b''), (b'retry-after', b''), (b'server', b''),
    (b'set-cookie', b''), (b'strict-transport-security', b''), (b'transfer-encoding', b''),
    (b'user-agent', b''), (b'vary', b''), (b'via', b''), (b'www-authenticate', b''),
)
_STATIC_LEN = len(STATIC_TABLE)
_STATIC_PAIR = {pair: i + 1 for i, pair in reversed(list(enumerate(STATIC_TABLE)))}
_STATIC_NAME = {name: i + 1 for i, (name, _) in reversed(list(enumerate(STATIC_TABLE)))}
# NOTE: name -> (its first index, {value: index}): the encoder finds a field with two
# lookups keyed on bytes (hashes cached) instead of hashing a (name, value) tuple.
_STATIC_BY_NAME: dict = {}
for _i, (_name, _value) in enumerate(STATIC_TABLE):
    _STATIC_BY_NAME.setdefault(_name, (_i + 1, {}))[1].setdefault(_value, _i + 1)
del _i, _name, _value

# Appendix B: (code, bit length) of each byte value, then EOS (256).
_HUFFMAN = (
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28),
    (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), (0xfffffe8, 28), (0xffffea, 24),
    (0x3ffffffc, 30), (0xfffffe9, 28), (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28),
    (0xfffffec, 28), (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), (0xffffff4, 28),
    (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28),
    (0xffffffa, 28), (0xffffffb, 28), (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), (0x3fa, 10), (0x3fb, 10), (0xf9, 8),
    (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6), (0x0, 5), (0x1, 5), (0x2, 5),
    (0x19, 6), (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6), (0x1e, 6), (0x1f, 6), (0x5c, 7),
    (0xfb, 8), (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), (0x1ffa, 13), (0x21, 6),
    (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7), (0x63, 7), (0x64, 7),
    (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7), (0x6b, 7), (0x6c, 7),
    (0x6d, 7), (0x6e, 7), (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), (0xfc, 8), (0x73, 7),
    (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13),
    (0xffffffc, 28), (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), (0x3fffd6, 22),
    (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23),
    (0xffffeb, 24), (0x7fffdf, 23), (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22),
    (0x7fffe0, 23), (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), (0x3fffd9, 22),
    (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), (0x3fffda, 22), (0x1fffdd, 21),
    (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23),
    (0x1fffde, 21), (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23), (0x1fffe0, 21),
    (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), (0x7fffed, 23), (0x3fffe1, 22),
    (0x7fffee, 23), (0x7fffef, 23), (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22),
    (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), (0x3fffe7, 22),
    (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25), (0x3ffffe2, 26), (0x3ffffe3, 26),
    (0x3ffffe4, 26), (0x7ffffde, 27), (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24),
    (0x1ffffed, 25), (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24), (0x1fffe4, 21),
    (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28), (0x7ffffe3, 27),
    (0x7ffffe4, 27), (0x7ffffe5, 27), (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20),
    (0x1fffe6, 21), (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24),
    (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23), (0x3ffffeb, 26), (0x7ffffe6, 27),
    (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27),
    (0x7ffffea, 27), (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), (0x3fffffff, 30),
)
_HCODE = [c for c, _ in _HUFFMAN]
_HLEN = [n for _, n in _HUFFMAN]


def _build_decoder() -> tuple[list, list, list]:
    """The Huffman decoder as a state machine read 4 bits at a time (as nghttp2 does).

    States are the inner nodes of the code tree (0 = root).  For state ``s`` and nibble
    ``n``, ``_HNEXT[s*16+n]`` is the next state and ``_HSYM[s*16+n]`` the byte emitted (-1
    none, -2 EOS: an error).  A code is at least 5 bits, so a nibble emits at most one
    byte.  ``_HACCEPT[s]``: the input may end in state ``s`` (padding is a prefix of EOS,
    i.e. all ones, shorter than 8 bits: RFC 7541 §5.2).
    """
    left = [-1]
    right = [-1]
    sym = [-1]
    for s in range(257):
        code = _HCODE[s]
        node = 0
        for i in range(_HLEN[s] - 1, -1, -1):
            arr = right if (code >> i) & 1 else left
            if arr[node] == -1:
                arr[node] = len(sym)
                left.append(-1)
                right.append(-1)
                sym.append(-1)
            node = arr[node]
        sym[node] = s
    inner = [i for i in range(len(sym)) if sym[i] == -1]
    state_of = {node: k for k, node in enumerate(inner)}
    accept = [False] * len(inner)
    node = 0
    accept[0] = True
    for _ in range(7):
        node = right[node]
        accept[state_of[node]] = True
    nxt = [0] * (len(inner) * 16)
    out = [-1] * (len(inner) * 16)
    for k, start in enumerate(inner):
        for nib in range(16):
            node = start
            emitted = -1
            for i in (3, 2, 1, 0):
                node = right[node] if (nib >> i) & 1 else left[node]
                if sym[node] != -1:
                    if sym[node] == 256:
                        emitted = -2
                        node = 0
                        break
                    emitted = sym[node]
                    node = 0
            nxt[k * 16 + nib] = state_of[node]
            out[k * 16 + nib] = emitted
    return nxt, out, accept


_HNEXT, _HSYM, _HACCEPT = _build_decoder()


def huffman_encode(data: bytes) -> bytes:
    """``data`` Huffman-coded, padded with the EOS prefix (RFC 7541 §5.2)."""
    out = bytearray()
    acc = 0
    bits = 0
    for b in data:
        acc = (acc << _HLEN[b]) | _HCODE[b]
        bits += _HLEN[b]
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1
    if bits:
        out.append(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xFF)
    return bytes(out)


def huffman_encoded_length(data: bytes) -> int:
    """The length of ``huffman_encode(data)``, without encoding."""
    bits = 0
    for b in data:
        bits += _HLEN[b]
    return (bits + 7) >> 3


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman string; :class:`HPACKError` on EOS inside or bad padding."""
    out = bytearray()
    state = 0
    for b in data:
        k = state * 16 + (b >> 4)
        s = _HSYM[k]
        if s == -2:
            raise HPACKError("EOS symbol inside a Huffman string")
        if s >= 0:
            out.append(s)
        state = _HNEXT[k]
        k = state * 16 + (b & 0x0F)
        s = _HSYM[k]
        if s == -2:
            raise HPACKError("EOS symbol inside a Huffman string")
        if s >= 0:
            out.append(s)
        state = _HNEXT[k]
    if not _HACCEPT[state]:
        raise HPACKError("invalid Huffman padding")
    return bytes(out)


def encode_integer(out: bytearray, value: int, prefix_bits: int, flags: int) -> None:
    """Append ``value`` with an N-bit prefix (RFC 7541 §5.1); ``flags`` fill the high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        out.append(flags | value)
        return
    out.append(flags | limit)
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def decode_integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """``(value, next position)`` of the integer at ``data[pos]`` (RFC 7541 §5.1)."""
    end = len(data)
    if pos >= end:
        raise HPACKError("header block ends inside an integer")
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    count = 0
    while True:
        if pos >= end:
            raise HPACKError("header block ends inside an integer")
        if count == _MAX_INT_BYTES:
            raise HPACKError("integer too large")
        b = data[pos]
        pos += 1
        count += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


# PERF: how many header blocks each side remembers, and the longest one (bytes)
_CACHED_BLOCKS = 64
_CACHED_BLOCK = 1024


class Decoder:
    """Decodes header blocks of one connection (the peer's encoder state mirrored)."""

    def __init__(self, max_header_list_size: int = 65536,
                 max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self._entries: list = []  # newest last
        self._size = 0
        self._max_size = max_table_size
        self.max_allowed_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        # PERF: blocks decoded before, while the table stayed the same (a client sends
        # the same block for the same request): block -> (epoch, limit, fields); the
        # epoch moves with every change of the dynamic table (insertion, size update).
        self._epoch = 0
        self._cache: dict = {}

    @property
    def header_table_size(self) -> int:
        """The dynamic table's current maximum size (set by the peer's updates)."""
        return self._max_size

    @property
    def table_size(self) -> int:
        """Bytes in the dynamic table (name + value + 32 per entry)."""
        return self._size

    def decode(self, data: bytes, raw: bool = True) -> list:
        """The ``(name, value)`` pairs of one complete header block, in order (a new
        list on every call)."""
        data = bytes(data)
        limit = self.max_header_list_size
        hit = self._cache.get(data)
        if hit is not None and hit[0] == self._epoch and hit[1] == limit:
            return list(hit[2])
        epoch = self._epoch
        headers = self._decode(data, limit)
        if self._epoch == epoch and len(data) <= _CACHED_BLOCK:
            # NOTE: this block did not change the table, so decoding it again while the
            # table is the same gives the same fields (an oversized list raised above)
            if len(self._cache) >= _CACHED_BLOCKS:
                self._cache.clear()
            self._cache[data] = (epoch, limit, tuple(headers))
        return headers

    def _decode(self, data: bytes, limit: int) -> list:
        headers = []
        pos = 0
        end = len(data)
        total = 0
        first = True
        while pos < end:
            b = data[pos]
            if b & 0x80:
                if b != 0xFF:  # NOTE: an index below 127 is one byte: no tuple for it
                    index = b & 0x7F
                    pos += 1
                else:
                    index, pos = decode_integer(data, pos, 7)
                if index == 0:
                    raise HPACKError("indexed field with index 0")
                entry = self._get(index)
                name = entry[0]
                value = entry[1]
                first = False
                total += len(name) + len(value) + 32
                if total > limit:
                    raise HeaderListTooLarge(f"header list larger than {limit} bytes")
                headers.append(entry)
                continue
            elif b & 0x40:
                index, pos = decode_integer(data, pos, 6)
                if index:
                    name = self._get(index)[0]
                else:
                    name, pos = self._string(data, pos)
                value, pos = self._string(data, pos)
                self._add(name, value)
            elif b & 0x20:
                if not first:
                    raise InvalidTableSize("dynamic table size update after a header field")
                size, pos = decode_integer(data, pos, 5)
                if size > self.max_allowed_table_size:
                    raise InvalidTableSize(f"dynamic table size update to {size}, above "
                                           f"the allowed {self.max_allowed_table_size}")
                self._max_size = size
                self._epoch += 1
                self._evict(0)
                continue
            else:  # without indexing (0000) or never indexed (0001)
                index, pos = decode_integer(data, pos, 4)
                if index:
                    name = self._get(index)[0]
                else:
                    name, pos = self._string(data, pos)
                value, pos = self._string(data, pos)
            first = False
            total += len(name) + len(value) + 32
            if total > limit:
                raise HeaderListTooLarge(f"header list larger than {limit} bytes")
            headers.append((name, value))
        return headers

    def _string(self, data: bytes, pos: int) -> tuple[bytes, int]:
        if pos >= len(data):
            raise HPACKError("header block ends before a string")
        huffman = data[pos] & 0x80
        length, pos = decode_integer(data, pos, 7)
        if pos + length > len(data):
            raise HPACKError("string longer than the header block")
        if length > self.max_header_list_size:
            raise HeaderListTooLarge(f"header list larger than {self.max_header_list_size} "
                                     "bytes")
        raw = data[pos:pos + length]
        return (huffman_decode(raw) if huffman else raw), pos + length

    def _get(self, index: int) -> tuple:
        if index <= _STATIC_LEN:
            return STATIC_TABLE[index - 1]
        dyn = index - _STATIC_LEN
        if dyn > len(self._entries):
            raise HPACKError(f"header table index {index} out of range")
        return self._entries[len(self._entries) - dyn]

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 32
        self._epoch += 1
        if size > self._max_size:
            self._entries.clear()
            self._size = 0
            return
        self._evict(size)
        self._entries.append((name, value))
        self._size += size

    def _evict(self, room: int) -> None:
        entries = self._entries
        while entries and self._size + room > self._max_size:
            name, value = entries.pop(0)
            self._size -= len(name) + len(value) + 32


class Encoder:
    """Encodes header lists for one connection."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self._entries: list = []  # newest last
        # NOTE: what _find looks up instead of scanning the table: name -> [the newest
        # insertion number with that name, {value: insertion number}]; entry number n
        # sits at index STATIC_LEN + inserted - n.  Kept in step by _add and _evict.
        self._names: dict = {}
        self._inserted = 0
        self._size = 0
        self._max_size = max_table_size  # NOTE: agreed beforehand, so not announced
        self._pending_min = -1  # table size updates to announce (-1: none)
        self._pending_final = -1
        # PERF: blocks of header lists encoded before (see encode_cached); the epoch
        # moves with every change of the dynamic table (insertion, eviction, size)
        self._epoch = 0
        self._cache: dict = {}

    @property
    def header_table_size(self) -> int:
        """The table size this encoder uses (at most the peer's SETTINGS value)."""
        return self._max_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        if value < 0:
            raise ValueError("header_table_size must be >= 0")
        # RFC 7541 §4.2: announce the smallest size reached, then the final one.
        if self._pending_min < 0 or value < self._pending_min:
            self._pending_min = value
        self._pending_final = value
        self._max_size = value
        self._epoch += 1
        self._evict(0)

    def encode(self, headers: object, huffman: bool = True) -> bytes:
        """One header block for ``headers`` (pairs of bytes or str)."""
        out = bytearray()
        if self._pending_min >= 0:
            encode_integer(out, self._pending_min, 5, 0x20)
            if self._pending_final != self._pending_min:
                encode_integer(out, self._pending_final, 5, 0x20)
            self._pending_min = self._pending_final = -1
        for header in headers:
            name = header[0]
            value = header[1]
            if type(name) is not bytes:
                name = name.encode("utf-8") if isinstance(name, str) else bytes(name)
            if type(value) is not bytes:
                value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            indexable = True if type(header) is tuple else getattr(header, "indexable", True)
            self._field(out, name, value, indexable, huffman)
        return bytes(out)

    def encode_cached(self, key: object, headers: object) -> bytes:
        """:meth:`encode` of ``headers``, which ``key`` (hashable) stands for: a block
        encoded before under ``key`` is reused while the table is the same (a block
        that changed the table when it was encoded is never reused)."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self._epoch and self._pending_min < 0:
            return hit[1]
        epoch = self._epoch
        pending = self._pending_min >= 0
        block = self.encode(headers)
        if self._epoch == epoch and not pending:
            if len(self._cache) >= _CACHED_BLOCKS:
                self._cache.clear()
            self._cache[key] = (epoch, block)
        return block

    def _field(self, out: bytearray, name: bytes, value: bytes, indexable: bool,
               huffman: bool) -> None:
        index = self._find(name, value)
        if index > 0 and indexable:
            encode_integer(out, index, 7, 0x80)
            return
        # NOTE: a full match that must not be indexed is sent as a literal on its name.
        name_index = -index if index < 0 else index
        size = len(name) + len(value) + 32
        if not indexable:
            encode_integer(out, name_index, 4, 0x10)
        elif size <= self._max_size * 3 // 4:
            encode_integer(out, name_index, 6, 0x40)
            self._add(name, value, size)
        else:
            encode_integer(out, name_index, 4, 0x00)
        if not name_index:
            _encode_string(out, name, huffman)
        _encode_string(out, value, huffman)

    def _find(self, name: bytes, value: bytes) -> int:
        """Index of the pair (> 0), of the name only (< 0), or 0: the static table first,
        then the newest dynamic entry."""
        static = _STATIC_BY_NAME.get(name)
        if static is not None:
            values = static[1]
            index = values.get(value, 0)
            if index:
                return index
        dynamic = self._names.get(name)
        if dynamic is not None:
            values = dynamic[1]
            number = values.get(value, -1)
            if number >= 0:
                return _STATIC_LEN + self._inserted - number
        if static is not None:
            return -static[0]
        if dynamic is not None:
            return -(_STATIC_LEN + self._inserted - dynamic[0])
        return 0

    def _add(self, name: bytes, value: bytes, size: int) -> None:
        self._epoch += 1
        self._evict(size)
        self._entries.append((name, value))
        number = self._inserted
        dynamic = self._names.get(name)
        if dynamic is None:
            self._names[name] = [number, {value: number}]
        else:
            dynamic[0] = number
            values = dynamic[1]
            values[value] = number
        self._inserted = number + 1
        self._size += size

    def _evict(self, room: int) -> None:
        entries = self._entries
        while entries and self._size + room > self._max_size:
            number = self._inserted - len(entries)
            entry = entries.pop(0)
            name = entry[0]
            value = entry[1]
            self._size -= len(name) + len(value) + 32
            dynamic = self._names[name]
            if dynamic[0] == number:  # its newest entry: no other one with that name is left
                del self._names[name]
            else:
                values = dynamic[1]
                if values.get(value, -1) == number:
                    del values[value]


def _encode_string(out: bytearray, data: bytes, huffman: bool) -> None:
    if huffman:
        coded = huffman_encode(data)
        if len(coded) <= len(data):
            encode_integer(out, len(coded), 7, 0x80)
            out += coded
            return
    encode_integer(out, len(data), 7, 0)
    out += data
