"""Choosing between the compiled and the pure-Python twin of a hot module.

``EMBER_NO_EXTENSIONS=1`` forces the pure modules (the reference); otherwise the
Cython build is used when it was compiled.  Both twins are the same source, so
they raise the same errors and return the same shapes.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS = os.environ.get("EMBER_NO_EXTENSIONS", "") not in ("", "0", "false", "no")


def is_compiled(module: ModuleType) -> bool:
    """True when ``module`` is a C extension rather than interpreted source."""
    return not (module.__file__ or "").endswith((".py", ".pyc"))


def load_twin(package: str, stem: str) -> ModuleType:
    """Import ``package._<stem>_c`` when compiled and allowed, else ``_<stem>_py``."""
    if not NO_EXTENSIONS:
        try:
            module = importlib.import_module(f"{package}._{stem}_c")
        except ImportError:
            pass
        else:
            if is_compiled(module):
                return module
    return importlib.import_module(f"{package}._{stem}_py")
