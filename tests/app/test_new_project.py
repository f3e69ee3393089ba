"""``ember new NAME`` creates a skeleton whose own test passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _ember(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ember.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_new_project_passes_its_own_test(tmp_path: Path) -> None:
    made = _ember("new", "shop", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "shop"
    assert sorted(p.name for p in root.iterdir()) == [".gitignore", "README.md", "app.py",
                                                      "pyproject.toml", "tests"]
    readme = (root / "README.md").read_text().splitlines()
    assert readme[3].startswith("pip install -e . && python app.py")
    assert readme[4].startswith('pip install -e ".[dev]" && python -m pytest')
    assert 'name = "shop"' in (root / "pyproject.toml").read_text()
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=root, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
    routes = _ember("routes", "app:app", cwd=root)
    assert routes.returncode == 0 and "/hello/{who}" in routes.stdout


@pytest.mark.parametrize("name", ["", "1abc", "a/b", "../x", "_x", "a b", "x" * 65, "é"])
def test_bad_names_are_refused_with_a_reason(tmp_path: Path, name: str) -> None:
    made = _ember("new", name, cwd=tmp_path)
    assert made.returncode == 1 and "invalid project name" in made.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "app.py").write_text("mine")
    made = _ember("new", "shop", cwd=tmp_path)
    assert made.returncode == 1 and "already exists" in made.stderr
    assert (tmp_path / "shop" / "app.py").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert _ember("new", "empty", cwd=tmp_path).returncode == 0
