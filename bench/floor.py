"""Is the I/O layer the limit?  The bare uvloop floor with and without a Task per request.

    python bench/floor.py --python /path/to/python3.12 --python /path/to/python3.13
    python bench/floor.py --duration 5 --rounds 3

Runs ``apps/uvloop_floor.py`` (``plain``: answers from ``data_received``; ``task``: one
asyncio Task per request; ``eager``: the same with ``asyncio.eager_task_factory``, 3.12+)
under each interpreter (the running one, plus every ``--python``; each needs uvloop),
and Ember's bench app (``apps/ember_app.py minimal``, compiled) under the running one, as
``run.py`` does: server on CPU 0, ``wrk -t1 -c100`` on CPU 1, GET /hello, interleaved
rounds.  Prints the median req/s and the server's CPU µs per request (utime + stime from
/proc, which moves much less than req/s on a shared machine).  Floor + Task minus floor
is the least a framework that runs every handler in a Task pays on that interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", default=[], help="another interpreter")
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=100)
    args = ap.parse_args()
    rows: list[tuple[str, list[str]]] = []
    for py in [sys.executable, *args.python]:
        v = version(py)
        modes = ["plain", "task"] + (["eager"] if v >= "3.12" else [])
        for mode in modes:
            rows.append((f"floor {mode} (py{v})", [py, str(APPS / "uvloop_floor.py"), "{port}",
                                                    mode]))
    rows.append((f"ember compiled (py{version(sys.executable)})",
                 [sys.executable, str(APPS / "ember_app.py"), "{port}", "minimal"]))
    servers = {}
    for label, argv in rows:
        port = free_port()
        cmd = [a.replace("{port}", str(port)) for a in argv]
        proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        servers[label] = (proc, port)
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
    try:
        for label, (proc, port) in servers.items():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit(f"{label} exited with {proc.returncode}") from None
                    time.sleep(0.1)
            subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{args.connections}", "-d1s",
                            f"http://127.0.0.1:{port}/hello"], capture_output=True)
        labels = list(servers)
        for r in range(args.rounds):
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                proc, port = servers[label]
                c0 = cpu_ticks(proc.pid)
                out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{args.connections}",
                                      f"-d{args.duration}s", f"http://127.0.0.1:{port}/hello"],
                                     capture_output=True, text=True).stdout
                c1 = cpu_ticks(proc.pid)
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
                results[label].append((rps, (c1 - c0) / CLK_TCK / max(n, 1) * 1e6))
    finally:
        for proc, _ in servers.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(10)
    print(f"| server | req/s (median of {args.rounds}) | CPU µs/req (median) |")
    print("|---|---:|---:|")
    for label, vals in results.items():
        rps = statistics.median(v[0] for v in vals)
        cpu = statistics.median(v[1] for v in vals)
        print(f"| {label} | {rps:,.0f} | {cpu:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
