# cython: annotation_typing=False
"""How the exchange core writes HTTP/1.1 (pure-Python reference).

Compiled by Cython as ``_h1sink_c``.  :class:`Http1Sink` is the HTTP/1.1 connection's
side of :class:`~ember.http.sink.Sink`: it frames answers (whole responses encoded
in one C buffer, chunked streaming bodies, the ``100 Continue`` interim answer, error
answers) and batches its output: every response produced by one read goes out in one
``write()``, and the responses of a pipelined read are held together until the
pipeline drains (bounded by :data:`OUT_BATCH`, and written as soon as a handler
waits).  The connection itself (parsing, pipelining, flow control, timers) is
:class:`~ember.http.protocol.HttpProtocol`, which derives from it and owns the
attributes declared here; the exchange core calls these methods through the C vtable
of :class:`~ember.http.sinkbase.SinkBase`.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember.http.cycle import BODY_COMPLETE
from ember.http.errors import ERROR_CONTENT_TYPE, error_body
from ember.http.writer import (
    LAST_CHUNK,
    encode_chunk,
    encode_framed,
    encode_head,
    encode_response,
    encode_result,
)

if not cython.compiled:
    # NOTE: compiled, SinkBase is the C type cimported by _h1sink_c.pxd (a named import
    # would assign to it: Cython refuses)
    from ember.http._sinkbase_py import *  # noqa: F403 - the pure twin beside the pure twin

__all__ = ["Http1Sink"]  # NOTE: what _protocol_py star-imports (pure twin)

OUT_BATCH = 64 * 1024  # bytes batched within one read before they are written
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Http1Sink(SinkBase):  # noqa: F405
    """HTTP/1.1 framing and output batching; see the module docstring."""

    def _close(self) -> None:
        """Flush and close the connection (the connection implements it)."""
        raise NotImplementedError

    @property
    def peer(self) -> Any:
        """The client's ``(host, port)``."""
        return self._peer

    def send_continue(self, req: Any) -> None:
        """``Expect: 100-continue``: the handler started reading, invite the body."""
        current = self._current
        if current is not None and current.request is req and not self.closed \
                and not current.head_sent:
            self._flush()  # NOTE: after any earlier response still batched
            self._transport.write(_CONTINUE)

    def _write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
            self._out_size += len(data)
            if self._out_size > OUT_BATCH:
                pipelining = self._pipelining
                self._flush()  # NOTE: batch for speed, never hold much
                self._out = []
                self._pipelining = pipelining
        elif not self.closed:
            self._transport.write(data)

    def _flush(self) -> None:
        out = self._out
        if out is not None:
            self._out = None
            self._out_size = 0
            self._pipelining = False
            if out and not self.closed:
                self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _after_answer(self) -> None:
        """A pipeline batch goes out when drained, else one loop turn later (re-checked)."""
        if self._pipelining:
            if self.closed or (self._current is None and not self._running):
                # the pipeline is drained (or stalled on flow control).  NOTE: not while
                # _run_queue runs (an eager Task, 3.12+): it starts the next one now.
                self._flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._pipeline_flush)

    def _hold_pipeline(self) -> None:
        """More pipelined requests are queued: batch this response with theirs.

        PERF: without it, each response of a pipelined read is one ``send()``.  The
        batch is bounded by OUT_BATCH and written when the queue empties, when the
        connection closes, before a streaming response or a 100 Continue, and as soon
        as a handler waits (:meth:`_pipeline_flush`), so nothing is held behind a slow
        handler.
        """
        self._out = []
        self._out_size = 0
        self._pipelining = True

    def _pipeline_flush(self) -> None:
        """One loop turn later: write the batch unless the next handler has yet to run."""
        self._flush_scheduled = False
        if not self._pipelining or self.closed:
            return
        current = self._current
        if current is not None and self._starts != self._exchange.entered \
                and current.task is not None and not current.task.done():
            # NOTE: its Task was scheduled after this callback: wait for its first step
            self._flush_scheduled = True
            self._loop.call_soon(self._pipeline_flush)
            return
        self._flush()

    def _answer_simple(self, cycle: Any, status: int, text: str) -> None:
        """Answer ``cycle`` without running its handler (``417``)."""
        body = error_body(text)
        req = cycle.request
        minor = req.http_minor if req is not None else 1
        cycle.head_sent = True
        cycle.status = status
        self._write(
            encode_response(status, [(b"content-type", ERROR_CONTENT_TYPE)], body,
                            cycle.keep_alive, minor, self._state.date_header, cycle.head_only)
        )
        self._exchange.finish(cycle, status, len(body), None)

    def send_result(self, cycle: Any, result: Any) -> bool:
        """A plain result encoded in one C buffer (see ``encode_result``), or False
        (also when the connection is closed: nothing to answer)."""
        if self.closed:
            return False
        req = cycle.request
        if cycle.body_state != BODY_COMPLETE:
            cycle.keep_alive = False  # the unread rest of the body cannot be skipped safely
        data = encode_result(result, cycle.keep_alive, req.http_minor, self._state.date_header,
                             cycle.head_only)
        if data is None:
            return False
        if self._out is None and self._queue:
            self._hold_pipeline()
        self._write(data)
        return True

    def send_response(self, cycle: Any, status: int, raw_headers: list, body: bytes,
                      content_length: int) -> Any:
        """A whole response in one buffer (batched with a pipeline's others)."""
        req = cycle.request
        if cycle.body_state != BODY_COMPLETE:
            cycle.keep_alive = False  # the unread rest of the body cannot be skipped safely
        if content_length < 0 or (content_length == len(body) and status != 304):
            data = encode_response(status, raw_headers, body, cycle.keep_alive,
                                   req.http_minor, self._state.date_header, cycle.head_only)
        else:  # NOTE: an app's Content-Length on HEAD or 304 (it describes the GET)
            data = encode_framed(status, raw_headers, body, content_length, cycle.keep_alive,
                                 req.http_minor, self._state.date_header, cycle.head_only)
        if self._out is None and self._queue:
            self._hold_pipeline()
        self._write(data)
        return None

    def send_head(self, cycle: Any, status: int, raw_headers: list,
                  content_length: int) -> None:
        """A streaming response's head: chunked when its length is unknown (1.1)."""
        if self._pipelining:
            self._flush()  # NOTE: the earlier responses go out before a stream
        req = cycle.request
        if not cycle.head_only and content_length < 0:
            if req.http_minor == 0:
                cycle.keep_alive = False  # HTTP/1.0: the body ends when we close
            else:
                cycle.chunked = True
        head = encode_head(status, raw_headers, content_length, cycle.keep_alive,
                           req.http_minor, self._state.date_header, cycle.chunked)
        self._write(b"".join(head))

    async def send_body(self, cycle: Any, data: bytes) -> None:
        """One body chunk; waits while the transport's buffer is full."""
        self._write(encode_chunk(data) if cycle.chunked else data)
        if self._flow.write_paused:
            self._flush()
            await self._flow.drain()

    async def send_file(self, cycle: Any, file: Any, offset: int, count: int) -> bool:
        """``loop.sendfile`` (zero-copy) unless chunked or over TLS: False, read it."""
        self._flush()
        transport = self._transport
        if cycle.chunked or transport.get_extra_info("sslcontext") is not None:
            return False
        try:
            await self._loop.sendfile(transport, file, offset, count)
        except (NotImplementedError, RuntimeError, AttributeError):
            return False
        return True

    def send_end(self, cycle: Any) -> None:
        """The terminating chunk when chunked; write what is batched."""
        if cycle.chunked and not self.closed:
            self._write(LAST_CHUNK)
        self._flush()

    def send_error(self, cycle: Any, status: int, reason: str) -> int:
        """The exchange failed: answer if nothing was sent, and close (or cancel a
        queued request's Task)."""
        if cycle is self._current:
            size = -1
            if status and not cycle.head_sent and not self.closed:
                body = error_body(reason)
                req = cycle.request
                cycle.head_sent = True
                cycle.status = status
                self._write(encode_response(
                    status, [(b"content-type", ERROR_CONTENT_TYPE)], body, False,
                    req.http_minor if req is not None else 1, self._state.date_header,
                    cycle.head_only))
                size = len(body)
            self._close()
            # NOTE: the cycle stays current, so connection_lost (one loop turn later)
            # cancels its Task: a reader woken with the error sees the error first.
            return size
        task = cycle.task
        if task is not None and not task.done():
            task.cancel()
        return -1
