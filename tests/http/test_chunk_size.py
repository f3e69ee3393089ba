"""Chunk sizes of 2^63 and more, up to 32 hex digits, leading zeros, garbage (issue 23).

The compiled parser raised OverflowError (a traceback per request) and the pure
twin waited for 2^63 bytes: both now answer 400 and close at once.  Parser twins
directly, then a real server over a real socket.
"""

from __future__ import annotations

import socket

import pytest

from ember import Ember, Request
from tests.conftest import RunningServer
from tests.http.parsers import run_ember, twin_params

TWINS = twin_params()
HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

REFUSED = [
    b"8000000000000000",  # 2^63
    b"ffffffffffffffff",  # 2^64 - 1
    b"10000000000000000",  # 2^64
    b"F" * 32,
    b"0" * 15 + b"8000000000000000",  # leading zeros do not hide the size
    b"0" * 16 + b"f" * 16,
    b"9" * 32,
    b"7fffffffffffffff0",
    b"-1", b"+5", b"0x5", b" 5", b"5 ", b"g", b"\xff", b"5\x00", b"", b";a=b",
]
ACCEPTED = [  # (size field, size)
    (b"0" * 31 + b"5", 5),
    (b"0000000000000000005", 5),
    (b"00000000000000000", 0),
]


@pytest.mark.parametrize("module", TWINS)
@pytest.mark.parametrize("size", REFUSED)
def test_huge_or_garbage_chunk_size_is_a_400(module, size):
    for splits in (None, [len(HEAD) + 1], list(range(len(HEAD), len(HEAD) + 40))):
        _, error = run_ember(module, HEAD + size + b"\r\nabc", splits)
        assert error is not None and error.status == 400, (size, splits)


def test_largest_accepted_chunk_size_waits_for_data():
    for module in TWINS:
        module = module.values[0]
        messages, error = run_ember(module, HEAD + b"7fffffffffffffff\r\nabc")
        assert error is None and messages[0]["body"] == b"abc"


@pytest.mark.parametrize("module", TWINS)
@pytest.mark.parametrize("field,size", ACCEPTED)
def test_leading_zeros_are_allowed(module, field, size):
    body = b"x" * size
    messages, error = run_ember(module, HEAD + field + b"\r\n" + body
                                + (b"\r\n0\r\n\r\n" if size else b"\r\n"))
    assert error is None
    assert messages[0]["body"] == body and messages[0]["complete"]


@pytest.fixture(scope="module")
def server():
    app = Ember(openapi_url=None)

    @app.post("/echo")
    async def echo(request: Request):
        return await request.body()

    srv = RunningServer(app)
    yield srv
    srv.stop()


@pytest.mark.parametrize("size", REFUSED[:9])
def test_real_server_answers_400_and_closes_at_once(server, size, caplog):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(HEAD + size + b"\r\nabc")
        out = b""
        while True:  # the server must close (the 5 s timeout is a hang guard)
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"connection: close" in out.lower()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
