"""HTTP/3 beside HTTP/1.1 and HTTP/2 on the same Ember app (one worker, TLS everywhere).

    python bench/h3_load.py                      # 3000 requests per protocol
    python bench/h3_load.py -n 6000 -c 4 -m 10

The server runs ``app.run(http2=True, http3=True)`` pinned to CPU 0; the clients run
on CPU 1.  HTTP/1.1 and HTTP/2 are measured with h2load (``--h1`` / ALPN h2);
Debian's h2load has no HTTP/3 (no ngtcp2), so HTTP/3 is driven by an aioquic load
loop (``-c`` connections x ``-m`` concurrent streams).  That client is pure Python
and is the bottleneck of its row: compare the *server CPU per request* column
(utime+stime of the server process from /proc, before and after each run), which
does not depend on how fast the client is.  This machine is shared: one run's
ratios, never absolute numbers across runs.
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

APP = '''
import sys
from ember import Ember

app = Ember()

@app.get("/hello")
async def hello():
    return "Hello, World!"

app.run(port=int(sys.argv[1]), ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[3],
        http2=True, http3=True, log_level="warning")
'''


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def h2load(url: str, n: int, c: int, m: int, h1: bool) -> float:
    args = ["h2load", "-n", str(n), "-c", str(c), "-m", str(1 if h1 else m)]
    if h1:
        args.append("--h1")
    out = subprocess.run(["taskset", "-c", "1", *args, url], capture_output=True, text=True,
                         timeout=300).stdout
    done = re.search(r"(\d+) succeeded", out)
    if done is None or int(done.group(1)) != n:
        raise SystemExit(f"h2load failed:\n{out}")
    return float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))


async def h3_loop(port: int, n: int, c: int, m: int) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.http3._client import h3_connect

    per_conn = n // c

    async def one_connection() -> None:
        async with h3_connect(port) as client:
            left = per_conn

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    reply = await client.request("GET", "/hello", timeout=30)
                    assert reply.status == 200 and reply.body == b"Hello, World!"

            await asyncio.gather(*[worker() for _ in range(m)])

    started = time.perf_counter()
    await asyncio.gather(*[one_connection() for _ in range(c)])
    return per_conn * c / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="requests per protocol")
    parser.add_argument("-c", type=int, default=4, help="connections")
    parser.add_argument("-m", type=int, default=10, help="concurrent streams per connection")
    args = parser.parse_args()
    if shutil.which("h2load") is None or shutil.which("openssl") is None:
        raise SystemExit("needs h2load and openssl")
    tmp = Path(tempfile.mkdtemp(prefix="ember-h3-bench-"))
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    (tmp / "app.py").write_text(APP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(tmp / "app.py"),
                               str(port), str(cert), str(key)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        os.sched_setaffinity(0, {1})
        url = f"https://127.0.0.1:{port}/hello"
        rows = []
        for name, run in (
            ("HTTP/1.1 (h2load --h1, TLS)", lambda: h2load(url, args.n, args.c, args.m, True)),
            ("HTTP/2 (h2load, TLS)", lambda: h2load(url, args.n, args.c, args.m, False)),
            ("HTTP/3 (aioquic loop)",
             lambda: asyncio.run(h3_loop(port, args.n, args.c, args.m))),
        ):
            run()  # warm-up
            before = cpu_seconds(server.pid)
            rate = run()
            used = cpu_seconds(server.pid) - before
            rows.append((name, rate, used / args.n * 1e6))
        print(f"GET /hello, {args.n} requests, {args.c} connections x {args.m} streams "
              f"(HTTP/1.1: 1 per connection), server on CPU 0, client on CPU 1\n")
        print("| protocol | req/s | server CPU µs/request |")
        print("|---|---:|---:|")
        for name, rate, cpu in rows:
            print(f"| {name} | {rate:,.0f} | {cpu:,.0f} |")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
