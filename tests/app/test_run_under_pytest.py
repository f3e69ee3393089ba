"""A seed-style module ends with ``app.run(...)``: a test that imports its ``app`` must
not block (new-user finding: pytest hung silently, the "listening" line captured)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import free_port


def test_importing_a_module_that_calls_app_run_does_not_serve(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "seedapp.py").write_text(textwrap.dedent(f"""
        from ember import Ember

        app = Ember()

        @app.get("/hello")
        async def hello():
            return "hi"

        app.run(host="127.0.0.1", port={port})
    """))
    (tmp_path / "test_seed.py").write_text(textwrap.dedent("""
        from seedapp import app

        def test_hello():
            with app.test_client() as client:
                assert client.get("/hello").text == "hi"
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "log_cli=true", "-o", "log_cli_level=WARNING",
                           str(tmp_path / "test_seed.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # NOTE: hang guard
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "not serving: a module-level app.run() while pytest imports" in proc.stdout


def test_running_the_module_as_a_script_still_serves() -> None:
    from ember.server.run import serving_suppressed

    # NOTE: called here, not during an import: nothing suppresses serving
    assert serving_suppressed() is None
