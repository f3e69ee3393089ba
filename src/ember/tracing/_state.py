"""Whether tracing is on: ``active`` is the :class:`ember.tracing.Tracing` or None.

Tiny on purpose: the provider transport reads ``active`` once per upstream call to
add ``traceparent``; nothing else in Ember looks at tracing while it is off.
"""

from __future__ import annotations

from typing import Any

#: the Tracing object while ``ember.tracing.instrument`` is in effect
active: Any = None


def outgoing_headers() -> dict[str, str] | None:
    """Headers carrying the current trace context to an upstream (None when off)."""
    tracing = active
    if tracing is None:
        return None
    return tracing.inject()
