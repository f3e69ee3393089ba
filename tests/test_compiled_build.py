"""The Cython twins were built, and the selectors use them (marked ``compiled``).

On a machine with Cython and a C compiler, ``pip install -e .`` builds every
``_x_c`` extension; a build that silently produced none must fail here rather
than let the whole suite test the pure twins twice. Without a compiler (or with
``EMBER_NO_EXTENSIONS=1``) the pure twins are the expected outcome: skipped with
the reason.
"""

from __future__ import annotations

import importlib

import pytest

from ember._compat import NO_EXTENSIONS, is_compiled
from tests._compiled import BUILD_HINT, compiler_present

TWINS = [("ember.http", "parser"), ("ember.http", "writer"), ("ember.http", "protocol"),
         ("ember.http", "state"), ("ember.http", "sinkbase"),
         ("ember.http", "hpack"), ("ember.http", "frames"), ("ember.http", "h2conn"),
         ("ember.routing", "router"), ("ember", "wsframes")]


@pytest.mark.compiled
@pytest.mark.parametrize(("package", "stem"), TWINS, ids=[s for _, s in TWINS])
def test_extension_was_built_and_is_selected(package, stem):
    if NO_EXTENSIONS:
        pytest.skip("EMBER_NO_EXTENSIONS=1 asks for the pure twins")
    if not compiler_present():
        pytest.skip("no Cython or C compiler here: the pure twins are the expected install")
    name = f"{package}._{stem}_c"
    try:
        compiled = importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{name} is missing ({exc}) although a compiler is present; {BUILD_HINT}")
    assert is_compiled(compiled), f"{name} is interpreted source, not an extension; {BUILD_HINT}"
    selector = importlib.import_module(f"{package}.{stem}")
    assert selector._impl is compiled
