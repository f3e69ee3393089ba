"""``app.mount_static``: files, validators, ranges, HEAD, html mode, traversal and symlinks."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from ember import Ember
from ember.exceptions import ConfigError
from tests.conftest import raw_exchange


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.conftest import RunningServer

    base = tmp_path_factory.mktemp("static")
    root = base / "public"
    (root / "docs" / "guide").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / ".well-known").mkdir()
    (root / "app.js").write_text("console.log(1)")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "404.html").write_text("<h1>missing</h1>")
    (root / ".env").write_text("SECRET=1")
    (root / ".well-known" / "security.txt").write_text("contact: x")
    (root / "sp ace.txt").write_text("spaced")
    (base / "secret.txt").write_text("outside")
    (root / "inside-link.js").symlink_to(root / "app.js")
    (root / "escape.txt").symlink_to(base / "secret.txt")
    (root / "escape-dir").symlink_to(base)
    os.mkfifo(root / "fifo")

    app = Ember()
    app.mount_static("/static", root)
    app.mount_static("/site", root, html=True, cache_control="public, max-age=60")
    app.mount_static("/follow", root, follow_symlinks=True)

    @app.get("/static/api")  # a route beats the mount
    async def api() -> str:
        return "route"

    server = RunningServer(app)
    yield server.url
    server.stop()


def test_files_with_validators_ranges_and_head(site: str) -> None:
    r = httpx.get(site + "/static/app.js")
    assert (r.status_code, r.text) == (200, "console.log(1)")
    assert "javascript" in r.headers["content-type"]
    etag = r.headers["etag"]
    assert httpx.get(site + "/static/app.js", headers={"if-none-match": etag}).status_code == 304
    r = httpx.get(site + "/static/data.bin", headers={"range": "bytes=0-9"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (
        206, bytes(range(10)), "bytes 0-9/1024")
    r = httpx.head(site + "/static/app.js")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "14")
    assert httpx.get(site + "/static/sp%20ace.txt").text == "spaced"
    assert httpx.get(site + "/static/inside-link.js").text == "console.log(1)"
    assert httpx.get(site + "/static/.well-known/security.txt").text == "contact: x"
    assert httpx.get(site + "/static/api").text == "route"
    assert httpx.post(site + "/static/app.js").status_code == 405


@pytest.mark.parametrize("target", [
    "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E%2Fsecret.txt",
    "/static/docs/%2e%2e/%2e%2e/secret.txt", "/static/..%5csecret.txt",
    "/static/%5c..%5csecret.txt", "/static/app.js%00.png", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/%252e%252e/secret.txt", "/static/.env", "/static/docs/../.env", "/static/escape.txt",
    "/static/escape-dir/secret.txt", "/static/fifo", "/static/docs", "/static/", "/static",
    "/static/nope.js", "/static/~root", "/static/app.js/", "/follow/../secret.txt",
    "/follow/%2e%2e/secret.txt", "/follow/.env",
])
def test_traversal_hidden_files_and_escaping_symlinks_are_404(site: str, target: str) -> None:
    data = raw_exchange(site, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        .encode())
    head = data.split(b"\r\n", 1)[0]
    assert head in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), (target, data)
    assert b"outside" not in data and b"SECRET" not in data and b"root:" not in data


def test_follow_symlinks_allows_links_out(site: str) -> None:
    assert httpx.get(site + "/follow/escape.txt").text == "outside"
    assert httpx.get(site + "/follow/escape-dir/secret.txt").text == "outside"


def test_html_mode(site: str) -> None:
    r = httpx.get(site + "/site/")
    assert (r.status_code, r.text) == (200, "<h1>home</h1>")
    assert r.headers["cache-control"] == "public, max-age=60"
    assert "text/html" in r.headers["content-type"]
    r = httpx.get(site + "/site/docs?x=1")
    assert (r.status_code, r.headers["location"]) == (307, "/site/docs/?x=1")
    assert httpx.get(site + "/site/docs/", follow_redirects=True).text == "<h1>docs</h1>"
    assert httpx.get(site + "/site", follow_redirects=True).text == "<h1>home</h1>"
    r = httpx.get(site + "/site/nope")
    assert (r.status_code, r.text) == (404, "<h1>missing</h1>")
    r = httpx.get(site + "/site/empty/")  # a directory without index.html
    assert r.status_code == 404


def test_configuration_mistakes(tmp_path: Any) -> None:
    app = Ember()
    with pytest.raises(ConfigError, match="not a directory"):
        app.mount_static("/s", tmp_path / "missing")
    with pytest.raises(ConfigError, match="prefix"):
        app.mount_static("static", tmp_path)
    with pytest.raises(ConfigError, match="prefix"):
        app.mount_static("/s/", tmp_path)
    with pytest.raises(ConfigError, match="cache_control"):
        app.mount_static("/s", tmp_path, cache_control="x\r\nSet-Cookie: a=1")
