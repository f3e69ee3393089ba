"""The HTTP/1.1 connection protocol: compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin
from ember.http.exchange import BodyWriter
from ember.http.state import ServerState

_impl = load_twin("ember.http", "protocol")
HttpProtocol = _impl.HttpProtocol

__all__ = ["BodyWriter", "HttpProtocol", "ServerState"]
