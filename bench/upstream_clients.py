"""Upstream HTTP client cost: httpx vs aiohttp vs a minimal asyncio client, one run.

Starts the anchor fake OpenAI server (uvicorn, CPU 1), then from this process (CPU 0)
sends N chat-completion POSTs over C keep-alive connections with each client and
reports wall req/s and this process's CPU time per request (the number that matters
for a gateway: the client's share of the ~1.7 ms per request).

    python bench/upstream_clients.py [N=6000] [C=50] [stream=0|1]

The machine is shared and noisy: compare the ratios of one run, not absolute numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

ANCHORS = "/work/shared/anchors/ai"
BODY = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}).encode()
SBODY = json.dumps({"model": "fake", "stream": True,
                    "messages": [{"role": "user", "content": "hi"}]}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_httpx(url: str, n: int, c: int, body: bytes, stream: bool) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(
            max_connections=1000, max_keepalive_connections=200)) as client:
        async def worker(k: int) -> None:
            for _ in range(k):
                if stream:
                    async with client.stream("POST", "/v1/chat/completions", content=body,
                                             headers={"content-type": "application/json"}) as r:
                        async for _chunk in r.aiter_raw():
                            pass
                else:
                    r = await client.post("/v1/chat/completions", content=body,
                                          headers={"content-type": "application/json"})
                    r.content  # noqa: B018
        await asyncio.gather(*[worker(n // c) for _ in range(c)])


async def run_aiohttp(url: str, n: int, c: int, body: bytes, stream: bool) -> None:
    import aiohttp

    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=1000)) as s:
        async def worker(k: int) -> None:
            for _ in range(k):
                async with s.post("/v1/chat/completions", data=body,
                                  headers={"content-type": "application/json"}) as r:
                    if stream:
                        async for _chunk in r.content.iter_any():
                            pass
                    else:
                        await r.read()
        await asyncio.gather(*[worker(n // c) for _ in range(c)])


class _Conn(asyncio.Protocol):
    """HTTP/1.1 keep-alive client connection: content-length and chunked bodies."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport = None

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _more(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def request(self, host: str, body: bytes) -> bytes:
        self.transport.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\n"
                             b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (host.encode(), len(body), body))
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            await self._more()
        head = bytes(self.buf[:end]).lower()
        del self.buf[:end + 4]
        if b"transfer-encoding: chunked" in head:
            out = bytearray()
            while True:
                while (i := self.buf.find(b"\r\n")) < 0:
                    await self._more()
                size = int(self.buf[:i].split(b";")[0], 16)
                while len(self.buf) < i + 2 + size + 2:
                    await self._more()
                out += self.buf[i + 2:i + 2 + size]
                del self.buf[:i + 2 + size + 2]
                if size == 0:
                    return bytes(out)
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(self.buf) < length:
            await self._more()
        data = bytes(self.buf[:length])
        del self.buf[:length]
        return data


async def run_minimal(url: str, n: int, c: int, body: bytes, stream: bool) -> None:
    host, port = url.split("//")[1].split(":")
    loop = asyncio.get_running_loop()

    async def worker(k: int) -> None:
        _t, conn = await loop.create_connection(_Conn, host, int(port))
        for _ in range(k):
            await conn.request(f"{host}:{port}", body)
        conn.transport.close()
    await asyncio.gather(*[worker(n // c) for _ in range(c)])


async def _run_adapter(url: str, n: int, c: int, body: bytes, lean: bool) -> None:
    """The providers' adapter (ember.models.providers._transport.AiohttpAsync), with its
    lean one-shot path (models/providers/_h1client) or through aiohttp."""
    from ember.models.providers._transport import AiohttpAsync
    from ember.models.providers.openai import OpenAIProvider

    client = AiohttpAsync(OpenAIProvider(api_key="x", base_url=url + "/v1"))
    if not lean:
        client.lean = None

    async def worker(k: int) -> None:
        for _ in range(k):
            await client.post("/chat/completions", body, None)
    try:
        await asyncio.gather(*[worker(n // c) for _ in range(c)])
    finally:
        await client.aclose()


async def run_adapter_aiohttp(url: str, n: int, c: int, body: bytes, stream: bool) -> None:
    await _run_adapter(url, n, c, body, False)


async def run_adapter_lean(url: str, n: int, c: int, body: bytes, stream: bool) -> None:
    await _run_adapter(url, n, c, body, True)


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    stream = len(sys.argv) > 3 and sys.argv[3] == "1"
    port = free_port()
    fake = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "uvicorn", "fake_openai:app",
                             "--app-dir", ANCHORS, "--port", str(port), "--log-level", "warning",
                             "--no-access-log", "--loop", "uvloop", "--http", "httptools"])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        body = SBODY if stream else BODY
        rows = []
        clients = [("httpx", run_httpx), ("aiohttp", run_aiohttp), ("minimal", run_minimal)]
        if not stream:
            clients += [("ours/aiohttp", run_adapter_aiohttp), ("ours/lean", run_adapter_lean)]
        for name, fn in clients:
            await fn(url, 500, c, body, stream)  # warm-up
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await fn(url, n, c, body, stream)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            rows.append((name, n / wall, cpu / n * 1e6))
        base = rows[0][2]
        print(f"{'client':12} {'req/s':>8} {'CPU µs/req':>11} {'vs httpx':>9}  (n={n}, c={c}, "
              f"stream={stream})")
        for name, rps, us in rows:
            print(f"{name:12} {rps:8.0f} {us:11.0f} {us / base:8.2f}x")
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    os.sched_setaffinity(0, {0})
    import uvloop

    uvloop.install()
    asyncio.run(main())
