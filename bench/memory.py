"""Where a serving Ember worker's memory goes: floors, idle, peak at 100 connections, per connection.

    python bench/memory.py                      # compiled and pure, with and without .pyc
    python bench/memory.py --mode ember --bytecode pyc --duration 5

Rows (VmRSS of a fresh interpreter that reports its own /proc/self/status):

* floors: ``python -S -c pass`` (no site-packages ``.pth`` hooks; site-packages is put
  on ``sys.path`` by hand for the ``-S`` rows that import packages), ``python -c pass``,
  then ``import asyncio``, ``+ uvloop``, ``+ orjson`` -- what any uvloop server holds;
* ``import ember``, ``from ember import Ember``, and the ``minimal`` app built with the
  server's modules and uvloop imported (bench/apps/ember_app.py, no socket, no loop);
* served: bench/apps/ember_app.py ``minimal`` with ``workers=1`` (one process, pinned to
  CPU 0): idle RSS one second after it listens; peak RSS (VmHWM) under
  ``wrk -t1 -c100`` (CPU 1) for ``--duration`` s; then 1,000 keep-alive connections
  that each completed one request and stay open: (RSS with them - RSS before) / 1,000
  is the memory one idle keep-alive connection costs.

``--bytecode``: ``as-is`` runs with this shell's environment (here
``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` in the worktree: Ember's sources are
compiled at every start, which costs time and ~1 MB of RSS that stays); ``pyc`` runs with
bytecode caches, as an installed wheel has them (``PYTHONPYCACHEPREFIX`` pointing to a
directory under the system temp dir, filled by a warm-up run; the worktree is not
written).  Writes bench/results/memory.json.  Targets (#9): idle <= 20 MB, peak at
100 connections <= 25 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PYCACHE = Path(tempfile.gettempdir()) / "ember-bench-pycache"
IDLE_MB, PEAK_MB = 20.0, 25.0
REPORT = ("import re; print(int(re.search(r'VmRSS:\\s+(\\d+)', "
          "open('/proc/self/status').read()).group(1)))")
SITE = f"import sys; sys.path.append({sysconfig.get_paths()['purelib']!r}); "
APP = (f"import sys; sys.path.insert(0, {str(HERE / 'apps')!r}); import ember_app; "
       "ember_app.build('minimal'); import ember.server.worker, ember.server.run, uvloop")
FLOORS = [
    ("python -S -c pass (no site hooks)", ["-S"], "pass"),
    ("python -S, + asyncio, uvloop, orjson", ["-S"], SITE + "import asyncio, uvloop, orjson"),
    ("python -S, minimal app + server modules", ["-S"], SITE + APP),
    ("python -c pass", [], "pass"),
    ("+ import asyncio", [], "import asyncio"),
    ("+ import uvloop", [], "import asyncio, uvloop"),
    ("+ import orjson", [], "import asyncio, uvloop, orjson"),
    ("import ember", [], "import ember"),
    ("from ember import Ember", [], "from ember import Ember"),
    ("minimal app built + server modules (+ uvloop)", [], APP),
]


def environ(pure: bool, bytecode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
    if pure:
        env["EMBER_NO_EXTENSIONS"] = "1"
    if bytecode == "pyc":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def own_rss_mb(flags: list[str], code: str, env: dict[str, str], runs: int = 3) -> float:
    """The smallest VmRSS a fresh interpreter reports after running ``code``."""
    values = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, *flags, "-c", f"{code}\n{REPORT}"], env=env,
                             capture_output=True, text=True, check=True)
        values.append(int(out.stdout.split()[-1]) / 1024)
    return min(values)


def status_mb(pid: int, key: str) -> float:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def held_connections(port: int, n: int) -> list[socket.socket]:
    """``n`` keep-alive connections that each completed one GET /hello and stay open."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"Hello, World!"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError(f"connection closed early: {got!r}")
            got += chunk
        socks.append(s)
    return socks


def served(pure: bool, bytecode: str, duration: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "ember_app.py", str(port),
                             "minimal"], cwd=HERE / "apps", env=environ(pure, bytecode),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1.0)
        pid = proc.pid
        out: dict[str, Any] = {"idle_rss_mb": status_mb(pid, "VmRSS"),
                               "threads": int(re.search(r"^Threads:\s+(\d+)", Path(
                                   f"/proc/{pid}/status").read_text(), re.M).group(1))}
        wrk = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c100", f"-d{duration}s",
                              f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True)
        m = re.search(r"Requests/sec:\s+([\d.]+)", wrk.stdout)
        out["c100_rps"] = float(m.group(1)) if m else None
        out["peak_rss_c100_mb"] = status_mb(pid, "VmHWM")
        time.sleep(0.5)
        before = status_mb(pid, "VmRSS")
        socks = held_connections(port, 1000)
        time.sleep(0.5)
        out["rss_1000_idle_conns_mb"] = with_conns = status_mb(pid, "VmRSS")
        out["kb_per_idle_connection"] = (with_conns - before) * 1024 / 1000
        for s in socks:
            s.close()
        out["peak_rss_mb"] = status_mb(pid, "VmHWM")
        return out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("ember", "ember-pure", "both"), default="both")
    ap.add_argument("--bytecode", choices=("as-is", "pyc", "both"), default="both")
    ap.add_argument("--duration", type=int, default=5, help="seconds of wrk -c100")
    args = ap.parse_args()
    modes = ["ember", "ember-pure"] if args.mode == "both" else [args.mode]
    codes = ["as-is", "pyc"] if args.bytecode == "both" else [args.bytecode]
    results: dict[str, Any] = {"floors": {}, "served": {}}
    if "pyc" in codes:  # fill the bytecode cache once, for every module the rows import
        for pure in (False, True):
            own_rss_mb([], FLOORS[-1][2], environ(pure, "pyc"), runs=1)
    print(f"{'interpreter that reports its own VmRSS':45s}" + "".join(
        f" {c + (' pure' if m == 'ember-pure' else ''):>12s}" for c in codes for m in modes))
    for label, flags, code in FLOORS:
        row = {f"{c}/{m}": own_rss_mb(flags, code, environ(m == "ember-pure", c))
               for c in codes for m in modes}
        results["floors"][label] = row
        print(f"{label:45s}" + "".join(f" {v:12.1f}" for v in row.values()), flush=True)
    print()
    for c in codes:
        for m in modes:
            r = served(m == "ember-pure", c, args.duration)
            results["served"][f"{c}/{m}"] = r
            print(f"served {m:10s} ({c:5s}): idle {r['idle_rss_mb']:.1f} MB "
                  f"({r['threads']} thread), peak at c100 {r['peak_rss_c100_mb']:.1f} MB "
                  f"({r['c100_rps'] or 0:,.0f} req/s), 1,000 idle keep-alive connections "
                  f"{r['rss_1000_idle_conns_mb']:.1f} MB = {r['kb_per_idle_connection']:.1f} KB "
                  "each", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps({
        "command": ("python bench/memory.py " + " ".join(sys.argv[1:])).strip(),
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "targets_mb": {"idle": IDLE_MB, "peak_c100": PEAK_MB}, **results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
