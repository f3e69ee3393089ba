"""examples/demo.py as a user runs it: PORT, a busy port, garbage bodies, the playground."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def _start(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DEMO)], env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


@pytest.fixture
def demo() -> Iterator[str]:
    port = free_port()
    proc = _start(port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30  # NOTE: only guards a hang
    while True:
        try:
            httpx.get(url + "/hello", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.communicate()[0].decode()) from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_busy_port_is_one_clear_line_and_no_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(port)
        out, _ = proc.communicate(timeout=60)
    text = out.decode().strip()
    assert proc.returncode == 1
    assert text.splitlines() == [text], text  # one line, no traceback
    assert f"cannot listen on 127.0.0.1:{port}" in text and "Ember demo on" not in text


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", ""])
def test_a_bad_port_value_is_one_clear_line(value: str) -> None:
    proc = subprocess.run([sys.executable, str(DEMO)], env={**os.environ, "PORT": value},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: PORT must be") and proc.stdout == ""


def test_the_index_lists_urls_with_the_real_port(demo: str) -> None:
    port = demo.rsplit(":", 1)[1]
    index = httpx.get(demo + "/").json()
    assert index["try"] and all(f":{port}/" in line for line in index["try"])
    assert ":8000" not in str(index) or port == "8000"
    assert "POST /v1/chat/completions" in index["routes"] and "GET /metrics" in index["routes"]
    # a forged Host never reaches the tour; an invalid one is the engine's 400 (issue 23)
    assert httpx.get(demo + "/", headers={"host": "evil.example/<script>"}).status_code == 400
    forged = httpx.get(demo + "/", headers={"host": "evil.example"}).json()
    assert all("evil" not in line for line in forged["try"])


@pytest.mark.parametrize("body", [b"[1, 2]", b"[]", b'"hi"', b"1", b"null", b"{}",
                                  b'{"message": 5}', b'{"message": null}', b'{"message": []}',
                                  b"{not json", b"\xff\xfe", b"", b'{"message": "x"' * 3])
def test_garbage_on_v1_chat_is_a_4xx_with_a_reason(demo: str, body: bytes) -> None:
    r = httpx.post(demo + "/v1/chat", content=body)
    assert r.status_code in (400, 422), (body, r.status_code, r.text)
    assert r.json()["detail"]


def test_fuzzing_the_demo_routes_never_500s(demo: str) -> None:
    import random

    rng = random.Random(1234)
    paths = ["/", "/hello", "/users/1", "/users/x", "/users/-1", "/echo", "/stream", "/v1/chat",
             "/v1/chat/completions", "/v1/models", "/v1/models/offline%2Fecho", "/metrics",
             "/docs", "/openapi.json", "/docs/assets/..%2F..%2Fsetup.py", "/nope"]
    bodies = [b"", b"{}", b"[]", b"null", b"{", b'{"model": 1}', b'{"messages": "x"}',
              b'{"model": "offline/echo", "messages": [{"role": "user", "content": 5}]}',
              b'{"model": "offline/echo", "messages": [], "stream": "yes"}', b"\x00" * 64,
              bytes(rng.randrange(256) for _ in range(200))]
    with httpx.Client(base_url=demo, timeout=30) as client:
        for path in paths:
            for method in ("GET", "POST", "PUT", "DELETE"):
                body = rng.choice(bodies) if method in ("POST", "PUT") else None
                r = client.request(method, path, content=body,
                                   headers={"accept": rng.choice(["*/*", "text/html",
                                                                  "application/json"])})
                assert r.status_code < 500, (method, path, body, r.status_code, r.text[:300])


def test_curl_gets_json_and_a_browser_gets_the_playground(demo: str) -> None:
    assert httpx.get(demo + "/", headers={"accept": "*/*"}).json()["ember"] == "demo"
    assert httpx.get(demo + "/", headers={"accept": "application/json"}).json()["try"]
    page = httpx.get(demo + "/", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/docs"' in page.text and 'href="/metrics"' in page.text
    assert "http://" not in page.text.split("<script>")[1]  # no CDN, nothing external


def test_playground_streams_tokens_in_chromium(demo: str, browser) -> None:
    page = browser.page()
    page.goto(demo + "/")
    routes = page.evaluate("document.getElementById('routes').innerText")
    assert "POST /v1/chat/completions" in routes and "GET /hello" in routes
    assert page.evaluate("[...document.links].map(a => a.getAttribute('href')).join(' ')") \
        == "/docs /metrics"
    # record every text the answer shows while it streams
    page.evaluate("""window.__seen = [];
        new MutationObserver(() => { const b = document.querySelector('.bot');
          if (b) window.__seen.push(b.textContent); })
        .observe(document.getElementById('log'), {subtree: true, childList: true,
                                                  characterData: true}); true""")
    page.evaluate("document.getElementById('prompt').focus()")
    page.call("Input.insertText", text="hello ember")
    box = page.evaluate("""(() => { const r = document.getElementById('send')
        .getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()""")
    for kind in ("mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                  clickCount=1)
    page.wait_for("document.getElementById('status').textContent === 'done'")
    answer = page.evaluate("document.querySelector('.bot').textContent")
    assert answer == "[offline echo] You said: hello ember"
    assert page.evaluate("document.querySelector('.user').textContent") == "you: hello ember"
    chunks = int(page.evaluate("document.querySelector('.bot').dataset.chunks"))
    seen = [s for s in page.evaluate("window.__seen") if s]
    # streamed: several growing partial answers were on screen before the whole one
    partial = [s for s in dict.fromkeys(seen) if s != answer]
    assert chunks >= 5 and len(partial) >= 3, (chunks, seen)
    assert all(answer.startswith(s) for s in partial)
    # a second turn carries the history through the same endpoint
    page.evaluate("document.getElementById('prompt').value = 'again'; "
                  "document.getElementById('send').click(); true")
    page.wait_for("document.querySelectorAll('.bot').length === 2 && "
                  "document.getElementById('status').textContent === 'done'")
    assert page.evaluate("document.querySelectorAll('.bot')[1].textContent") \
        == "[offline echo] You said: again"
    assert page.console_errors == []
