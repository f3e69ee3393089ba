"""1,000 simultaneous connections to one worker: every one is accepted and answered (issue #9).

The server is a real ``app.run(workers=1)`` process; the clients are 1,000 asyncio
connections opened at once from this process (a burst far above the default accept
batch, within the default listen backlog of 2,048), each kept open while all the
others are too.  Waits end on responses; timeouts only guard hangs.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import free_port

N = 1000
HANG_GUARD = 60.0

SERVER = textwrap.dedent("""
    import sys
    from ember import Ember

    app = Ember()

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=1)
""")

REQUEST = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
EXPECTED_BODY = b"Hello, World!"


async def _one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head.split(b"\r\n", 1)[0] + b" " + await reader.readexactly(length)


async def _burst(port: int) -> list[bytes]:
    # All connections first (the accept burst), then one request on each, then a second
    # request on each while every connection is still open (1,000 live keep-alives).
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port)
                                   for _ in range(N)))
    first = await asyncio.gather(*(_one_request(r, w) for r, w in conns))
    second = await asyncio.gather(*(_one_request(r, w) for r, w in conns))
    for _, w in conns:
        w.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    return first + second


async def _wait_up(port: int) -> None:
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        w.close()
        return


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_a_thousand_simultaneous_connections_are_all_answered(tmp_path: Path,
                                                              pure: bool) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N + 100:
        if hard != resource.RLIM_INFINITY and hard < N + 100:
            pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < {N + 100}: cannot run")
        resource.setrlimit(resource.RLIMIT_NOFILE, (N + 100, hard))
    script, log = tmp_path / "server.py", tmp_path / "server.log"
    script.write_text(SERVER)
    port = free_port()
    env = {**os.environ, "EMBER_NO_EXTENSIONS": "1" if pure else ""}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script), str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        asyncio.run(asyncio.wait_for(_wait_up(port), HANG_GUARD))
        answers = asyncio.run(asyncio.wait_for(_burst(port), HANG_GUARD))
        assert len(answers) == 2 * N
        assert set(answers) == {b"HTTP/1.1 200 OK " + EXPECTED_BODY}
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()
