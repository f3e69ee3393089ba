"""The request cycle (see ``_cycle_py``): compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "cycle")
QUEUED = _impl.QUEUED
RUNNING = _impl.RUNNING
SENDING = _impl.SENDING
DONE = _impl.DONE
ERROR = _impl.ERROR
STATE_NAMES = _impl.STATE_NAMES
BODY_OPEN = _impl.BODY_OPEN
BODY_COMPLETE = _impl.BODY_COMPLETE
BODY_FAILED = _impl.BODY_FAILED
COALESCE = _impl.COALESCE
Cycle = _impl.Cycle

__all__ = [
    "BODY_COMPLETE", "BODY_FAILED", "BODY_OPEN", "COALESCE", "DONE", "ERROR", "QUEUED",
    "RUNNING", "SENDING", "STATE_NAMES", "Cycle",
]
