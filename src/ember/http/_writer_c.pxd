# Augmenting declarations for _writer_py.py compiled as _writer_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; _c_simple is the C twin of encode_simple's join.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

cdef dict _STATUS_LINES
cdef bytes SERVER_HEADER, _CLOSE, _KEEP_ALIVE, _CHUNKED, _CT_TEXT, _CT_OCTET, _CT_JSON

cpdef bytes status_line(object status_code)

@cython.locals(t=type)
cpdef object encode_result(object result, bint keep_alive, Py_ssize_t http_minor,
                           bytes date_header, bint head_only)

@cython.locals(n=Py_ssize_t, found=bint)
cpdef object app_framing(object status_code, object headers, Py_ssize_t content_length,
                         bint head_only, bint streaming)

@cython.locals(out=object)
cpdef bytes encode_response(object status_code, object headers, object body, bint keep_alive,
                            Py_ssize_t http_minor, object date_header, bint head_only)

@cython.locals(no_body=bint, line=bytes)
cpdef bytes encode_simple(object status_code, object content_type, object body, bint keep_alive,
                          Py_ssize_t http_minor, object date_header, bint head_only)


cdef inline char* _put(char* dst, bytes piece) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(piece)
    memcpy(dst, PyBytes_AS_STRING(piece), n)
    return dst + n


cdef inline bytes _c_simple(bytes line, bytes date_header, bytes content_type, bytes body,
                            bint no_body, bint head_only, bint keep_alive,
                            Py_ssize_t http_minor):
    """status line, server, date, content-type, [content-length], [connection], body."""
    cdef char digits[24]
    cdef Py_ssize_t ndigits = 0
    cdef Py_ssize_t blen = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t v = blen
    cdef Py_ssize_t size
    cdef bytes conn = None
    cdef bytes out
    cdef char* dst
    cdef Py_ssize_t i
    if not keep_alive:
        conn = _CLOSE
    elif http_minor == 0:
        conn = _KEEP_ALIVE
    size = (PyBytes_GET_SIZE(line) + PyBytes_GET_SIZE(SERVER_HEADER)
            + PyBytes_GET_SIZE(date_header) + 14 + PyBytes_GET_SIZE(content_type) + 2 + 2)
    if not no_body:
        while True:
            digits[ndigits] = <char>(48 + v % 10)
            ndigits += 1
            v //= 10
            if v == 0:
                break
        size += 16 + ndigits + 2
        if not head_only:
            size += blen
    if conn is not None:
        size += PyBytes_GET_SIZE(conn)
    out = PyBytes_FromStringAndSize(NULL, size)
    dst = PyBytes_AS_STRING(out)
    dst = _put(dst, line)
    dst = _put(dst, SERVER_HEADER)
    dst = _put(dst, date_header)
    memcpy(dst, b"content-type: ", 14)
    dst += 14
    dst = _put(dst, content_type)
    dst[0] = 13
    dst[1] = 10
    dst += 2
    if not no_body:
        memcpy(dst, b"content-length: ", 16)
        dst += 16
        for i in range(ndigits):
            dst[i] = digits[ndigits - 1 - i]
        dst += ndigits
        dst[0] = 13
        dst[1] = 10
        dst += 2
    if conn is not None:
        dst = _put(dst, conn)
    dst[0] = 13
    dst[1] = 10
    dst += 2
    if not no_body and not head_only:
        memcpy(dst, PyBytes_AS_STRING(body), blen)
    return out


cdef inline object _c_response(bytes line, bytes date_header, list headers, bytes body,
                               bint no_body, bint head_only, bint keep_alive,
                               Py_ssize_t http_minor):
    """encode_response in one allocation; None when a header is not a pair of bytes."""
    cdef char digits[24]
    cdef Py_ssize_t ndigits = 0
    cdef Py_ssize_t blen = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t v = blen
    cdef Py_ssize_t size, i, n = len(headers)
    cdef bytes conn = None
    cdef object pair, name, value
    cdef bytes out
    cdef char* dst
    if not keep_alive:
        conn = _CLOSE
    elif http_minor == 0:
        conn = _KEEP_ALIVE
    size = (PyBytes_GET_SIZE(line) + PyBytes_GET_SIZE(SERVER_HEADER)
            + PyBytes_GET_SIZE(date_header) + 2)
    for i in range(n):
        pair = headers[i]
        if type(pair) is not tuple or len(<tuple>pair) != 2:
            return None
        name = (<tuple>pair)[0]
        value = (<tuple>pair)[1]
        if type(name) is not bytes or type(value) is not bytes:
            return None
        size += PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + 4
    if not no_body:
        while True:
            digits[ndigits] = <char>(48 + v % 10)
            ndigits += 1
            v //= 10
            if v == 0:
                break
        size += 16 + ndigits + 2
        if not head_only:
            size += blen
    if conn is not None:
        size += PyBytes_GET_SIZE(conn)
    out = PyBytes_FromStringAndSize(NULL, size)
    dst = PyBytes_AS_STRING(out)
    dst = _put(dst, line)
    dst = _put(dst, SERVER_HEADER)
    dst = _put(dst, date_header)
    for i in range(n):
        pair = headers[i]
        dst = _put(dst, <bytes>(<tuple>pair)[0])
        dst[0] = 58
        dst[1] = 32
        dst += 2
        dst = _put(dst, <bytes>(<tuple>pair)[1])
        dst[0] = 13
        dst[1] = 10
        dst += 2
    if not no_body:
        memcpy(dst, b"content-length: ", 16)
        dst += 16
        for i in range(ndigits):
            dst[i] = digits[ndigits - 1 - i]
        dst += ndigits
        dst[0] = 13
        dst[1] = 10
        dst += 2
    if conn is not None:
        dst = _put(dst, conn)
    dst[0] = 13
    dst[1] = 10
    dst += 2
    if not no_body and not head_only:
        memcpy(dst, PyBytes_AS_STRING(body), blen)
    return out
