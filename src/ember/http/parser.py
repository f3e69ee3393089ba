"""The request parser: compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "parser")
HttpRequestParser = _impl.HttpRequestParser
KNOWN_METHODS = _impl.KNOWN_METHODS

__all__ = ["KNOWN_METHODS", "HttpRequestParser"]
