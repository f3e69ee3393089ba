"""The HTTP/1.1 connection protocol: compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "protocol")
HttpProtocol = _impl.HttpProtocol
ServerState = _impl.ServerState
BodyWriter = _impl.BodyWriter

__all__ = ["BodyWriter", "HttpProtocol", "ServerState"]
