"""In-process benchmark: µs per request through Ember's HTTP/1.1 protocol, no sockets.

    python bench/inprocess.py                     # compiled and pure, every path, both shapes
    python bench/inprocess.py --requests 50000 --paths /hello --batch 16
    python bench/inprocess.py --variant sync      # the same routes as ``def`` handlers

The protocol comes from the server's own factory (``Worker.start`` with an event loop
whose ``create_server`` only captures the factory), so whatever ``ember.http.protocol``
selects is what runs.  Each protocol gets ``connection_made`` with a fake transport that
collects writes, then the requests through ``data_received``: ``--batch`` requests per
call (1: one request per call, waiting for its answer, like keep-alive; 16: like wrk's
pipeline.lua), waiting for all answers of a batch before the next; ``--connections N``
feeds N such connections one batch each per round (what the loop sees with N clients).  The event loop is
uvloop, as in the server.  No kernel, no client: the figure is Ember's own cost per
request plus the loop's scheduling, and is much less noisy than wrk on a shared machine.
Each mode runs in its own interpreter (``EMBER_NO_EXTENSIONS=1`` for pure); the best of
``--repeat`` runs is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "apps"))

PATHS = ("/hello", "/json", "/users/42")


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes; counts the responses."""

    def __init__(self) -> None:
        super().__init__()
        self.responses = 0
        self.wanted = 0
        self.bytes_out = 0
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.closed = False
        self._protocol: Any = None

    def _got(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.responses += data.count(b"HTTP/1.1 ")
        if self.waiter is not None and self.responses >= self.wanted and not self.waiter.done():
            self.waiter.set_result(None)

    def write(self, data: Any) -> None:
        self._got(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self._got(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def get_protocol(self) -> Any:
        return self._protocol


async def capture_factory(app: Any) -> Any:
    """The protocol factory the server would hand to ``loop.create_server``."""
    from ember.server.config import ServerConfig
    from ember.server.worker import Worker

    loop = asyncio.get_running_loop()
    captured: dict[str, Any] = {}

    class _Server:
        def close(self) -> None:
            pass

    async def create_server(factory: Any, *args: Any, **kwargs: Any) -> Any:
        captured["factory"] = factory
        return _Server()

    loop.create_server = create_server  # type: ignore[method-assign]
    worker = Worker(app, ServerConfig(host="127.0.0.1", port=0, access_log=False))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        await worker.start(sock)
    if worker._ticker is not None:
        worker._ticker.cancel()
    return captured["factory"]


async def run_once(factory: Any, path: str, requests: int, batch: int,
                   connections: int = 1) -> float:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n".encode()
    chunk = request * batch
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(connections):
        proto = factory()
        transport = FakeTransport()
        transport._protocol = proto
        proto.connection_made(transport)
        conns.append((proto, transport))
    rounds = max(requests // (batch * connections), 1)
    t0 = time.perf_counter()
    for _ in range(rounds):
        waiters = []
        for proto, transport in conns:
            transport.wanted = transport.responses + batch
            transport.waiter = loop.create_future()
            proto.data_received(chunk)
            if transport.responses < transport.wanted:
                waiters.append(transport.waiter)
        for waiter in waiters:
            await waiter
    dt = time.perf_counter() - t0
    for proto, transport in conns:
        proto.connection_lost(None)
        if transport.responses != rounds * batch:
            raise SystemExit(f"{path}: {transport.responses} responses for {rounds * batch}")
    return dt / (rounds * batch * connections) * 1e6


def child(args: argparse.Namespace) -> None:
    """Runs in the interpreter of one mode; prints one JSON line."""
    import ember_app
    import uvloop

    from ember._compat import NO_EXTENSIONS, is_compiled
    from ember.http import protocol

    async def main() -> dict[str, Any]:
        factory = await capture_factory(ember_app.build(args.variant))
        out: dict[str, Any] = {"compiled": is_compiled(protocol._impl) and not NO_EXTENSIONS}
        for path in args.paths.split(","):
            await run_once(factory, path, max(args.requests // 10, args.batch), args.batch,
                           args.connections)
            out[path] = min([await run_once(factory, path, args.requests, args.batch,
                                            args.connections) for _ in range(args.repeat)])
        return out

    print(json.dumps(uvloop.run(main())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000, help="requests per run")
    ap.add_argument("--batch", type=str, default="1,16",
                    help="requests per data_received call (comma-separated list)")
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--modes", default="compiled,pure")
    ap.add_argument("--connections", type=int, default=1,
                    help="connections fed in each round (one batch each)")
    ap.add_argument("--variant", default="minimal", choices=("minimal", "sync"),
                    help="the bench app's async handlers, or the same as def handlers")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.batch = int(args.batch)
        child(args)
        return 0
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for batch in (int(b) for b in args.batch.split(",")):
        for mode in args.modes.split(","):
            env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
            if mode == "pure":
                env["EMBER_NO_EXTENSIONS"] = "1"
            cmd = [sys.executable, __file__, "--child", "--requests", str(args.requests),
                   "--batch", str(batch), "--paths", args.paths, "--repeat", str(args.repeat),
                   "--variant", args.variant, "--connections", str(args.connections)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return 1
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            if mode == "compiled" and not res.pop("compiled"):
                print("(compiled twins not built: run python setup.py build_ext --inplace)")
            res.pop("compiled", None)
            results[(mode, batch)] = res
    print(f"{'mode':<10}{'batch':>6}" + "".join(f"{p:>14}" for p in args.paths.split(",")))
    for (mode, batch), res in results.items():
        print(f"{mode:<10}{batch:>6}" + "".join(f"{res[p]:>11.2f} µs" for p in res))
    for batch in (int(b) for b in args.batch.split(",")):
        c, p = results.get(("compiled", batch)), results.get(("pure", batch))
        if c and p:
            print(f"pure ÷ compiled, batch {batch}: "
                  + ", ".join(f"{k} {p[k] / c[k]:.2f}×" for k in c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
