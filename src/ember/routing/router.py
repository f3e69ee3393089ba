"""The router and template parser: compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.routing", "router")
Router = _impl.Router
CONVERTORS = _impl.CONVERTORS
KINDS = _impl.KINDS
parse_template = _impl.parse_template

__all__ = ["CONVERTORS", "KINDS", "Router", "parse_template"]
