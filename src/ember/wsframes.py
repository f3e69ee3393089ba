"""WebSocket fragment runs: compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import is_compiled, load_twin

_impl = load_twin("ember", "wsframes")
scan_fragments = _impl.scan_fragments
COMPILED = is_compiled(_impl)

__all__ = ["COMPILED", "scan_fragments"]
