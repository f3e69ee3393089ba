"""The WebSocket exceptions a handler sees (re-exported by :mod:`ember.websockets`)."""

from __future__ import annotations


class WebSocketDisconnect(Exception):
    """The peer closed the connection (``code``, ``reason``)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class WebSocketError(Exception):
    """A protocol violation; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class InvalidMessage(ValueError):
    """A message that is not what the handler asked for: JSON that does not parse
    (``receive_json``, close code 1007) or text where binary was expected and back
    (``receive_text``/``receive_bytes``, 1003).  Uncaught, the connection closes with that
    code and the reason, instead of 1011 "internal error"; catch it to answer otherwise.
    (Also a ``TypeError`` for the wrong type, as before.)"""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _WrongType(InvalidMessage, TypeError):
    pass



__all__ = ["InvalidMessage", "WebSocketDisconnect", "WebSocketError"]
