"""``import cython`` for the pure-Python twins when Cython is not installed.

Only what Ember's twins use: ``compiled`` (False here, so ``if cython.compiled``
branches are skipped) and decorators/types that do nothing when interpreted.
"""

from __future__ import annotations

from typing import Any

compiled = False


def _passthrough(*args: Any, **kwargs: Any) -> Any:
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda fn: fn


locals = boundscheck = wraparound = cfunc = inline = ccall = _passthrough
Py_ssize_t = int
int = int
uchar = int
p_const_uchar = bytes
