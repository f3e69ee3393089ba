# Augmenting declarations for _cycle_py.py compiled as _cycle_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  One Cycle per request: a final cdef class with a
# freelist (no allocator call, no Python __init__ frame) and typed attributes, which the
# compiled protocol reads as struct fields (it cimports this type).
cimport cython
from ember._request_c cimport Request


@cython.final
@cython.freelist(64)
cdef class Cycle:
    cdef public object conn
    # NOTE: typed, so the compiled protocol reads ``cycle.request.route`` as struct fields
    cdef public Request request
    cdef public Py_ssize_t state, body_state, buffered, received
    cdef public object limit
    cdef public bint keep_alive, expect_continue, expectation_failed, stream_used
    cdef public bint disconnected, head_sent, head_only, chunked
    cdef public object task, timeout, status
    cdef public Py_ssize_t sent
    cdef public list _chunks
    cdef public object _small, _waiter, _error

    cpdef Py_ssize_t feed(self, chunk) except -1
    cpdef finish(self)
    cpdef fail_body(self, status, reason)
    cpdef lost(self)
    cpdef _wake(self)
