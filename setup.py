"""Build script: compiles Ember's hot modules with Cython when it can.

NOTE: every compiled module is a pure-Python source (``_x_py.py``) exposed a
second time as ``_x_c.py`` (a symlink) with an augmenting ``_x_c.pxd``.  Cython
turns ``_x_c`` into an extension; the selector module (``x.py``) imports it
unless ``EMBER_NO_EXTENSIONS`` is set or the build was skipped.  A missing
compiler or Cython never fails the install: the pure package works unchanged
(the falcon / aiohttp pattern).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
COMPILED = [
    "ember/http/_parser_c.py",
    "ember/http/_writer_c.py",
    "ember/http/_cycle_c.py",
    "ember/http/_state_c.py",
    "ember/http/_sinkbase_c.py",
    "ember/http/_h1sink_c.py",
    "ember/http/_heads_c.py",
    "ember/http/_exchange_c.py",
    "ember/http/_protocol_c.py",
    "ember/http/_hpack_c.py",
    "ember/http/_frames_c.py",
    "ember/http/_h2conn_c.py",
    "ember/routing/_router_c.py",
    "ember/_request_c.py",
    "ember/_wsframes_c.py",
]


class OptionalBuildExt(build_ext):
    """Never let a failed compile break the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure leaves a pure install
            self._warn(exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        sys.stderr.write(
            f"WARNING: building Ember's C extensions failed ({exc}); "
            "installing the pure-Python package instead.\n"
        )


def extensions() -> list:
    if os.environ.get("EMBER_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.stderr.write("WARNING: Cython not found; installing pure-Python Ember.\n")
        return []
    sources = [str(Path("src") / p) for p in COMPILED if (HERE / "src" / p).exists()]
    try:
        return cythonize(
            sources,
            compiler_directives={
                "language_level": "3",
                "boundscheck": True,  # NOTE: the twins must behave identically,
                "wraparound": True,  # so Python indexing semantics stay on
                "cdivision": True,
                "binding": False,
                "embedsignature": False,
            },
            quiet=True,
        )
    except Exception as exc:
        OptionalBuildExt._warn(exc)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
