"""A fake clock for code that reads ``time.monotonic()``: tests advance time, never sleep.

``FakeClock.install(monkeypatch, "ember.cache.static")`` replaces that module's ``time``
with a stand-in whose ``monotonic()`` returns the fake time; every other ``time``
attribute is the real one.
"""

from __future__ import annotations

import importlib
import time
from typing import Any


class FakeClock:
    """``monotonic()`` returns ``now``; ``advance(seconds)`` moves it."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @classmethod
    def install(cls, monkeypatch: Any, *modules: str) -> FakeClock:
        """Give each module (dotted name) this clock as its ``time``."""
        clock = cls()
        for name in modules:
            monkeypatch.setattr(importlib.import_module(name), "time", clock)
        return clock
