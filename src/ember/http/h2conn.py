"""The HTTP/2 connection state machine: compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "h2conn")
H2Connection = _impl.H2Connection
ProtocolError = _impl.ProtocolError
StreamClosedError = _impl.StreamClosedError
RequestReceived = _impl.RequestReceived
DataReceived = _impl.DataReceived
StreamEnded = _impl.StreamEnded
StreamReset = _impl.StreamReset
WindowUpdated = _impl.WindowUpdated
RemoteSettingsChanged = _impl.RemoteSettingsChanged
SettingsAcknowledged = _impl.SettingsAcknowledged
PingReceived = _impl.PingReceived
ConnectionTerminated = _impl.ConnectionTerminated
split_request = _impl.split_request

__all__ = ["ConnectionTerminated", "DataReceived", "H2Connection", "PingReceived",
           "ProtocolError", "RemoteSettingsChanged", "RequestReceived", "SettingsAcknowledged",
           "StreamClosedError", "StreamEnded", "StreamReset", "WindowUpdated", "split_request"]
