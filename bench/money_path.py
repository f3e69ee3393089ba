"""CPU of the gateway's money path per request, in-process (issue #20 target: <= 50 us).

What one budgeted, rate-limited, spend-logged chat request costs besides the model call:
the worst case (prompt bound + output), the per-key limits (RPM/TPM/concurrency), the
budget reservation, the settle (usage, metrics hook, refunds) and the spend-log row —
with the memory stores (the Redis stores add one round trip per phase instead).

    python bench/money_path.py            # prints us of CPU per request
"""

from __future__ import annotations

import asyncio
import time

from ember import Ember
from ember.gateway import Budget, KeyLimits
from ember.gateway.openai import mount_openai
from ember.gateway.spend import SpendLog
from ember.models.schemas import UsageStats

N = 20_000
RAW = (b'{"model": "gpt-4o-mini", "max_tokens": 200, "messages": [{"role": "system", '
       b'"content": "You are terse."}, {"role": "user", "content": "Summarise the plot of '
       b'Hamlet in two sentences, please."}]}')


def _with_image() -> bytes:
    """RAW with a 512x512 PNG inline (a ~1 KB data URI: its header decides the bound)."""
    import base64
    import struct
    import zlib

    row = b"\x00" + b"\x80\x20\x60" * 512
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 512, 512, 8, 2,
                                                                  0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(row * 512, 9)) + chunk(b"IEND", b""))
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    return (b'{"model": "gpt-4o-mini", "max_tokens": 200, "messages": [{"role": "user", '
            b'"content": [{"type": "text", "text": "What is in this image?"}, {"type": '
            b'"image_url", "image_url": {"url": "' + uri.encode() + b'"}}]}]}')


class _Request:
    def __init__(self) -> None:
        self.headers = {"authorization": "Bearer sk-bench-key-000001"}


async def main() -> None:
    import orjson

    app = Ember()
    spend = SpendLog("postgresql://bench@127.0.0.1:1/x", max_queue=N + 1)
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"team": "sk-bench-key-000001"},
                      budget=Budget(cost=1e9, tokens=10**15, period="day"),
                      limits=KeyLimits(rpm=10**9, tpm=10**15, max_concurrent=10_000),
                      spend_log=spend)
    body = orjson.loads(RAW)
    usage = UsageStats(31, 120, cost=0.0000765)
    sink = [("openai/gpt-4o-mini", usage, None)]
    request = _Request()

    raw = RAW

    async def one(i: int) -> None:
        caller = await gw.authenticate(request)
        release = await gw.admit(caller)
        target = gw.resolve(caller, "gpt-4o-mini")
        params = {"max_tokens": 200}
        tokens, cost = gw.chat_worst_case(target, raw, body, params, True)
        ticket = await gw.reserve(caller, target, tokens, cost, f"req_{i}")
        await ticket.settle(caller.name, "gpt-4o-mini", sink)
        release()

    for i in range(2000):  # warm up (price lookup, first store entries)
        await one(i)
    spend.queue.clear()
    started = time.process_time()
    for i in range(N):
        await one(i)
    per = (time.process_time() - started) / N * 1e6
    assert len(spend.queue) == N
    print(f"money path (auth + fair slot + worst case + limits + budget reserve + settle + "
          f"spend row), memory stores: {per:.1f} us CPU per request ({N} requests)")
    raw = _with_image()  # the image's bound from its header (ember.gateway.images)
    body = orjson.loads(raw)
    spend.queue.clear()
    started = time.process_time()
    for i in range(N):
        await one(i)
    per = (time.process_time() - started) / N * 1e6
    print(f"the same with an inline {len(raw) // 1024} KB PNG image: {per:.1f} us CPU per "
          "request")


if __name__ == "__main__":
    asyncio.run(main())
