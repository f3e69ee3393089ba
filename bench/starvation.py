"""One connection must not starve the others (issue 23).

    python bench/starvation.py                 # both attacks, 1 MiB each
    python bench/starvation.py --mib 0.25 --only chunks

An Ember server (one worker, one process) answers ``GET /hello`` to a victim
client that sends one request at a time, while an attacker on the same worker
sends a 1 MiB request body as 1-byte chunks (``chunks``) or a 1 MiB WebSocket
message as 1-byte fragments (``fragments``).  Reported: the victim's p50/p99/max
latency during the attack, and the server's CPU seconds per MiB of attack
(utime+stime from /proc/PID/stat around the attack, minus what the victim's
requests cost at the quiet-run rate).  Targets: victim p99 <= 50 ms, attacker
<= 0.3 s CPU per MiB (compiled mode).  The machine is shared: one run, ratios.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

APP = """
import sys
from ember import Ember, Request, ServerLimits, WebSocket
app = Ember(openapi_url=None, server_limits=ServerLimits(max_body_size=64 << 20,
                                                        min_body_rate=None))
@app.get("/hello")
async def hello():
    return "hi"
@app.post("/sink")
async def sink(request: Request):
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    return {"n": n}
@app.websocket("/ws", max_size=64 << 20, compression=False)
async def ws(ws: WebSocket):
    await ws.accept()
    m = await ws.receive()
    await ws.send_text(str(len(m)))
app.run(port=int(sys.argv[1]), log_level="warning")
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def victim(port: int, stop: threading.Event, out: list[float]) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    req = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    while not stop.is_set():
        t = time.perf_counter()
        s.sendall(req)
        data = b""
        while not data.endswith(b"hi"):
            data += s.recv(4096)
        out.append(time.perf_counter() - t)
        time.sleep(0.002)
    s.close()


def attack_chunks(port: int, size: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"1\r\nx\r\n" * 65536
    for _ in range(size // 65536):
        s.sendall(piece)
    s.sendall(b"0\r\n\r\n")
    data = b""
    while b"}" not in data:
        data += s.recv(4096)
    s.close()


def attack_fragments(port: int, size: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)

    def frame(op: int, fin: bool) -> bytes:
        return struct.pack("!BB", (0x80 if fin else 0) | op, 0x81) + b"\0\0\0\0x"

    s.sendall(frame(2, False))
    middle = frame(0, False) * 65536
    for _ in range(size // 65536):
        s.sendall(middle)
    s.sendall(frame(0, True))
    data = b""
    while not data:
        data = s.recv(4096)
    s.close()


def run(kind: str, size: int) -> dict[str, float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    try:
        wait_port(port)
        # the victim's own cost, quiet
        stop = threading.Event()
        quiet: list[float] = []
        c0 = cpu_seconds(proc.pid)
        t = threading.Thread(target=victim, args=(port, stop, quiet))
        t.start()
        time.sleep(1.0)
        stop.set()
        t.join()
        per_request = (cpu_seconds(proc.pid) - c0) / max(1, len(quiet))
        stop = threading.Event()
        lat: list[float] = []
        t = threading.Thread(target=victim, args=(port, stop, lat))
        t.start()
        time.sleep(0.2)
        c0 = cpu_seconds(proc.pid)
        n0 = len(lat)
        w0 = time.perf_counter()
        attacks = 0
        while not attacks or time.perf_counter() - w0 < 2.0:  # enough victim samples
            (attack_chunks if kind == "chunks" else attack_fragments)(port, size)
            attacks += 1
        wall = (time.perf_counter() - w0) / attacks
        cpu = (cpu_seconds(proc.pid) - c0 - per_request * (len(lat) - n0)) / attacks
        stop.set()
        t.join()
        during = sorted(lat[n0:]) or [0.0]
        return {"p50_ms": 1000 * statistics.median(during),
                "p99_ms": 1000 * during[min(len(during) - 1, int(len(during) * 0.99))],
                "max_ms": 1000 * during[-1], "victim_requests": len(during),
                "cpu_s_per_mib": cpu / (size / (1 << 20)), "wall_s": wall}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=float, default=1.0)
    ap.add_argument("--only", choices=["chunks", "fragments"])
    args = ap.parse_args()
    size = max(65536, int(args.mib * (1 << 20)) // 65536 * 65536)
    mode = "pure" if os.environ.get("EMBER_NO_EXTENSIONS") else "compiled"
    for kind in ("chunks", "fragments"):
        if args.only and kind != args.only:
            continue
        r = run(kind, size)
        print(f"{kind:9} {mode:8} victim p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
              f"max {r['max_ms']:.1f} ms  ({r['victim_requests']} requests)  attacker "
              f"{r['cpu_s_per_mib']:.2f} s CPU/MiB  wall {r['wall_s']:.2f} s per attack")


if __name__ == "__main__":
    main()
