# Augmenting declarations for _request_py.py compiled as _request_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  Request is an extension type (not final: users may
# subclass it) with a freelist; its attributes are ``public`` object fields, so reading,
# setting and subclassing behave as the pure class's slots do.  The connection builds it
# with ``new_request`` (no ``__init__`` argument parsing, fields set as struct stores).
cimport cython
from libc.string cimport memchr
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE


@cython.freelist(64)
cdef class Request:
    cdef public object _allowed, _authority, _body, _client, _cookies, _cycle, _form
    cdef public object _headers, _json, _leaving, _path, _peer, _query, _raw_headers
    cdef public object _session, _state, app, http_minor, method, path_params
    cdef public object query_string, raw_path, route, scheme, session_data
    cdef object __weakref__

    @cython.locals(q=Py_ssize_t, h=Py_ssize_t, first=Py_ssize_t)
    cpdef _fill(self, method, target, headers, http_minor, peer, scheme, cycle)


@cython.locals(req=Request)
cpdef Request new_request(method, bytes target, list headers, http_minor, peer, scheme, cycle,
                          app, router)


cdef inline Py_ssize_t _c_find_byte(bytes data, unsigned char c) noexcept:
    """Like ``data.find(bytes([c]))``."""
    cdef const char* buf = PyBytes_AS_STRING(data)
    cdef const char* p = <const char*>memchr(buf, c, <size_t>PyBytes_GET_SIZE(data))
    return -1 if p == NULL else p - buf


cdef inline Py_ssize_t _c_first_byte(bytes data) noexcept:
    """``data[0]``, or -1 when empty."""
    if PyBytes_GET_SIZE(data) == 0:
        return -1
    return <unsigned char>PyBytes_AS_STRING(data)[0]
