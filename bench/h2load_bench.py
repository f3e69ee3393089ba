"""HTTP/2 throughput and memory with h2load: what the HTTP/2 hardening costs.

``python bench/h2load_bench.py [--src DIR ...] [--requests N] [--rounds R]``

For each source tree given with ``--src`` (default: the installed ``ember``), starts
``bench/apps/ember_app.py`` with ``http2=True`` (one worker each, pinned to CPU 0), drives
them in interleaved rounds with ``h2load -c 10 -m 100`` (10 connections × 100 concurrent
streams, pinned to CPU 1) against ``/hello``, and prints requests/s (median of the rounds)
and each server's peak RSS.  Passing the old and the new tree in one run (``--src
/tmp/before/src --src src``) gives a before/after ratio on the same machine state.
Needs ``h2load`` (Debian: nghttp2-client) and ``taskset``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = """
import sys
sys.path.insert(0, {apps!r})
from ember_app import build
app = build("minimal")
app.run(host="127.0.0.1", port={port}, workers=1, http2=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start(src: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    code = SERVER.format(apps=str(HERE / "apps"), port=port)
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return server, port


def h2load(port: int, requests: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", "1", "h2load", "-c", "10", "-m", "100", "-n", str(requests),
         f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    failed = re.search(r"(\d+) failed", out)
    if match is None or failed is None:
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    if int(failed.group(1)):
        raise RuntimeError(f"{failed.group(1)} requests failed:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", action="append", default=[],
                        help="a source tree (…/src) to import ember from; repeatable")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("h2load", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (Debian: apt-get install nghttp2-client util-linux)")
    trees = args.src or [None]
    servers = [start(src) for src in trees]
    rounds: list[list[float]] = [[] for _ in trees]
    try:
        for _ in range(args.rounds):  # NOTE: interleaved, so drift hits every tree alike
            for i, (_proc, port) in enumerate(servers):
                rounds[i].append(h2load(port, args.requests))
        results = [(src or "installed", statistics.median(rps), peak_rss_mb(proc.pid), rps)
                   for src, (proc, _port), rps in zip(trees, servers, rounds, strict=True)]
    finally:
        for proc, _port in servers:
            proc.terminate()
            proc.wait(10)
    base = results[0][1]
    print(f"{'tree':40} {'req/s (median)':>15} {'ratio':>7} {'round ratio':>12} "
          f"{'peak RSS MB':>12}  rounds")
    for name, median, rss, rps in results:
        # the median of per-round ratios: rounds run back to back, so drift cancels
        per_round = statistics.median(r / b for r, b in zip(rps, rounds[0], strict=True))
        print(f"{name:40} {median:15,.0f} {median / base:7.2f} {per_round:12.2f} "
              f"{rss:12.1f}  " + ", ".join(f"{r:,.0f}" for r in rps))


if __name__ == "__main__":
    main()
