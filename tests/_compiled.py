"""Whether this machine should have built the Cython twins (so their absence is a failure).

A machine with Cython and a C compiler builds the extensions on ``pip install -e .``
(or ``python setup.py build_ext --inplace``); there, a missing or interpreted
``_x_c`` module means the build failed silently, and the compiled-mode tests
must fail loudly instead of quietly testing the pure twin twice (multidict's
conftest does the same). ``EMBER_NO_EXTENSIONS=1`` asks for the pure twins.
"""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig

from ember._compat import NO_EXTENSIONS

BUILD_HINT = "build it with: python setup.py build_ext --inplace (or pip install -e .)"


def compiler_present() -> bool:
    """Cython importable and the C compiler Python was built with (or ``cc``/``gcc``) on PATH."""
    if importlib.util.find_spec("Cython") is None:
        return False
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return any(shutil.which(name) for name in (cc, "cc", "gcc"))


def extensions_expected() -> bool:
    """True when the compiled twins must exist (compiler present, not opted out)."""
    return not NO_EXTENSIONS and compiler_present()
