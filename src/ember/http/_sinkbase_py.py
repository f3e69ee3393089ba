# cython: annotation_typing=False
"""The typed base a transport's sink may derive from (pure-Python reference).

Compiled by Cython as ``_sinkbase_c``.  The exchange core writes through any object
that implements :class:`~ember.http.sink.Sink`; one that derives from
:class:`SinkBase` (the HTTP/1.1 connection) is called through the C vtable of these
``cpdef`` methods instead of a Python method lookup and call per request (a Python
subclass overriding them still works: Cython dispatches to the override).  The
others (HTTP/2 and HTTP/3 streams, plain Python classes) are called as before.
"""

from __future__ import annotations

from typing import Any


class SinkBase:
    """The part of :class:`~ember.http.sink.Sink` the exchange core calls per request."""

    def __init__(self) -> None:
        #: True once the client is gone (see ``Sink.closed``)
        self.closed = False

    def send_result(self, cycle: Any, result: Any) -> bool:
        raise NotImplementedError("a sink implements send_result")

    def send_response(self, cycle: Any, status: int, raw_headers: list, body: bytes,
                      content_length: int) -> Any:
        raise NotImplementedError("a sink implements send_response")

    def send_head(self, cycle: Any, status: int, raw_headers: list,
                  content_length: int) -> None:
        raise NotImplementedError("a sink implements send_head")

    def send_end(self, cycle: Any) -> None:
        raise NotImplementedError("a sink implements send_end")

    def send_error(self, cycle: Any, status: int, reason: str) -> int:
        raise NotImplementedError("a sink implements send_error")

    def exchange_done(self, cycle: Any) -> None:
        raise NotImplementedError("a sink implements exchange_done")


__all__ = ["SinkBase"]
