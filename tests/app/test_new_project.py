"""``ember new NAME`` creates a skeleton whose own test passes."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import ember
from ember.scaffold import ember_source, install_commands

ROOT = Path(__file__).resolve().parents[2]
# NOTE: offline and deterministic: no index, no find-links; no build isolation (which
# would fetch setuptools); pip's own cache untouched.
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_NO_BUILD_ISOLATION": "0",
           "PIP_EXTRA_INDEX_URL": "", "PIP_CONSTRAINT": "", "PIP_NO_CACHE_DIR": "1",
           "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}


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


def _readme_commands(root: Path) -> tuple[str, str]:
    lines = (root / "README.md").read_text().splitlines()
    return lines[3].split("  #")[0].strip(), lines[4].split("  #")[0].strip()


def _venv(path: Path, *, sees: list[Path]) -> tuple[Path, Path]:
    """A new venv (no pip of its own) that also sees ``sees`` (site dirs), with the
    ``pip`` console script a venv has."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   capture_output=True, timeout=120)
    bindir = path / "bin"
    site = next((path / "lib").glob("python*/site-packages"))
    (site / "_layered.pth").write_text("".join(
        f"import site; site.addsitedir({str(p)!r})\n" for p in sees))
    pip = bindir / "pip"
    pip.write_text(f"#!{bindir / 'python'}\nimport sys\nfrom pip._internal.cli.main import "
                   "main\nsys.exit(main())\n")
    pip.chmod(0o755)
    return bindir, site


def _build_tools(where: Path) -> Path:
    """Only pip and setuptools of the running venv (offline: a new venv's own setuptools
    is too old to build without fetching ``wheel``)."""
    where.mkdir()
    purelib = Path(sysconfig.get_paths()["purelib"])
    for pattern in ("pip", "pip-*.dist-info", "setuptools", "setuptools-*.dist-info",
                    "pkg_resources", "_distutils_hack"):
        for src in purelib.glob(pattern):
            (where / src.name).symlink_to(src)
    return where


def _bash(command: str, cwd: Path, bindir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "VIRTUAL_ENV": str(bindir.parent)}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env, stdin=subprocess.DEVNULL)


def test_the_project_depends_on_this_ember_and_the_readme_says_where_it_is(tmp_path):
    assert _ember("new", "shop", cwd=tmp_path).returncode == 0
    root = tmp_path / "shop"
    assert 'dependencies = ["ember-api>=0.2.0"]' in (root / "pyproject.toml").read_text()
    readme = (root / "README.md").read_text()
    assert ember.__version__ >= "0.2.0"
    source = ember_source()
    first, docs = install_commands(source)
    assert first in readme and docs in readme
    if source is not None and source[0].startswith("/"):
        assert Path(source[0]).resolve() == ROOT  # this checkout (editable install)
    # every generated command names >=0.2.0 or a place, never a bare `ember-api`
    for line in readme.splitlines():
        if "ember-api" in line and "pip install" in line:
            assert ">=0.2.0" in line or "@" in line, line


def test_install_commands_for_each_kind_of_source():
    assert install_commands(None) == ('pip install "ember-api>=0.2.0"',
                                      'pip install "ember-api[docs]>=0.2.0"')
    assert install_commands(("/src/ember", True))[0] == "pip install -e /src/ember"
    assert install_commands(("/my dir/ember", False))[1] == "pip install '/my dir/ember[docs]'"
    whl = "/w/ember_api-0.2.0-cp311-cp311-linux_x86_64.whl"
    assert install_commands((whl, False))[0] == f"pip install {whl}"
    assert install_commands(("git+https://example.com/ember.git", False))[0] == (
        'pip install "ember-api @ git+https://example.com/ember.git"')


@pytest.mark.slow
def test_the_readme_commands_in_embers_own_venv_keep_this_ember(tmp_path):
    """A venv that sees this Ember (layered on the running one): the README's test
    command installs the project, keeps this Ember, and the generated test passes."""
    assert _ember("new", "shop", cwd=tmp_path).returncode == 0
    root = tmp_path / "shop"
    bindir, site = _venv(tmp_path / "venv", sees=[Path(sysconfig.get_paths()["purelib"])])
    _, test_command = _readme_commands(root)
    assert test_command == 'pip install -e ".[dev]" && python -m pytest'
    ran = _bash(test_command, root, bindir)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "2 passed" in ran.stdout
    which = _bash("python -c 'import ember; print(ember.__file__, ember.__version__)'",
                  root, bindir)
    assert which.stdout.split() == [ember.__file__, ember.__version__]
    assert not list(site.glob("ember_api*")), "no other ember-api was installed"


@pytest.mark.slow
def test_the_readme_commands_in_a_fresh_venv_never_take_the_index_package(tmp_path):
    """A new venv without Ember: the README's commands fail saying which Ember they need
    (offline here; with the index, `>=0.2.0` rules out its unrelated 0.1.0), and the
    README's Ember line is the one that installs this checkout."""
    assert _ember("new", "shop", cwd=tmp_path).returncode == 0
    root = tmp_path / "shop"
    bindir, _ = _venv(tmp_path / "fresh", sees=[_build_tools(tmp_path / "tools")])
    assert _bash("python -c 'import ember'", root, bindir).returncode != 0  # no Ember here
    serve_command, test_command = _readme_commands(root)
    for command in (serve_command, test_command):
        ran = _bash(command, root, bindir)
        assert ran.returncode != 0
        assert "ember-api>=0.2.0" in ran.stdout + ran.stderr, ran.stderr[-2000:]
    listed = _bash("python -m pip list --format=freeze", root, bindir)
    assert "ember-api" not in listed.stdout.lower() and "ember_api" not in listed.stdout
    first, _ = install_commands(ember_source())
    assert first in (root / "README.md").read_text()
