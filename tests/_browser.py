"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), for page tests.

``browser`` (a pytest fixture) starts the system ``chromium`` once per test, with a
fresh profile, no network beyond loopback, and hands back a ``Browser`` whose ``page()``
opens a tab.  Without chromium the test is skipped with the reason — unless
``EMBER_REQUIRE_SERVICES=1`` (CI), which makes it a failure.

Waits are event-based (``wait_for`` polls a JS predicate) with generous timeouts that
only guard against hangs; no sleep is ever an assertion.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--remote-debugging-port=0",
          # NOTE: any host but loopback fails to resolve: a page that reaches a CDN breaks
          "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab: ``goto``, ``evaluate``, ``wait_for``; records every request URL."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ws: Any) -> None:
        self._loop = loop
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), loop)

    async def _read(self) -> None:
        async for raw in self._ws:
            msg = json.loads(raw)
            if "id" in msg:
                fut = self._pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif msg.get("method") == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console_errors.append(json.dumps(msg["params"])[:500])

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut = self._loop.create_future()
        self._pending[msg_id] = fut
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(fut, 60)
        if "error" in reply:
            raise RuntimeError(f"CDP {method}: {reply['error']}")
        return reply["result"]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result."""
        return asyncio.run_coroutine_threadsafe(self._send(method, params), self._loop).result(90)

    def goto(self, url: str) -> None:
        """Navigate and wait until the document has loaded."""
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, predicate: str, timeout: float = 30.0) -> Any:
        """Poll a JS expression until truthy; fail with the page's text after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(predicate)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''")
                raise AssertionError(f"timed out waiting for {predicate!r}; page text: "
                                     f"{(text or '')[:800]!r}; errors: {self.console_errors}")
            time.sleep(0.05)


class Browser:
    """A headless Chromium process with its DevTools endpoint."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="ember-chromium-")
        self.proc = subprocess.Popen([binary, *_FLAGS, f"--user-data-dir={self.profile}",
                                      "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = self._devtools_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._sockets: list[Any] = []

    def _devtools_port(self) -> int:
        lines = []
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # NOTE: ends when chromium exits (guards a hang)
            lines.append(line)
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
                self._drain.start()
                return int(found.group(1))
        raise RuntimeError("chromium exited before DevTools listened: " + "".join(lines)[-2000:])

    def page(self) -> Page:
        """A new tab with Page, Runtime and Network events on."""
        import urllib.request

        from websockets.asyncio.client import connect

        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            target = json.load(resp)
        async def open_ws() -> Any:
            return await connect(target["webSocketDebuggerUrl"], max_size=None)

        ws = asyncio.run_coroutine_threadsafe(open_ws(), self.loop).result(30)
        self._sockets.append(ws)
        page = Page(self.loop, ws)
        for domain in ("Page", "Runtime", "Network"):
            page.call(f"{domain}.enable")
        return page

    def close(self) -> None:
        for ws in self._sockets:
            asyncio.run_coroutine_threadsafe(ws.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium (skipped without chromium, failing under CI's rule)."""
    binary = chromium_binary()
    if binary is None:
        message = "chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("EMBER_REQUIRE_SERVICES", "") not in ("", "0"):
            pytest.fail(f"EMBER_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()
