"""Continue a coroutine that already ran up to its first suspension.

PERF: the protocol drives a handler inline with ``coro.send(None)``; only when
it suspends is a Task created, and the Task resumes it through this generator.
Kept out of the Cython-compiled modules: ``types.coroutine`` needs a real
Python generator.
"""

from __future__ import annotations

import types
from typing import Any


@types.coroutine
def resume(coro: Any, yielded: Any) -> Any:
    """Yield ``yielded`` to the Task, then keep delegating to ``coro``."""
    while True:
        try:
            value = yield yielded
        except BaseException as exc:  # forward cancellation and errors into the handler
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(value)
        except StopIteration as stop:
            return stop.value
