"""Run schemathesis (all checks, every phase incl. stateful) against a served app.

The app is served by a real worker over a socket (RunningServer); the schemathesis
CLI runs in a subprocess with a fixed seed, a bounded example count and
deterministic generation, so a run is repeatable and bounded. Every ERROR logged by
the server during the run (an unhandled exception → 500) is collected as well.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

from tests.conftest import RunningServer


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


def fuzz(app: Any, tmp_path: Any, *, max_examples: int = 20, seed: int = 1,
         extra: tuple[str, ...] = ()) -> tuple[int, str, list[str]]:
    """``(exit code, schemathesis output, server error log lines)``."""
    config = tmp_path / "schemathesis.toml"
    # NOTE: schemathesis' default list of statuses that reject invalid data lacks the
    # wire limits Ember answers with (413 body, 414 request target, 431 headers).
    # NOTE: every check, enabled in the file (not with `--checks all` on the command line,
    # which would override the per-operation settings below)
    config.write_text(
        "[checks]\nenabled = true\n\n"
        "[checks.negative_data_rejection]\n"
        'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", '
        '"414", "415", "422", "428", "429", "431", "5xx"]\n'
        # NOTE: the translated vocabularies (Anthropic Messages, Responses, legacy
        # Completions) publish their clients' wire schema, and their translators refuse
        # with a 400 naming the field what cannot be answered faithfully (issue #22:
        # "refuse it with a 400 naming it — never answer wrongly"): a schema-valid request
        # rejected there is that documented refusal, not a bug. Every other check runs.
        "\n[[operations]]\n"
        'include-path-regex = "/(messages|responses|completions)$"\n'
        "checks.positive_data_acceptance.enabled = false\n"
    )
    # NOTE: always this interpreter's schemathesis (the venv's, at the pinned version),
    # never an `st` found first on PATH: another install generates other data.
    cmd = [sys.executable, "-m", "schemathesis.cli"]
    cmd += ["--config-file", str(config)]
    errors = _Errors()
    root = logging.getLogger("ember")
    root.addHandler(errors)
    server = RunningServer(app)
    try:
        cmd += ["run", f"{server.url}/openapi.json",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--max-examples", str(max_examples), "--seed", str(seed),
                "--generation-deterministic",
                "--workers", "1", "--no-color", "--request-timeout", "20",
                "--report-dir", str(tmp_path), *extra]
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("SCHEMATHESIS_HOOKS", None)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                              cwd=tmp_path)
    finally:
        server.stop()
        root.removeHandler(errors)
    return proc.returncode, proc.stdout + proc.stderr, errors.records
