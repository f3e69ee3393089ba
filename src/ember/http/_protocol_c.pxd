# Augmenting declarations for _protocol_py.py compiled as _protocol_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  Typed attributes turn every ``self._x`` of the hot
# path into a struct access (compiled untyped, each was a generic attribute lookup);
# ``public`` keeps them readable and settable from Python (h2, WebSockets, the worker,
# ember.testing and the tests use some of them).  ``final`` makes cpdef calls direct C calls.
cimport cython
from ember.http._cycle_c cimport Cycle
from ember.http._exchange_c cimport Exchange
from ember._request_c cimport Request
from ember.http._h1sink_c cimport Http1Sink

from ember.http._heads_c cimport check_head


@cython.final
cdef class HttpProtocol(Http1Sink):
    # NOTE: the output side (_state, _transport, _out, _exchange, _queue, _current...) is
    # declared in _h1sink_c.pxd
    cdef public object _app, _resolve, _dispatch, _upgrade, _router, _route_app
    cdef public object _limits, _scheme, _max_body, _body_timeout, _request_timeout
    cdef public double _header_timeout, _keep_alive_timeout
    cdef public object _parser
    cdef public bint _admitted, _http2
    cdef public bytes _held
    cdef public object _upgraded, _h2, _timer
    cdef public double _timer_when, _idle_since, _last_read, _run_deadline
    cdef public object _head_started
    cdef public double _min_rate, _rate_grace, _rate_since
    cdef public Py_ssize_t _rate_base
    cdef public object _receiving
    cdef object __weakref__

    cpdef _run_next(self)
    cpdef _start(self, Cycle cycle)
    cpdef _arm_timer(self, double when)
    # the sink (ember.http.sink): SinkBase's cpdef methods, called by the exchange core
    # through the C vtable (NOTE: an override may not be redeclared here; most are
    # Http1Sink's, exchange_done is the connection's)
    # NOTE: cpdef so its locals are typed; the parser still calls it through Python
    @cython.locals(cycle=Cycle, req=Request)
    cpdef on_headers(self, method, target, minor, headers, keep_alive, chunked,
                     content_length, upgrade, expect)

    @cython.locals(cycle=Cycle)
    cpdef _run_queue(self)
