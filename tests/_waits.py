"""Waiting for something to happen in a server thread or process, with a hang guard only.

The guard never asserts speed (no wall-clock assertion): it turns a hang into a failure
that names what was awaited.
"""

from __future__ import annotations

import time
from collections.abc import Callable

HANG_GUARD = 20.0  # seconds


def wait_for(predicate: Callable[[], object], what: str, guard: float = HANG_GUARD) -> None:
    """Poll ``predicate`` every 10 ms until it is true; AssertionError after ``guard`` s."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.01)
