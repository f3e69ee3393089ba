"""The request a handler sees: :class:`Request` (see ``ember._request_py``).

Everything is lazy: headers, query, cookies and the body are decoded the first
time someone asks.  The body lives in the request's cycle
(:class:`ember.http.cycle.Cycle`), which the connection feeds; it is consumed
once, either whole (``body()``, ``json()``, ``form()``) or as a stream
(``stream()``).  A body that can never complete (framing error, too large,
body timeout, disconnect) raises from ``body()``/``stream()``.

The compiled twin (``_request_c``, a Cython extension type with a freelist) is used
when it was built, unless ``EMBER_NO_EXTENSIONS`` is set; both behave identically.
"""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember", "request")
Request = _impl.Request
new_request = _impl.new_request  # NOTE: the HTTP/1.1 connection's constructor (internal)

__all__ = ["Request"]
