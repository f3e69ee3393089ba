# Augmenting declarations for _h2conn_py.py compiled as _h2conn_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; this file only adds C types.  Typed attributes turn
# every ``self._x`` of the per-frame path into a struct access, ``cdef`` methods into
# direct C calls; ``public`` keeps what ember.http.h2 and the tests read or set
# reachable from Python.
cimport cython
from ember.http._frames_c cimport _c_put_head

cdef object F
cdef bytes PREFACE, _NAME_OK, _BAD_NAME_BYTES
cdef Py_ssize_t DEFAULT_WINDOW, MAX_WINDOW, MAX_CONTINUATIONS
cdef frozenset _CONNECTION_FIELDS, _REQUEST_PSEUDO
cdef object _HEAD
cdef Py_ssize_t _DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _PING
cdef Py_ssize_t _GOAWAY, _WINDOW_UPDATE, _CONTINUATION, _ERROR
cdef Py_ssize_t _FLAG_END_STREAM, _FLAG_ACK, _FLAG_END_HEADERS
cdef Py_ssize_t _PROTOCOL_ERROR, _FLOW_CONTROL_ERROR, _STREAM_CLOSED, _COMPRESSION_ERROR
cdef Py_ssize_t _ENHANCE_YOUR_CALM
cdef Py_ssize_t _SETTINGS_INITIAL_WINDOW_SIZE, _SETTINGS_MAX_FRAME_SIZE
cdef Py_ssize_t _SETTINGS_HEADER_TABLE_SIZE


cdef class _Event:
    pass


@cython.final
cdef class RequestReceived(_Event):
    cdef public object stream_id, headers, stream_ended, priority_updated


@cython.final
cdef class DataReceived(_Event):
    cdef public object stream_id, data, flow_controlled_length, stream_ended


@cython.final
cdef class StreamEnded(_Event):
    cdef public object stream_id


@cython.final
cdef class StreamReset(_Event):
    cdef public object stream_id, error_code, remote_reset


@cython.final
cdef class WindowUpdated(_Event):
    cdef public object stream_id, delta


@cython.final
cdef class RemoteSettingsChanged(_Event):
    cdef public object changed_settings


@cython.final
cdef class SettingsAcknowledged(_Event):
    pass


@cython.final
cdef class PingReceived(_Event):
    cdef public object ping_data


@cython.final
cdef class ConnectionTerminated(_Event):
    cdef public object error_code, last_stream_id, additional_data


@cython.final
cdef class Stream:
    cdef public Py_ssize_t id, inbound, inbound_unacked, outbound, content_length, received
    cdef public bint local_closed, remote_closed, trailers


@cython.final
cdef class H2Connection:
    cdef public Py_ssize_t local_max_concurrent_streams, local_max_header_list_size
    cdef public Py_ssize_t local_initial_window, local_max_frame_size
    cdef public object reader, decoder, encoder
    cdef public dict streams
    cdef public bytearray _out
    cdef bytes _preface
    cdef bint _preface_done, _settings_seen
    cdef public bint closed
    cdef public Py_ssize_t highest_inbound, outbound_window, inbound_window, _inbound_unacked
    cdef public Py_ssize_t remote_initial_window, max_outbound_frame_size
    cdef public dict _recently_reset
    cdef list _block
    cdef Py_ssize_t _block_sid, _block_flags, _block_size, _block_frames

    @cython.locals(frame=tuple)
    cpdef list receive_data(self, object data)

    @cython.locals(ftype=Py_ssize_t, changed=dict)
    cdef _frame(self, tuple frame, list events)

    @cython.locals(delta=Py_ssize_t, stream=Stream)
    cdef dict _apply_settings(self, list pairs)

    @cython.locals(sid=Py_ssize_t, flags=Py_ssize_t)
    cdef _headers(self, tuple frame, list events)

    cdef _continuation(self, tuple frame, list events)
    cdef _check_block_size(self)

    @cython.locals(headers=list, end=Py_ssize_t, stream=Stream, length=Py_ssize_t,
                   event=RequestReceived, ended=StreamEnded)
    cdef _header_block(self, Py_ssize_t sid, Py_ssize_t flags, bytes block, list events)

    @cython.locals(sid=Py_ssize_t, flow=Py_ssize_t, stream=Stream, end=Py_ssize_t,
                   event=DataReceived)
    cdef _data(self, tuple frame, list events)

    @cython.locals(ended=StreamEnded)
    cdef StreamEnded _remote_end(self, Stream stream, list events)

    @cython.locals(sid=Py_ssize_t)
    cdef _rst(self, tuple frame, list events)

    @cython.locals(sid=Py_ssize_t, increment=Py_ssize_t, stream=Stream)
    cdef _window_update(self, tuple frame, list events)

    cdef bint _idle(self, Py_ssize_t sid)
    cdef _stream_error(self, Py_ssize_t sid, Py_ssize_t code, list events)

    @cython.locals(recent=dict)
    cdef _remember_reset(self, Py_ssize_t sid, bint opened=*)

    cdef _fail(self, Py_ssize_t code, str message)
    cdef _give_back(self, Py_ssize_t amount)
    cdef _ack_connection(self)

    @cython.locals(stream=Stream)
    cpdef acknowledge_received_data(self, Py_ssize_t acknowledged_size, Py_ssize_t stream_id)

    @cython.locals(stream=Stream)
    cdef Stream _sendable(self, Py_ssize_t stream_id)

    @cython.locals(stream=Stream)
    cpdef send_headers(self, Py_ssize_t stream_id, list headers, bint end_stream=*)

    @cython.locals(stream=Stream)
    cpdef send_headers_cached(self, Py_ssize_t stream_id, object key, list headers,
                              bint end_stream=*)
    @cython.locals(stream=Stream, size=Py_ssize_t)
    cpdef send_data(self, Py_ssize_t stream_id, object data, bint end_stream=*)

    @cython.locals(stream=Stream)
    cpdef end_stream(self, Py_ssize_t stream_id)

    cdef _local_end(self, Stream stream)
    cdef _forget(self, Py_ssize_t stream_id)

    @cython.locals(stream=Stream)
    cpdef Py_ssize_t local_flow_control_window(self, Py_ssize_t stream_id) except? -1

    @cython.locals(data=bytes)
    cpdef bytes data_to_send(self)


@cython.locals(regular=bint, length=Py_ssize_t, name=bytes, value=bytes, header=tuple,
               method=object, scheme=object, path=object, authority=object)
cpdef Py_ssize_t _check_request(list headers) except? -3

@cython.locals(headers=list, size=Py_ssize_t, has_host=bint, name=bytes,
               value=bytes, method=object, path=object, authority=object)
cpdef tuple split_request(list fields, str scheme)

@cython.locals(n=Py_ssize_t)
cdef bint _bad_value(bytes value) except -1
cdef bint _bad_name(bytes name) except -1
cdef _put_head(bytearray out, Py_ssize_t length, Py_ssize_t ftype, Py_ssize_t flags,
               Py_ssize_t sid)


cdef inline bint _c_bad_value(bytes value) noexcept:
    cdef const unsigned char* p = <const unsigned char*>(<char*>value)
    cdef Py_ssize_t n = len(value)
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if c == 13 or c == 10 or c == 0:
            return True
    return False


cdef inline bint _c_bad_name(bytes name, bytes table) noexcept:
    cdef const unsigned char* p = <const unsigned char*>(<char*>name)
    cdef const unsigned char* ok = <const unsigned char*>(<char*>table)
    cdef Py_ssize_t n = len(name)
    cdef Py_ssize_t i
    for i in range(n):
        if not ok[p[i]]:
            return True
    return False
