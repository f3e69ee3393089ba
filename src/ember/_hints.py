"""Newcomer mistakes named with their fix, on the error path only (no cost otherwise).

The classic: ``data = request.json()`` without ``await`` gives Python's own
``'coroutine' object is not subscriptable``, which does not say what to do.
:func:`add_await_hint` rewrites such an exception's message in place (same type, same
traceback) so the log, ``debug=True`` bodies and test failures say "did you forget
`await`?" and, when it can be found, which coroutine it was.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine
from typing import Any

#: CPython says 'coroutine'; a compiled (Cython) coroutine '_cython_3_x.coroutine'.
_COROUTINE_MISUSE = re.compile(r"'(?:[\w.]+\.)?coroutine'")
_HINTED = "did you forget `await`?"


def add_await_hint(exc: BaseException) -> None:
    """Make a ``TypeError``/``AttributeError`` about a coroutine used as a value say
    "did you forget `await`?" (and which coroutine)."""
    if not isinstance(exc, TypeError | AttributeError) or not exc.args:
        return
    text = exc.args[0]
    if not isinstance(text, str) or _HINTED in text or not _COROUTINE_MISUSE.search(text):
        return
    found = _coroutine_of(exc)
    if found is not None:
        name, call, coro = found
        if call.startswith("Request."):
            coro.close()  # never started (our own): no "was never awaited" warning on top
        where = f"`{name}` is " if name else ""
        hint = (f"{where}the coroutine {call}, not its result: {_HINTED} "
                f"Write `{name or 'value'} = await {_call_expr(call)}`")
    else:
        hint = f"{_HINTED} (e.g. `data = await request.json()`)"
    exc.args = (f"{text} — {hint}", *exc.args[1:])


def coroutine_returned(result: Any, what: str = "handler") -> TypeError:
    """The error for a handler (or middleware) that returned a coroutine; closes it so
    Python does not warn about it a second time."""
    call = _qualname(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return TypeError(
        f"{what} returned the coroutine {call}, not its result: {_HINTED} Write "
        f"`return await {_call_expr(call)}` (in an `async def`; a `def` handler runs in a "
        "thread and cannot await)")


def _qualname(coro: Any) -> str:
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    return f"{name}()"


def _call_expr(call: str) -> str:
    """``Request.json()`` -> ``request.json()`` (the usual spelling)."""
    return "request." + call.split(".", 1)[1] if call.startswith("Request.") else call


def _coroutine_of(exc: BaseException) -> tuple[str | None, str, Any] | None:
    """``(variable name, "Request.json()")`` of the coroutine the error is about."""
    obj = getattr(exc, "obj", None)  # AttributeError (3.10+) names the object
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first: the user's line
        for name, value in frame.f_locals.items():
            if isinstance(value, Coroutine) and (obj is None or value is obj):
                return name, _qualname(value), value
    if isinstance(obj, Coroutine):
        return None, _qualname(obj), obj
    return None
