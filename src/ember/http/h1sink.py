"""HTTP/1.1 framing and output batching (see ``_h1sink_py``): compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "h1sink")
Http1Sink = _impl.Http1Sink
OUT_BATCH = _impl.OUT_BATCH

__all__ = ["OUT_BATCH", "Http1Sink"]
