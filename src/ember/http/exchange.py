"""The exchange core (see ``_exchange_py``): compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "exchange")
Exchange = _impl.Exchange
BodyWriter = _impl.BodyWriter
TRANSITIONS = _impl.TRANSITIONS
allowed = _impl.allowed
decided_kinds = _impl.decided_kinds

__all__ = ["TRANSITIONS", "BodyWriter", "Exchange", "allowed", "decided_kinds"]
