"""Response serialisation: compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "writer")
app_framing = _impl.app_framing
encode_framed = _impl.encode_framed
encode_head = _impl.encode_head
encode_response = _impl.encode_response
encode_simple = _impl.encode_simple
encode_result = _impl.encode_result
encode_chunk = _impl.encode_chunk
status_line = _impl.status_line
LAST_CHUNK = _impl.LAST_CHUNK

__all__ = ["LAST_CHUNK", "app_framing", "encode_chunk", "encode_framed", "encode_head", "encode_response", "encode_result",
           "encode_simple", "status_line"]
