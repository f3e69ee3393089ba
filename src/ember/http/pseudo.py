"""A request head's pseudo-header fields, read once for HTTP/2 and HTTP/3.

RFC 9113 §8.3.1 and RFC 9114 §4.3.1 define the same request pseudo-headers
(``:method``, ``:scheme``, ``:authority``, ``:path``); both transports hand their
decoded field list to :func:`split_request` and check what it returns.
"""

from __future__ import annotations

# PERF: defined in the compiled HTTP/2 codec (one definition, a C loop when compiled)
from ember.http.h2conn import split_request

__all__ = ["split_request"]
