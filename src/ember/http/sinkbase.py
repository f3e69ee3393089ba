"""The typed sink base (see ``_sinkbase_py``): compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "sinkbase")
SinkBase = _impl.SinkBase

__all__ = ["SinkBase"]
