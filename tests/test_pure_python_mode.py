"""The whole suite again with the pure-Python twins (``EMBER_NO_EXTENSIONS=1``).

The compiled modules and their interpreted twins are the same source; this runs
every test in a subprocess with the extensions disabled, so one ``pytest`` run
covers both modes (issue #9: "both modes pass the whole suite").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ember._compat import NO_EXTENSIONS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(NO_EXTENSIONS, reason="already running the pure-Python twins")
def test_the_whole_suite_passes_with_pure_python_twins():
    env = dict(os.environ, EMBER_NO_EXTENSIONS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "passed" in proc.stdout
