"""The compiled parser (C scans) and the pure reference agree on mutated input, any split."""

from __future__ import annotations

import random

import pytest

from tests.http.parsers import parser_twins, run_ember

TWINS = parser_twins()

SEEDS = [
    b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: 1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\nUser-Agent: Mozilla/5.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHOST: X\r\nACCEPT-Encoding:  gzip \t\r\n\r\n",
]
ALPHABET = b" \t\r\n:;,/AZaz09\x00\x7f\x80\xff-_\"="


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(buf) + 1)
        if op < 0.4 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice(ALPHABET)
        elif op < 0.7:
            buf[pos:pos] = bytes([rng.choice(ALPHABET)])
        elif buf:
            del buf[min(pos, len(buf) - 1)]
    return bytes(buf)


def _outcome(module, data: bytes, splits: list[int]):
    msgs, err = run_ember(module, data, splits)
    return msgs, None if err is None else (err.status, err.reason)


@pytest.mark.skipif(len(TWINS) < 2, reason="compiled parser not built")
@pytest.mark.parametrize("seed", range(8))
def test_twins_agree_on_mutations(seed):
    rng = random.Random(seed)
    pure, compiled = TWINS[0], TWINS[1]
    for _ in range(300):
        data = _mutate(rng, rng.choice(SEEDS))
        splits = sorted(rng.sample(range(1, max(len(data), 2)), k=min(3, max(len(data) - 1, 1))))
        for cut in ([], splits):
            assert _outcome(compiled, data, cut) == _outcome(pure, data, cut), (data, cut)
