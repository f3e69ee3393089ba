"""Errors raised by the wire layer, shared by the pure and compiled twins.

    Exception
     └── HttpParserError          a request the server must refuse (status + reason)
          └── HttpHeaderInjection a response header carrying CR, LF or NUL
"""

from __future__ import annotations


class HttpParserError(Exception):
    """The request bytes break RFC 9112; answer ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"HttpParserError({self.status}, {self.reason!r})"


class HttpHeaderInjection(ValueError):
    """A response header name or value contains CR, LF or NUL (header injection)."""
