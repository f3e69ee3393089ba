"""The official ``mcp`` 1.x client (separate install) against an Ember app.

mcp 1.x and 2.x cannot share an environment, so the 1.x client runs in a subprocess with
``PYTHONPATH`` pointing at a ``pip install "mcp<2" --target DIR`` tree: ``$EMBER_TEST_MCP1``
or ``/tmp/mcp1``. Skipped when that tree is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests._services import skip_or_fail

MCP1 = Path(os.environ.get("EMBER_TEST_MCP1", "/tmp/mcp1"))
SCRIPT = Path(__file__).with_name("_client_v1.py")



@pytest.fixture(autouse=True)
def _mcp1_installed() -> None:
    if not (MCP1 / "mcp" / "__init__.py").exists():
        skip_or_fail(f"no mcp 1.x install at {MCP1} (pip install 'mcp<2' --target {MCP1}; "
                     ".ci/run does it)")
    # NOTE: a --target tree holds compiled wheels (pydantic_core) for one interpreter.
    core = MCP1 / "pydantic_core"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if core.is_dir() and not any(f.name.endswith(suffix) for f in core.glob("*.so")):
        skip_or_fail(f"the mcp 1.x tree at {MCP1} was installed for another Python than "
                     f"{sys.version.split()[0]} (reinstall it with this interpreter's pip)")


def run_v1(url: str, version: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(MCP1))
    proc = subprocess.run([sys.executable, str(SCRIPT), url, version], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26"])
def test_v1_client(mcp_url: str, version: str) -> None:
    out = run_v1(mcp_url, version)
    assert out["sdk"] is None or out["sdk"].startswith("1.")
    assert out["protocol_version"] == version
    assert out["server_info"] == ["ember-app", "1.0.0"]
    assert out["instructions"] == "Use the tools."
    assert out["tools"] == ["add", "fail", "primes", "weather"]
    assert out["add"] == ["3", False]
    # structuredContent exists from 2025-06-18 on
    expected = {"city": "Oslo", "temp": 21, "unit": "c"} if version != "2025-03-26" else None
    assert out["weather"] == expected
    assert out["fail"][0] is True and "tool failed: v1" in out["fail"][1]
    assert out["unknown_tool"] == -32602
    assert out["resources"] == ["config://app", "data://logo"]
    assert out["templates"] == ["users://{user_id}/profile"]
    assert out["config"] == '{"debug": false}'
    assert out["logo"] == b"\x89PNG\r\n".hex()
    assert out["profile"] == "profile of 9"
    assert out["prompts"] == ["chat", "review"]
    assert out["review"] == ["user", "Please review this python code:\nprint()"]
    # the client ended its session with DELETE on the way out
    r = httpx.post(mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                   headers={"Mcp-Session-Id": out["session_id"],
                            "Accept": "application/json, text/event-stream"})
    assert r.status_code == 404
