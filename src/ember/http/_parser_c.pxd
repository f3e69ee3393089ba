# Augmenting declarations for _parser_py.py compiled as _parser_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; this file only adds C types and the C-only helpers
# used inside ``if cython.compiled:`` branches.
cimport cython
from libc.string cimport memchr
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cdef Py_ssize_t _S_HEAD, _S_BODY_LENGTH, _S_CHUNK_SIZE, _S_CHUNK_DATA, _S_CHUNK_DATA_END
cdef Py_ssize_t _S_TRAILERS, _S_UPGRADED, _S_ERROR
cdef Py_ssize_t _MAX_CHUNK_SIZE_DIGITS, _MAX_CHUNK_LINE, CHUNK_BUDGET
cdef dict _METHOD_STR
cdef bytes _TCHAR, _VCHAR


@cython.final
cdef class HttpRequestParser:
    cdef object _on_headers
    cdef object _on_body
    cdef object _on_message_complete
    cdef public Py_ssize_t max_header_size
    cdef public Py_ssize_t max_headers
    cdef public Py_ssize_t max_url_size
    cdef bytes _buf
    cdef Py_ssize_t _state
    cdef Py_ssize_t _remaining
    cdef Py_ssize_t _trailer_bytes
    cdef public bint yielded

    @cython.locals(pos=Py_ssize_t, end=Py_ssize_t, new=Py_ssize_t, n=Py_ssize_t,
                   state=Py_ssize_t, pending=object, budget=Py_ssize_t)
    cdef Py_ssize_t _parse(self, bytes data) except -2

    @cython.locals(idx=Py_ssize_t, line_end=Py_ssize_t, major=Py_ssize_t, minor=Py_ssize_t,
                   keep_alive=bint, chunked=bint, content_length=Py_ssize_t, te_seen=bint,
                   conn_upgrade=bint, n=Py_ssize_t, name=bytes, value=bytes, target=bytes,
                   method_b=bytes, headers=list, scanned=tuple, pair=tuple)
    cdef Py_ssize_t _parse_head(self, bytes data, Py_ssize_t pos, Py_ssize_t end) except -2

    @cython.locals(line_end=Py_ssize_t)
    cdef int _check_partial_head(self, bytes data, Py_ssize_t pos, Py_ssize_t end) except -1

    @cython.locals(line_end=Py_ssize_t, size=Py_ssize_t)
    cdef Py_ssize_t _parse_chunk_size(self, bytes data, Py_ssize_t pos,
                                      Py_ssize_t end) except -2

    @cython.locals(line_end=Py_ssize_t)
    cdef Py_ssize_t _parse_trailers(self, bytes data, Py_ssize_t pos, Py_ssize_t end) except -2


@cython.locals(i=Py_ssize_t, start=Py_ssize_t, stop=Py_ssize_t, vstart=Py_ssize_t,
               vend=Py_ssize_t, count=Py_ssize_t, c=cython.uchar, buf=cython.p_const_uchar,
               tchar=cython.p_const_uchar, vchar=cython.p_const_uchar, upper_seen=bint,
               headers=list, name=bytes, major=Py_ssize_t, minor=Py_ssize_t)
cdef tuple _scan_head(bytes data, Py_ssize_t pos, Py_ssize_t line_end, Py_ssize_t idx,
                      Py_ssize_t max_headers)


cdef inline Py_ssize_t _c_skip_crlf(bytes data, Py_ssize_t pos, Py_ssize_t end) noexcept:
    """``pos`` past any CRLF pairs (RFC 9112 §2.2: empty lines before the request-line)."""
    cdef const unsigned char* buf = <const unsigned char*>(<char*>data)
    while pos + 1 < end and buf[pos] == 13 and buf[pos + 1] == 10:
        pos += 2
    return pos


cdef inline Py_ssize_t _c_find_crlf(bytes data, Py_ssize_t pos, Py_ssize_t end) noexcept:
    """Like ``data.find(b"\\r\\n", pos, end)``."""
    cdef const unsigned char* buf = <const unsigned char*>(<char*>data)
    cdef const unsigned char* p
    while pos + 1 < end:
        p = <const unsigned char*>memchr(buf + pos, 13, <size_t>(end - pos - 1))
        if p == NULL:
            return -1
        pos = p - buf
        if buf[pos + 1] == 10:
            return pos
        pos += 1
    return -1


cdef inline Py_ssize_t _c_find_head_end(bytes data, Py_ssize_t pos, Py_ssize_t end) noexcept:
    """Like ``data.find(b"\\r\\n\\r\\n", pos, end)``."""
    cdef const unsigned char* buf = <const unsigned char*>(<char*>data)
    while True:
        pos = _c_find_crlf(data, pos, end)
        if pos < 0 or pos + 3 >= end:
            return -1
        if buf[pos + 2] == 13 and buf[pos + 3] == 10:
            return pos
        pos += 2


cdef inline bytes _c_lower_slice(bytes data, Py_ssize_t start, Py_ssize_t stop):
    """``data[start:stop].lower()`` in one allocation (ASCII A-Z only, like bytes.lower)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, stop - start)
    cdef char* dst = PyBytes_AS_STRING(out)
    cdef const unsigned char* src = <const unsigned char*>(<char*>data)
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(stop - start):
        c = src[start + i]
        dst[i] = <char>(c + 32 if 65 <= c <= 90 else c)
    return out


cdef inline Py_ssize_t _c_chunk_size(bytes data, Py_ssize_t pos, Py_ssize_t end) noexcept:
    """A plain chunk-size line ``[1-9a-fA-F][0-9a-fA-F]{0,14} CRLF`` (no leading zero,
    below 2^60): its size; 0 for anything else (the reference path decides)."""
    cdef const unsigned char* buf = <const unsigned char*>(<char*>data)
    cdef Py_ssize_t size = 0
    cdef Py_ssize_t i = pos
    cdef Py_ssize_t stop = pos + 15
    cdef unsigned char c
    if i < end and buf[i] == 48:  # "0": the last chunk or a leading zero
        return 0
    while i < end and i < stop:
        c = buf[i]
        if 48 <= c <= 57:
            size = size * 16 + (c - 48)
        elif 97 <= c <= 102:
            size = size * 16 + (c - 87)
        elif 65 <= c <= 70:
            size = size * 16 + (c - 55)
        else:
            break
        i += 1
    if i == pos or i + 1 >= end or buf[i] != 13 or buf[i + 1] != 10:
        return 0
    return size


cdef inline Py_ssize_t _c_hex_len(Py_ssize_t size) noexcept:
    """Hex digits of ``size`` > 0 (no leading zero)."""
    cdef Py_ssize_t n = 0
    while size:
        size >>= 4
        n += 1
    return n
