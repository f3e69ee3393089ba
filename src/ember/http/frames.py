"""HTTP/2 frames (RFC 9113): compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "frames")
FrameReader = _impl.FrameReader

__all__ = ["FrameReader"]
