# Augmenting declarations for _h1sink_py.py compiled as _h1sink_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  Not final: HttpProtocol (the connection) derives from
# it; the attributes it shares with the connection are declared here, typed, ``public``
# so h2, WebSockets, ember.testing and the tests keep reading them.  The SinkBase methods
# it implements are called by the exchange core through the vtable.
cimport cython
from ember.http._cycle_c cimport Cycle
from ember.http._exchange_c cimport Exchange
from ember.http._sinkbase_c cimport SinkBase
from ember.http._state_c cimport ServerState


cdef class Http1Sink(SinkBase):
    cdef public ServerState _state
    cdef public object _transport, _flow, _loop, _peer
    cdef public Exchange _exchange
    cdef public list _out
    cdef public Py_ssize_t _out_size, _starts
    cdef public bint _pipelining, _flush_scheduled, _running
    cdef public object _queue, _current

    cpdef _close(self)
    cpdef _write(self, bytes data)
    cpdef _flush(self)
    cpdef _hold_pipeline(self)
    cpdef _after_answer(self)
    cpdef _answer_simple(self, Cycle cycle, status, text)
