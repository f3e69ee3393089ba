# Augmenting declarations for _exchange_py.py compiled as _exchange_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  The exchange core runs once per request on every
# transport: typed attributes and cpdef methods, so the compiled HTTP/1.1 protocol (which
# cimports Exchange) calls start/fail/finish/timeout as C calls and the cycle's fields are
# struct reads.  The sink (cycle.conn) stays a Python object: any transport may be one.
cimport cython
from ember.http._cycle_c cimport Cycle

cdef bint _EAGER
cdef Py_ssize_t QUEUED, RUNNING, SENDING, DONE, ERROR, BODY_COMPLETE


@cython.final
@cython.freelist(16)
cdef class BodyWriter:
    cdef public Cycle _cycle
    cdef public object _sink


@cython.final
cdef class Exchange:
    cdef public Py_ssize_t entered
    cdef public object _app, _dispatch, _state, _loop
    cdef public dict _kinds
    cpdef start(self, Cycle cycle)
    cpdef timeout(self, Cycle cycle)
    @cython.locals(length=Py_ssize_t)
    cpdef _respond(self, Cycle cycle, response)
    cpdef finish(self, Cycle cycle, status, size, response)
    cpdef fail(self, Cycle cycle, status, reason)
    cpdef log(self, Cycle cycle, status, size, note=*, req=*)
