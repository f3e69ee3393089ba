# Augmenting declarations for _exchange_py.py compiled as _exchange_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  The exchange core runs once per request on every
# transport: typed attributes and cpdef methods, so the compiled HTTP/1.1 protocol (which
# cimports Exchange) calls start/fail/finish/timeout as C calls and the cycle's fields are
# struct reads.  The sink (cycle.conn) stays a Python object: any transport may be one;
# one derived from SinkBase (the HTTP/1.1 connection) is called through its C vtable
# (the _c_* helpers below), any other through Python.  The worker's ServerState is typed:
# its counter and flags are struct fields.
cimport cython
from ember.http._cycle_c cimport Cycle
from ember.http._sinkbase_c cimport SinkBase
from ember.http._state_c cimport ServerState

cdef bint _EAGER
cdef Py_ssize_t QUEUED, RUNNING, SENDING, DONE, ERROR, BODY_COMPLETE
cdef Py_ssize_t _TABLE

cpdef bint _closed(sink) except -1


cdef inline bint _c_closed(object sink) except -1:
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).closed
    return bool(sink.closed)


cdef inline bint _c_send_result(object sink, Cycle cycle, object result) except -1:
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).send_result(cycle, result)
    return bool(sink.send_result(cycle, result))


cdef inline object _c_send_response(object sink, Cycle cycle, object status,
                                    object raw_headers, object body, object length):
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).send_response(cycle, status, raw_headers, body, length)
    return sink.send_response(cycle, status, raw_headers, body, length)


cdef inline object _c_send_head(object sink, Cycle cycle, object status,
                                object raw_headers, object length):
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).send_head(cycle, status, raw_headers, length)
    return sink.send_head(cycle, status, raw_headers, length)


cdef inline object _c_send_end(object sink, Cycle cycle):
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).send_end(cycle)
    return sink.send_end(cycle)


cdef inline Py_ssize_t _c_send_error(object sink, Cycle cycle, object status,
                                     object reason) except? -2:
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).send_error(cycle, status, reason)
    return sink.send_error(cycle, status, reason)


cdef inline object _c_exchange_done(object sink, Cycle cycle):
    if isinstance(sink, SinkBase):
        return (<SinkBase>sink).exchange_done(cycle)
    return sink.exchange_done(cycle)


@cython.final
@cython.freelist(16)
cdef class BodyWriter:
    cdef public Cycle _cycle
    cdef public object _sink


@cython.final
cdef class Exchange:
    cdef public Py_ssize_t entered
    cdef public object _app, _dispatch, _loop
    cdef public ServerState _state
    cdef public dict _kinds
    cpdef start(self, Cycle cycle)
    cpdef bint _send_result(self, Cycle cycle, result) except -1
    cpdef timeout(self, Cycle cycle)
    @cython.locals(length=Py_ssize_t)
    cpdef _respond(self, Cycle cycle, response)
    @cython.locals(state=ServerState)
    cpdef finish(self, Cycle cycle, status, size, response)
    cpdef fail(self, Cycle cycle, status, reason)
    @cython.locals(state=ServerState)
    cpdef log(self, Cycle cycle, status, size, note=*, req=*)
