"""The router: compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember", "routing")
Router = _impl.Router
CONVERTORS = _impl.CONVERTORS

__all__ = ["CONVERTORS", "Router"]
