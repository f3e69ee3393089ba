"""HTTP/2 beside granian and nginx, and HTTP/2 memory (issue #24 item 4).

``python bench/h2_peers.py [--requests 60000] [--granian PATH] [--skip-memory] [--baseline-src DIR]``

One run, each server on CPU 0 and h2load on CPU 1 (cleartext, prior knowledge):

* ``h2load -n N -c 20 -m 10`` and ``-m 1`` on ``/hello``, ``/json`` and ``/sse`` (three
  events, then the end) for Ember (our codec, and ``EMBER_HTTP2_CODEC=h2`` on ``/hello``),
  granian's HTTP/2 (RSGI, ``--http 2``; pass ``--granian`` or make a venv:
  ``python -m venv bench/.venv-h2peers && bench/.venv-h2peers/bin/pip install granian``)
  and nginx (``http2 on``, one worker; no SSE row);
* our HTTP/1.1 at 100 connections (``h2load --h1 -c 100``) on ``/hello``, the target's
  denominator;
* memory: RSS growth of an Ember server per idle HTTP/2 connection (1,000 connections
  after the preface and SETTINGS) and per open stream (10 connections × 100 streams whose
  handlers wait).

The machine is shared: compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

EMBER_APP = """
import asyncio, sys
from ember import Ember, sse_stream
app = Ember()
gate = None

@app.get("/hello")
async def hello():
    return "Hello, World!"

@app.get("/json")
async def json_():
    return {"hello": "world"}

@app.get("/sse")
async def sse():
    async def gen():
        for i in range(3):
            yield {"i": i}
    return sse_stream(gen())

@app.get("/block")
async def block():
    global gate
    if gate is None:
        gate = asyncio.Event()
    await gate.wait()
    return "released"

app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=1, http2=True, access_log=False)
"""

GRANIAN_APP = """
import json
_H = [("content-type", "text/plain; charset=utf-8")]
_J = [("content-type", "application/json")]
_S = [("content-type", "text/event-stream")]

async def app(scope, proto):
    path = scope.path
    if path == "/hello":
        proto.response_bytes(200, _H, b"Hello, World!")
    elif path == "/json":
        proto.response_bytes(200, _J, json.dumps({"hello": "world"}).encode())
    elif path == "/sse":
        t = proto.response_stream(200, _S)
        for i in range(3):
            await t.send_bytes(b'data: {"i":%d}\\n\\n' % i)
    else:
        proto.response_bytes(404, _H, b"Not Found")
