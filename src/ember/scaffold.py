"""``ember new NAME``: a project skeleton that passes its own test.

Writes ``NAME/`` with ``app.py`` (an app with two routes), ``tests/test_app.py``
(drives it through ``app.test_client()``), ``README.md`` whose first lines are the
two commands (serve; test), ``pyproject.toml`` and ``.gitignore``.

The project depends on ``ember-api>=0.2.0``: the package index has an unrelated
``ember-api 0.1.0``.  The README says how to install this Ember in a new venv, from
where the running one came from (its PEP 610 ``direct_url.json``: a source checkout,
a wheel, a VCS URL), or from the index when it came from there.
"""

from __future__ import annotations

import os
import re

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

APP = '''"""{name}: an Ember app."""

from ember import Ember

app = Ember(title="{name}")


@app.get("/")
async def index():
    return {{"app": "{name}", "docs": "/docs"}}


@app.get("/hello/{{who}}")
async def hello(who: str, excited: bool = False):
    """Greet someone."""
    return {{"message": f"Hello, {{who}}" + ("!" if excited else ".")}}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8000)
'''

TEST = '''from app import app


def test_hello():
    with app.test_client() as client:
        r = client.get("/hello/world", params={{"excited": "true"}})
        assert r.status_code == 200
        assert r.json() == {{"message": "Hello, world!"}}


def test_bad_input_is_a_422_not_a_500():
    with app.test_client() as client:
        assert client.get("/hello/world", params={{"excited": "maybe"}}).status_code == 422
        assert client.get("/nope").status_code == 404
'''

README = '''# {name}

```bash
pip install -e . && python app.py                    # serve on http://127.0.0.1:8000/
pip install -e ".[dev]" && python -m pytest          # run the tests
```

These keep the Ember already installed in the active venv (`ember-api>=0.2.0`).
{ember_install}
`app.py` holds the app; `tests/` drives it with `app.test_client()`. The API docs are at
`/docs` once the server runs (`{docs_install}` for the offline page).
`ember run app:app --reload` serves with a reloader.
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["ember-api>=0.2.0"]  # 0.1.0 on the package index is another project

[project.optional-dependencies]
dev = ["pytest>=8"]

[tool.setuptools]
py-modules = ["app"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
'''

GITIGNORE = "__pycache__/\n*.egg-info/\n.venv/\n.pytest_cache/\n"


#: The first release of this Ember: the package index also has an unrelated
#: ``ember-api 0.1.0``, which a bare ``ember-api`` requirement could resolve to.
MIN_VERSION = "0.2.0"


def ember_source() -> tuple[str, bool] | None:
    """Where the running Ember was installed from: ``(path or URL, editable)`` read from
    its PEP 610 ``direct_url.json`` (a source checkout, a wheel file, a VCS URL), or
    ``None`` when it came from a package index (or cannot be told)."""
    import json
    from importlib import metadata

    try:
        dist = metadata.distribution("ember-api")
        text = dist.read_text("direct_url.json")
    except (metadata.PackageNotFoundError, OSError):
        return None
    if not text:
        return None
    try:
        info = json.loads(text)
        url = info["url"]
    except (ValueError, KeyError, TypeError):
        return None
    editable = bool(info.get("dir_info", {}).get("editable"))
    if isinstance(url, str) and url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(url).path), editable
    vcs = info.get("vcs_info", {}).get("vcs")
    if vcs and isinstance(url, str):
        return f"{vcs}+{url}", editable
    return (url, editable) if isinstance(url, str) else None


def install_commands(source: tuple[str, bool] | None = None) -> tuple[str, str]:
    """``(install Ember, install Ember with its docs extra)`` as shell commands that can
    only resolve to this Ember (never the index's unrelated ``ember-api 0.1.0``)."""
    import shlex

    if source is None:
        return (f'pip install "ember-api>={MIN_VERSION}"',
                f'pip install "ember-api[docs]>={MIN_VERSION}"')
    where, editable = source
    if "+" in where.split("://", 1)[0]:  # a VCS URL
        return (f'pip install "ember-api @ {where}"', f'pip install "ember-api[docs] @ {where}"')
    flag = "-e " if editable else ""
    if where.endswith(".whl"):
        return f"pip install {shlex.quote(where)}", f"pip install {shlex.quote(where + '[docs]')}"
    return (f"pip install {flag}{shlex.quote(where)}",
            f"pip install {flag}{shlex.quote(where + '[docs]')}")


def _ember_install(source: tuple[str, bool] | None) -> tuple[str, str]:
    first, docs = install_commands(source)
    if source is None:
        text = (f"In a new venv they install it from the package index (`{first}`; the "
                f"index's `ember-api 0.1.0` is another project, which `>={MIN_VERSION}` "
                "rules out).\n")
    else:
        text = ("In a new venv, install Ember first from where `ember new` found it "
                f"(the package index's `ember-api 0.1.0` is another project):\n\n"
                f"```bash\n{first}\n```\n")
    return text, docs


def new_project(name: str, parent: str = ".") -> str:
    """Create the skeleton in ``parent/name`` and return its path.

    Raises ``ValueError`` for a name that is not a letter followed by up to 63 letters,
    digits, ``_`` or ``-``, and ``FileExistsError`` if ``parent/name`` exists and is not
    an empty directory (nothing is ever overwritten).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"invalid project name {name!r}: use a letter followed by letters, "
                         "digits, '_' or '-' (at most 64 characters)")
    root = os.path.join(parent, name)
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise FileExistsError(f"{root} already exists and is not empty; nothing was written")
    files = {"app.py": APP, os.path.join("tests", "test_app.py"): TEST, "README.md": README,
             "pyproject.toml": PYPROJECT, ".gitignore": GITIGNORE}
    os.makedirs(os.path.join(root, "tests"), exist_ok=True)
    ember_install, docs_install = _ember_install(ember_source())
    for rel, template in files.items():
        with open(os.path.join(root, rel), "x", encoding="utf-8") as f:
            f.write(template.format(name=name, ember_install=ember_install,
                                    docs_install=docs_install)
                    if "{" in template else template)
    return root
