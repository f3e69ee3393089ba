"""Regression: FileResponse never serves outside its root, whatever the URL (raw targets).

httpx and browsers normalise ``..`` before sending, so these go over a raw socket
exactly as an attacker's client would send them: dot segments, percent-encoded and
double-encoded separators, overlong UTF-8, backslashes, NUL bytes, absolute paths,
symlinks that lead out.  (Peers: Starlette StaticFiles and aiohttp static routes have
had advisories for each of these kinds.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ember import Ember, FileResponse, Request
from tests.conftest import raw_exchange

SECRET = b"TOP-SECRET-CONTENT"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: Any) -> Path:
    base = tmp_path_factory.mktemp("traversal")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "public"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_bytes(b"fine")
    (root / "sub" / "deep.txt").write_bytes(b"deep")
    os.symlink(base / "secret.txt", root / "escape")
    os.symlink(base, root / "up")
    return root


@pytest.fixture(scope="module")
def base_url(tree: Path) -> Any:
    from tests.conftest import RunningServer

    app = Ember()

    @app.get("/files/{rest:path}")
    async def files(rest: str) -> FileResponse:
        return FileResponse(rest, root=tree)

    @app.get("/safe")
    async def safe(request: Request) -> FileResponse:
        return FileResponse.safe(tree, request.query_params.get("p", ""))

    server = RunningServer(app)
    yield server.url
    server.stop()


def fetch(base: str, target: str) -> tuple[int, bytes]:
    reply = raw_exchange(base, b"GET " + target.encode("latin-1")
                         + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    return status, reply


TARGETS = [
    "../secret.txt", "..%2fsecret.txt", "..%2Fsecret.txt", "%2e%2e/secret.txt",
    "%2E%2E%2Fsecret.txt", ".%2e/secret.txt", "%2e./secret.txt", "sub/../../secret.txt",
    "sub/%2e%2e/%2e%2e/secret.txt", "sub%2f..%2f..%2fsecret.txt", "..%5csecret.txt",
    "..\\secret.txt", "sub\\..\\..\\secret.txt", "%252e%252e%252fsecret.txt",
    "..%252fsecret.txt", "%c0%ae%c0%ae/secret.txt", "%c0%ae%c0%ae%c0%afsecret.txt",
    "%e0%80%ae%e0%80%ae/secret.txt", "..%c0%afsecret.txt", "%uff0e%uff0e/secret.txt",
    "\uff0e\uff0e/secret.txt".encode().decode("latin-1"), "/etc/passwd", "%2fetc%2fpasswd",
    "//etc/passwd", "ok.txt%00.png", "ok.txt%00", "%00", "escape", "up/secret.txt",
    "up/public/../secret.txt", "sub/../escape", "./../secret.txt", "...", ".../secret.txt",
    "~/secret.txt", "~root", "C:%5csecret.txt", "C:/secret.txt", "file:///etc/passwd",
    "sub/./../../secret.txt", "sub//../../secret.txt", "%2e%2e%2f%2e%2e%2fsecret.txt",
    "..;/secret.txt", "ok.txt/../../secret.txt", "sub/deep.txt/../../../secret.txt",
]


@pytest.mark.parametrize("target", TARGETS)
def test_traversal_urls(base_url: str, target: str) -> None:
    status, reply = fetch(base_url, "/files/" + target)
    assert SECRET not in reply and b"root:" not in reply, target
    assert status in (400, 404), (target, status)


@pytest.mark.parametrize("target", TARGETS[:20])
def test_traversal_via_safe_constructor(base_url: str, target: str) -> None:
    from urllib.parse import quote, unquote

    status, reply = fetch(base_url, "/safe?p=" + quote(unquote(target), safe=""))
    assert SECRET not in reply and status == 404, target


def test_inside_root_still_served(base_url: str) -> None:
    assert fetch(base_url, "/files/ok.txt")[1].endswith(b"fine")
    assert fetch(base_url, "/files/sub/deep.txt")[1].endswith(b"deep")
    assert fetch(base_url, "/files/sub/../ok.txt")[1].endswith(b"fine")
