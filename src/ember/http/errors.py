"""Errors raised by the wire layer, shared by the pure and compiled twins.

    Exception
     └── HttpParserError          a request the server must refuse (status + reason)
          └── HttpHeaderInjection a response header carrying CR, LF or NUL
"""

from __future__ import annotations

import json


class HttpParserError(Exception):
    """The request bytes break RFC 9112; answer ``status`` and close the connection."""

    #: set by the parser when the refused head is a HEAD request (answered with no body)
    head_only = False

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"HttpParserError({self.status}, {self.reason!r})"


class HttpHeaderInjection(ValueError):
    """A response header name or value contains CR, LF or NUL (header injection)."""


#: content type of an answer the server makes itself (413, 414, 431, 408, 504, ...)
ERROR_CONTENT_TYPE = b"application/json"


def error_body(reason: str) -> bytes:
    """The body of an answer the server makes itself: ``{"detail": reason}``, the shape
    of the app layer's errors (and FastAPI's), on every transport."""
    return json.dumps({"detail": reason}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8", "replace")
