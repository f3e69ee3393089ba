# Augmenting declarations for _frames_py.py compiled as _frames_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; this file only adds C types.
cimport cython


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
