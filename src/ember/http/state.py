"""What one worker's connections share (see ``_state_py``): compiled twin when available."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "state")
ServerState = _impl.ServerState
date_header = _impl.date_header

__all__ = ["ServerState", "date_header"]
