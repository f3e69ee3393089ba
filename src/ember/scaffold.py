"""``ember new NAME``: a project skeleton that passes its own test.

Writes ``NAME/`` with ``app.py`` (an app with two routes), ``tests/test_app.py``
(drives it through ``app.test_client()``), ``README.md`` whose first lines are the
two commands (serve; test), ``pyproject.toml`` and ``.gitignore``.
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

`app.py` holds the app; `tests/` drives it with `app.test_client()`. The API docs are at
`/docs` once the server runs (`pip install "ember-api[docs]"` for the offline page).
`ember run app:app --reload` serves with a reloader.
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["ember-api"]

[project.optional-dependencies]
dev = ["pytest>=8"]

[tool.setuptools]
py-modules = ["app"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
'''

GITIGNORE = "__pycache__/\n*.egg-info/\n.venv/\n.pytest_cache/\n"


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
    for rel, template in files.items():
        with open(os.path.join(root, rel), "x", encoding="utf-8") as f:
            f.write(template.format(name=name) if "{" in template else template)
    return root
