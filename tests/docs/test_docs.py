"""Every ```python block in README.md and docs/*.md runs as written.

Each block is its own test (id ``file:line``), run with the interpreter in a fresh
subprocess whose cwd is a temp dir: no network beyond loopback, no API keys,
``EMBER_NO_SERVE=1`` so a module-level ``app.run()`` returns instead of serving, and
``REDIS_URL`` / ``MEMCACHED_URL`` / ``DATABASE_URL`` pointing at the suite's own
services when the block mentions them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# NOTE: keys a provider SDK would read; a doc block must never need one
_SECRETS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
            "OPENROUTER_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY", "TOGETHER_API_KEY")


def doc_blocks(root: Path = ROOT) -> list[tuple[str, str]]:
    """``[(file:line, source)]`` of every python block in README.md and docs/*.md."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    blocks = []
    for path in files:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start(1)) + 1
            blocks.append((f"{path.relative_to(root)}:{line}", m.group(1)))
    return blocks


BLOCKS = doc_blocks()


def test_the_extractor_finds_blocks_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n\n```python\nprint(1)\n```\n\n```bash\nls\n```\n")
    (tmp_path / "docs" / "a.md").write_text("```python\na = 1\n\nb = 2\n```\n")
    assert doc_blocks(tmp_path) == [("README.md:4", "print(1)\n"),
                                    ("docs/a.md:2", "a = 1\n\nb = 2\n")]
    assert len(BLOCKS) >= 20  # the real docs: a broken fence would silently drop blocks


def _env(source: str, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
    env.update(EMBER_NO_SERVE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               NO_PROXY="*", PYTHONDONTWRITEBYTECODE="1")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)
    if "REDIS_URL" in source or "redis" in source.lower():
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    if "MEMCACHED_URL" in source:
        env["MEMCACHED_URL"] = request.getfixturevalue("memcached_server").url
    if "DATABASE_URL" in source:
        env["DATABASE_URL"] = request.getfixturevalue("postgres_server").url
    return env


@pytest.mark.parametrize("where,source", BLOCKS, ids=[where for where, _ in BLOCKS])
def test_doc_block_runs(where: str, source: str, tmp_path: Path,
                        request: pytest.FixtureRequest) -> None:
    script = tmp_path / "block.py"
    script.write_text(source, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(source, request),
                          capture_output=True, text=True, timeout=100, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (
        f"{where} failed (exit {proc.returncode}):\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-5000:]}")


def test_module_level_run_does_not_serve_under_ember_no_serve(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                      "from ember import Ember\napp = Ember()\napp.run(port=1)\n"
                      "print('returned')\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "EMBER_NO_SERVE": "1"})
    assert proc.returncode == 0 and proc.stdout == "returned\n", proc.stderr
    assert proc.stderr.count("EMBER_NO_SERVE is set") == 1