"""

NGINX_CONF = """
worker_processes 1; daemon off; error_log {d}/error.log; pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000; server {{ listen 127.0.0.1:{port} http2;
  location = /hello {{ return 200 "Hello, World!"; }}
  location = /json {{ default_type application/json; return 200 '{{"hello":"world"}}'; }}
}} }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def h2load(port: int, path: str, n: int, c: int, m: int, h1: bool = False) -> str:
    cmd = ["taskset", "-c", "1", "h2load", "-n", str(n), "-c", str(c), "-m", str(m),
           f"http://127.0.0.1:{port}{path}"]
    if h1:
        cmd.insert(4, "--h1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    if rps is None or ok is None:
        return "error"
    return f"{float(rps.group(1)):,.0f}" + ("" if int(ok.group(1)) == n else
                                             f" ({ok.group(1)}/{n} ok)")


def serve(cmd: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_up(port)
    return proc


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def ember_env(codec: str, src: Path | None = None) -> dict:
    env = dict(os.environ, EMBER_HTTP2_CODEC=codec)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src or ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    return env


async def _memory(port: int, pid: int, phase: str) -> float:
    sys.path.insert(0, str(ROOT / "src"))
    from ember.http import _frames_py as F
    from ember.http import _hpack_py as H

    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + F.settings_frame([])
    before = rss_kb(pid)
    conns = []
    if phase == "idle":
        for _ in range(1000):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(preface)
            conns.append((_reader, writer))
        await asyncio.sleep(2)
        idle = (rss_kb(pid) - before) * 1024 / 1000
        for _, w in conns:
            w.close()
        return idle
    # one connection first, so the per-connection cost is not counted per stream
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(preface)
    await asyncio.sleep(0.5)
    before = rss_kb(pid)
    conns = []
    for _ in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        enc = H.Encoder()
        out = [preface]
        for i in range(100):
            block = enc.encode([(b":method", b"GET"), (b":scheme", b"http"),
                                (b":path", b"/block"), (b":authority", b"localhost")])
            out.append(F.headers_frames(2 * i + 1, block, end_stream=True))
        writer.write(b"".join(out))
        conns.append((reader, writer))
    await asyncio.sleep(3)
    per_stream = (rss_kb(pid) - before) * 1024 / 1000
    for _, w in conns:
        w.close()
    writer.close()
    return per_stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=60_000)
    ap.add_argument("--granian", default=str(HERE / ".venv-h2peers" / "bin" / "granian"))
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--baseline-src", type=Path, help="another tree's src/ (e.g. main, built "
                    "in place): its HTTP/2 rows on /hello, in the same run, for a before/after")
    ap.add_argument("--only", default="ember,h2,granian,nginx,h1,memory",
                    help="comma-separated subset of: ember,h2,granian,nginx,h1,memory")
    args = ap.parse_args()
    n = args.requests
    tmp = Path(tempfile.mkdtemp(prefix="h2peers"))
    (tmp / "ember_h2.py").write_text(EMBER_APP)
    (tmp / "granian_h2.py").write_text(GRANIAN_APP)
    rows: list[tuple[str, str, str, str]] = []

    def cells(name: str, proc: subprocess.Popen, port: int, paths: list[str]) -> None:
        for path in paths:
            h2load(port, path, 5000, 20, 10)  # warm-up
            rows.append((name, path, h2load(port, path, n, 20, 10), h2load(port, path, n, 20, 1)))
            print("|", " | ".join(rows[-1]), "|", flush=True)
        stop(proc)

    only = set(args.only.split(","))
    for codec, paths in (("ember", ["/hello", "/json", "/sse"]), ("h2", ["/hello"])):
        if codec not in only:
            continue
        port = free_port()
        proc = serve([sys.executable, str(tmp / "ember_h2.py"), str(port)], port,
                     ember_env(codec))
        cells(f"ember HTTP/2 ({'our codec' if codec == 'ember' else 'h2 package'})", proc,
              port, paths)
    if args.baseline_src is not None:
        port = free_port()
        proc = serve([sys.executable, str(tmp / "ember_h2.py"), str(port)], port,
                     ember_env("ember", args.baseline_src))
        cells(f"ember HTTP/2 (our codec, {args.baseline_src})", proc, port, ["/hello"])
    if "granian" in only and Path(args.granian).exists():
        port = free_port()
        proc = serve([args.granian, "--interface", "rsgi", "--host", "127.0.0.1", "--port",
                      str(port), "--workers", "1", "--http", "2", "--log-level", "warning",
                      "--loop", "uvloop", "--working-dir", str(tmp), "granian_h2:app"], port)
        cells("granian HTTP/2 (RSGI)", proc, port, ["/hello", "/json", "/sse"])
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if "nginx" in only and Path(nginx).exists():
        port = free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(d=tmp, port=port))
        proc = serve([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")], port)
        cells("nginx HTTP/2", proc, port, ["/hello", "/json"])
    if "h1" in only:
        port = free_port()
        proc = serve([sys.executable, str(tmp / "ember_h2.py"), str(port)], port,
                     ember_env("ember"))
        h2load(port, "/hello", 5000, 100, 1, h1=True)
        rows.append(("ember HTTP/1.1, 100 connections", "/hello",
                     h2load(port, "/hello", n, 100, 1, h1=True), "-"))
        print("|", " | ".join(rows[-1]), "|", flush=True)
        stop(proc)

    print(f"\nh2load -n {n} -c 20, req/s (one run)\n")
    print("| server | path | -m 10 | -m 1 |\n|---|---|---|---|")
    for name, path, m10, m1 in rows:
        print(f"| {name} | {path} | {m10} | {m1} |")
    if not args.skip_memory and "memory" in only:
        # NOTE: a fresh server for each figure, so freed memory is not re-used by the next
        idle, stream = 0.0, 0.0
        for phase in ("idle", "streams"):
            port = free_port()
            proc = serve([sys.executable, str(tmp / "ember_h2.py"), str(port)], port,
                         ember_env("ember"))
            result = asyncio.run(_memory(port, proc.pid, phase))
            stop(proc)
            idle, stream = (result, stream) if phase == "idle" else (idle, result)
        print(f"\nmemory: {idle / 1024:.1f} KiB per idle HTTP/2 connection, "
              f"{stream / 1024:.1f} KiB per open stream (RSS growth)")


if __name__ == "__main__":
    main()
