"""How long an Ember server takes to stop, start, and fail on a busy port.

    python bench/process_stop.py [--runs 5]

For workers=1 and workers=2, measures (median and max of ``--runs``):
* stop: SIGINT → process exit, idle, with one idle keep-alive connection and one
  connected-but-silent socket open (keep_alive_timeout and graceful_timeout at 600 s, so
  any wait on a timer would show);
* drain: SIGTERM while one request is in flight (it ends 0.2 s later); from the client
  receiving its response to the process exit;
* busy port: start on a port another socket listens on → exit with the one-line error;
* start: spawn → first 200.
Timing lives here, never in the tests (they wait on events).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import httpx

APP = textwrap.dedent('''
    import asyncio, os, sys
    from ember import Ember
    app = Ember()
    flag = sys.argv[1] + ".started"

    @app.get("/")
    async def index():
        return "ok"

    @app.get("/slow")
    async def slow():
        open(flag, "w").close()
        await asyncio.sleep(0.2)
        return "slow"

    app.run(port=int(sys.argv[1]), workers=int(sys.argv[2]), log_level="info",
            keep_alive_timeout=600, graceful_timeout=600)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(script: str, workers: int, port: int | None = None) -> tuple[subprocess.Popen, int, float]:
    port = port or _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, str(port), str(workers)], cwd=os.getcwd(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, port, time.perf_counter() - started
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.005)


def measure(script: str, workers: int, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "start": [], "stop: signal to 'Ember stopped'": [], "stop: signal to process exit": [],
        "drain: response received to process exit": [], "busy port": []}
    for _ in range(runs):
        proc, port, took = _start(script, workers)
        out["start"].append(took)
        with httpx.Client() as client, socket.create_connection(("127.0.0.1", port)):
            client.get(f"http://127.0.0.1:{port}/")
            t = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            for line in proc.stderr:
                if b"Ember stopped" in line:
                    out["stop: signal to 'Ember stopped'"].append(time.perf_counter() - t)
                    break
            proc.wait(60)
            out["stop: signal to process exit"].append(time.perf_counter() - t)
        proc.stderr.close()

        proc, port, _ = _start(script, workers)
        flag = f"{port}.started"
        url = f"http://127.0.0.1:{port}/slow"
        answered: list[float] = []

        def call(url: str = url, answered: list[float] = answered) -> None:
            assert httpx.get(url, timeout=30).text == "slow"
            answered.append(time.perf_counter())

        thread = threading.Thread(target=call)
        thread.start()
        while not os.path.exists(flag):
            time.sleep(0.001)
        os.remove(flag)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        exited = time.perf_counter()
        thread.join()
        out["drain: response received to process exit"].append(exited - answered[0])
        proc.stderr.close()

        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            t = time.perf_counter()
            busy = subprocess.run([sys.executable, script, str(holder.getsockname()[1]),
                                   str(workers)], capture_output=True, timeout=60)
            out["busy port"].append(time.perf_counter() - t)
            assert busy.returncode == 1 and len(busy.stderr.splitlines()) == 1, busy.stderr
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "stopapp.py")
        with open(script, "w") as f:
            f.write(APP)
        os.chdir(tmp)  # the app's "request started" flag files land here
        print("| workers | what | median ms | max ms |")
        print("|---|---|---|---|")
        for workers in (1, 2):
            for what, values in measure(script, workers, args.runs).items():
                print(f"| {workers} | {what} | {statistics.median(values) * 1000:.0f} | "
                      f"{max(values) * 1000:.0f} |")


if __name__ == "__main__":
    main()
