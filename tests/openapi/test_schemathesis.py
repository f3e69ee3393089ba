"""schemathesis against real servers: every check, every phase (stateful included).

Bounded and repeatable: deterministic generation, a fixed example count per
operation. A run fails on any schemathesis finding AND on any error the server
logged (an unhandled exception behind a 5xx) while it ran.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from typing import Annotated

import msgspec
import pytest

from tests.openapi._fuzz import fuzz

pytestmark = pytest.mark.timeout(300)
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _check(app, tmp_path, max_examples):
    code, output, errors = fuzz(app, tmp_path, max_examples=max_examples)
    assert errors == [], f"the server logged errors during the run: {errors}\n{output[-4000:]}"
    assert code == 0, output[-8000:]
    assert "generated" in output and " passed" in output  # it really ran
    return output


def test_fuzz_app_has_no_findings(tmp_path):
    from tests.openapi.fuzz_app import app

    output = _check(app, tmp_path, 25)
    # the stateful phase ran on links schemathesis found (POST /notes → GET /notes/{note_id})
    assert "✅ Stateful" in output


def test_demo_has_no_findings(tmp_path):
    spec = importlib.util.spec_from_file_location("ember_demo_fuzz", ROOT / "examples/demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would (dataclasses look their module up)
    try:
        spec.loader.exec_module(module)
        _check(module.app, tmp_path, 20)
    finally:
        del sys.modules[spec.name]


def test_openai_gateway_has_no_findings(tmp_path):
    from ember import Ember

    app = Ember()
    app.mount_openai(["offline/echo"])
    _check(app, tmp_path, 10)


def test_the_harness_fails_on_a_server_error(tmp_path):
    """A planted bug is found, and the server's own error log is collected."""
    from ember import Ember

    app = Ember()

    @app.get("/div")
    async def div(n: Annotated[int, msgspec.Meta(ge=0, le=10)]) -> dict[str, float]:
        return {"inverse": 1 / n}  # ZeroDivisionError for the boundary n=0: a 500

    code, output, errors = fuzz(app, tmp_path, max_examples=5)
    assert code != 0
    assert "Server error" in output
    assert any("ZeroDivisionError" in e for e in errors)
