"""Instructions per request of the Ember server, counted by ``valgrind --tool=callgrind``.

    python bench/callgrind.py                         # compiled and pure, GET /hello, 5,000 requests
    python bench/callgrind.py --requests 20000 --path /users/42 --modes compiled
    python bench/callgrind.py --variant sync          # the same routes as def handlers
    python bench/callgrind.py --pipeline 16 --modes compiled  # 16 requests per write

On a shared, noisy machine wall-clock figures move by tens of percent between runs;
instruction counts move by well under one percent, so this is the figure to accept or
reject an optimisation with.  For each mode the server (``bench/apps/ember_app.py
minimal``, one worker) runs twice under callgrind, pinned to CPU 0: once serving
``--requests`` keep-alive requests from ``--connections`` client connections (a plain
asyncio client pinned to CPU 1: each connection sends one request, reads its answer, and
sends the next), and once serving ``--baseline`` requests (default 0: start, one probe
connection, stop).  Instructions per request = (Ir(run) - Ir(baseline)) / (requests -
baseline); startup, imports and shutdown cancel out.  Both runs stop with SIGINT.
Cache and branch simulation are off (``--cache-sim=no``), so only instructions (Ir) are
counted; kernel time is not part of the figure (callgrind sees user space only).
Needs ``valgrind`` (Debian package ``valgrind``).  Takes ~1-2 min per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "ember_app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            # NOTE: an answered request, not only an accepted connection: the socket
            # listens before the worker installs its SIGINT handler, and a SIGINT in
            # between was lost (the run then hung until killed).
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(65536).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("server did not start under valgrind")


async def client(port: int, path: str, requests: int, connections: int,
                 pipeline: int = 1) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    per_conn = [requests // connections + (1 if i < requests % connections else 0)
                for i in range(connections)]

    async def one(count: int) -> None:
        if count == 0:
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        buf = b""
        sent = 0
        for i in range(count):
            if sent == i:  # NOTE: --pipeline N: N requests per write, like wrk's pipeline.lua
                n = min(pipeline, count - i)
                writer.write(request * n)
                sent += n
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    m = re.search(rb"(?i)content-length: *(\d+)", buf[:end])
                    total = end + 4 + (int(m.group(1)) if m else 0)
                    if len(buf) >= total:
                        status = buf[9:12]
                        if status != b"200":
                            raise SystemExit(f"unexpected answer {buf[:total]!r}")
                        buf = buf[total:]
                        break
                chunk = await reader.read(65536)
                if not chunk:
                    raise SystemExit("server closed the connection")
                buf += chunk
        writer.close()

    await asyncio.gather(*(one(n) for n in per_conn))


def run(mode: str, requests: int, args: argparse.Namespace, workdir: Path) -> int:
    """Ir of one server run that served ``requests`` requests."""
    port = free_port()
    out = workdir / f"callgrind.{mode}.{requests}.out"
    env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
    if mode == "pure":
        env["EMBER_NO_EXTENSIONS"] = "1"
    cmd = ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--cache-sim=no",
           "--branch-sim=no", f"--callgrind-out-file={out}", sys.executable, str(APP),
           str(port), args.variant]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_ready(port, proc)
        if requests:
            client_cmd = ["taskset", "-c", "1", sys.executable, __file__, "--client",
                          str(port), "--path", args.path, "--requests", str(requests),
                          "--connections", str(args.connections),
                          "--pipeline", str(args.pipeline)]
            subprocess.run(client_cmd, check=True)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{mode}: the server did not stop within 600 s of SIGINT under "
                             "valgrind (an overloaded machine?); try again") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text(errors="replace") if out.exists() else ""
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if m is None:
        raise SystemExit(f"no callgrind totals in {out}:\n{err.decode(errors='replace')[-2000:]}")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--baseline", type=int, default=0, help="requests of the baseline run")
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--modes", default="compiled,pure")
    ap.add_argument("--variant", default="minimal", choices=("minimal", "sync"),
                    help="bench app variant: async handlers, or the same as def handlers")
    ap.add_argument("--pipeline", type=int, default=1,
                    help="requests per client write (16: like wrk's pipelined scenario)")
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        asyncio.run(client(args.client, args.path, args.requests, args.connections,
                           args.pipeline))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 1
    if args.requests <= args.baseline:
        print("--requests must be larger than --baseline", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="ember-callgrind-"))
    for mode in args.modes.split(","):
        base = run(mode, args.baseline, args, workdir)
        total = run(mode, args.requests, args, workdir)
        per = (total - base) / (args.requests - args.baseline)
        print(f"{mode:<9} {args.variant} GET {args.path}: {per:,.0f} instructions/request "
              f"(Ir {total:,} - baseline {base:,}, {args.requests - args.baseline} requests, "
              f"{args.connections} connections, {args.pipeline} per write)", flush=True)
    print(f"(callgrind output files in {workdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
