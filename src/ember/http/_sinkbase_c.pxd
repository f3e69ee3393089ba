# Augmenting declarations for _sinkbase_py.py compiled as _sinkbase_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  Not final: the HTTP/1.1 connection derives from it
# and the exchange core (which cimports it) calls these methods through the vtable.
from ember.http._cycle_c cimport Cycle


cdef class SinkBase:
    cdef public bint closed
    cpdef bint send_result(self, Cycle cycle, result) except -1
    cpdef send_response(self, Cycle cycle, status, raw_headers, body, content_length)
    cpdef send_head(self, Cycle cycle, status, raw_headers, content_length)
    cpdef send_end(self, Cycle cycle)
    cpdef Py_ssize_t send_error(self, Cycle cycle, status, reason) except? -2
    cpdef exchange_done(self, Cycle cycle)
