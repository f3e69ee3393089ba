# Augmenting declarations for _frames_py.py compiled as _frames_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; this file only adds C types.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize


@cython.final
cdef class FrameReader:
    cdef public Py_ssize_t max_frame_size
    cdef bytes _buf
    cdef public bint failed

    @cython.locals(buf=bytes, frames=list, pos=Py_ssize_t, end=Py_ssize_t,
                   length=Py_ssize_t, ftype=Py_ssize_t, flags=Py_ssize_t, sid=Py_ssize_t,
                   payload=bytes)
    cpdef list feed(self, object data)


cdef tuple _error(Py_ssize_t code, Py_ssize_t sid, str message)

@cython.locals(pad=Py_ssize_t)
cdef object _unpad(Py_ssize_t flags, Py_ssize_t sid, bytes payload, str name)

@cython.locals(n=Py_ssize_t)
cdef object _parse(Py_ssize_t ftype, Py_ssize_t flags, Py_ssize_t sid, bytes payload)

@cython.locals(n=Py_ssize_t, i=Py_ssize_t, ident=Py_ssize_t, value=Py_ssize_t, pairs=list)
cdef tuple _parse_settings(Py_ssize_t flags, Py_ssize_t sid, bytes payload)

@cython.locals(high=Py_ssize_t)
cdef Py_ssize_t _u32(bytes data, Py_ssize_t i)
cdef Py_ssize_t _u31(bytes data, Py_ssize_t i)


cdef inline int _c_put_head(bytearray out, Py_ssize_t length, Py_ssize_t ftype,
                            Py_ssize_t flags, Py_ssize_t sid) except -1:
    """The 9-byte frame header, written in place at the end of ``out``."""
    cdef Py_ssize_t n = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, n + 9)
    cdef unsigned char* p = <unsigned char*>PyByteArray_AS_STRING(out) + n
    p[0] = (length >> 16) & 0xFF
    p[1] = (length >> 8) & 0xFF
    p[2] = length & 0xFF
    p[3] = ftype & 0xFF
    p[4] = flags & 0xFF
    p[5] = (sid >> 24) & 0x7F
    p[6] = (sid >> 16) & 0xFF
    p[7] = (sid >> 8) & 0xFF
    p[8] = sid & 0xFF
    return 0

cpdef put_frame_header(bytearray out, Py_ssize_t length, Py_ssize_t ftype, Py_ssize_t flags,
                       Py_ssize_t sid)
cpdef put_data(bytearray out, Py_ssize_t sid, bytes data, bint end_stream)
@cython.locals(size=Py_ssize_t, flags=Py_ssize_t)
cpdef put_headers(bytearray out, Py_ssize_t sid, bytes block, bint end_stream,
                  Py_ssize_t max_frame_size)
