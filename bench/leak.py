"""Leak check: RSS and open fds of one Ember server process over many requests and connections.

    python bench/leak.py                          # 1,000,000 requests, 200,000 cycles, both modes
    python bench/leak.py --quick                  # 100,000 requests, 20,000 cycles
    python bench/leak.py --requests 500000 --cycles 100000 --mode ember

One Ember server (bench/apps/ember_app.py's ``minimal`` app: /hello, /json,
/users/{id:int}; ``workers=1``: a single process) is
pinned to CPU 0; the clients run on CPU 1.  For each mode (compiled, and
``EMBER_NO_EXTENSIONS=1``):

0. idle: VmRSS and open fds one second after the server listens, before any request.
1. warm-up: a tenth of each phase below (at least 20k requests / 5k cycles), so the
   allocator's pools and caches are in use; then the baseline RSS is read.
2. keep-alive: ``--requests`` GET /hello over 100 keep-alive connections (wrk with
   bench/count.lua, which stops after exactly that many responses).
3. connect/close: ``--cycles`` connections that each send one
   ``Connection: close`` request, read the answer and close (wrk, 50 at a time).
4. aborts: ``--cycles // 4`` connections from Python that close at once, close
   mid-headers, or send a request and reset (SO_LINGER 0) without reading.

RSS (VmRSS) is sampled every 0.25 s during each phase; growth = RSS at the end of
the phase minus the baseline (after the warm-up).  Open fds are counted after
each phase once connections are closed (waiting up to 5 s).  ``--bytecode pyc`` runs
the server with bytecode caches, as an installed wheel has them (``PYTHONPYCACHEPREFIX``
under the system temp dir; by default the server inherits this shell's environment,
which here sets ``PYTHONDONTWRITEBYTECODE=1``: Ember's sources are compiled at start,
~1 MB more RSS; see bench/memory.py).  Targets (#2, #9): RSS
grows <= 2 MB over 1M keep-alive requests and over 200k connect/close cycles;
fds return to the baseline; idle RSS <= 20 MB.  Writes bench/results/leak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WRK = "wrk"
GROWTH_MB = 2.0
IDLE_MB = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, baseline: int, wait: float = 5.0) -> int:
    deadline = time.monotonic() + wait
    n = fds(pid)
    while n > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        n = fds(pid)
    return n


def wrk_count(port: int, n: int, connections: int, pid: int,
              close: bool = False) -> tuple[int, float, list[float], str]:
    """Drive exactly ``n`` responses through wrk; (requests, seconds, RSS samples, errors)."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "done"
        argv = ["taskset", "-c", "1", WRK, "-t1", f"-c{connections}", "-d3600s", "-s",
                str(HERE / "count.lua")]
        if close:
            argv += ["-H", "Connection: close"]
        argv += [f"http://127.0.0.1:{port}/hello", "--", str(n), str(marker)]
        t = time.monotonic()
        wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples = []
        while not marker.exists() and wrk.poll() is None:
            samples.append(rss_mb(pid))
            time.sleep(0.25)
        elapsed = time.monotonic() - t
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)  # wrk prints its summary at once on SIGINT
        out = wrk.communicate(timeout=30)[0]
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"wrk failed: {out[-800:]}")
    errors = ""
    e = re.search(r"Socket errors: [^\n]*", out)
    if e:
        errors += e.group(0)
    e = re.search(r"Non-2xx or 3xx responses: \d+", out)
    if e:
        errors += (" " if errors else "") + e.group(0)
    samples.append(rss_mb(pid))
    return int(m.group(1)), elapsed, samples, errors


def aborts(port: int, n: int) -> None:
    """Connections that end badly: closed at once, closed mid-headers, reset after a request."""
    linger = struct.pack("ii", 1, 0)
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        kind = i % 3
        if kind == 1:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Ag")
        elif kind == 2:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()


def run_mode(mode: str, requests: int, cycles: int, bytecode: str = "as-is") -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
    if mode == "ember-pure":
        env["EMBER_NO_EXTENSIONS"] = "1"
    if bytecode == "pyc":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "ember-bench-pycache")
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'apps'); "
                        "import ember_app; ember_app.build('minimal'); "
                        "import ember.server.worker, ember.server.run, uvloop"],
                       cwd=HERE, env=env, check=True)  # fills the cache
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "ember_app.py", str(port),
                             "minimal"],
                            cwd=HERE / "apps", env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    os.sched_setaffinity(0, {1})  # our own client work (aborts) runs on CPU 1
    out: dict[str, Any] = {"mode": mode, "bytecode": bytecode}
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"ember server exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        pid = proc.pid
        time.sleep(1.0)
        out["idle_rss_mb"] = rss_mb(pid)
        out["fds_idle"] = fds_idle = settled_fds(pid, 0, 0)
        print(f"[{mode}] idle: RSS {out['idle_rss_mb']:.1f} MB, {fds_idle} open fds", flush=True)

        warm_req, warm_cyc = max(20_000, requests // 10), max(5_000, cycles // 10)
        wrk_count(port, warm_req, 100, pid)
        wrk_count(port, warm_cyc, 50, pid, close=True)
        aborts(port, max(1000, cycles // 40))
        fds_base = settled_fds(pid, fds_idle)
        time.sleep(0.5)
        base = rss_mb(pid)
        out.update(baseline_rss_mb=base, fds_after_warmup=fds_base)
        print(f"[{mode}] after warm-up ({warm_req:,} requests, {warm_cyc:,} cycles): "
              f"RSS {base:.1f} MB, {fds_base} fds", flush=True)

        phases = []
        prev = base
        for name, action in (
            ("keep-alive requests", lambda: wrk_count(port, requests, 100, pid)),
            ("connect/request/close cycles", lambda: wrk_count(port, cycles, 50, pid,
                                                               close=True)),
            ("aborted connections", lambda: aborted(port, cycles // 4, pid)),
        ):
            count, secs, samples, errors = action()
            n_fds = settled_fds(pid, fds_base)
            time.sleep(0.3)
            end = rss_mb(pid)
            phase = {"phase": name, "count": count, "seconds": round(secs, 1),
                     "rss_start_mb": prev, "rss_end_mb": end, "rss_max_mb": max([*samples, end]),
                     "growth_mb": end - base, "growth_in_phase_mb": end - prev,
                     "fds_after": n_fds, "wrk_errors": errors}
            phases.append(phase)
            print(f"[{mode}] {count:,} {name} in {secs:.0f} s: RSS {prev:.1f} -> {end:.1f} MB "
                  f"(max {phase['rss_max_mb']:.1f}; +{end - base:.2f} MB over the baseline), "
                  f"fds {n_fds} (baseline {fds_base}){'  ' + errors if errors else ''}",
                  flush=True)
            prev = end
        out["phases"] = phases
        out["peak_rss_mb"] = rss_mb(pid, "VmHWM")
        out["alive"] = proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    return out


def aborted(port: int, n: int, pid: int) -> tuple[int, float, list[float], str]:
    t = time.monotonic()
    samples = []
    step = max(1, n // 20)
    for i in range(0, n, step):
        aborts(port, min(step, n - i))
        samples.append(rss_mb(pid))
    return n, time.monotonic() - t, samples, ""


def verdicts(result: dict[str, Any]) -> list[str]:
    out = []
    idle = result["idle_rss_mb"]
    out.append(f"idle RSS {idle:.1f} MB (<= {IDLE_MB:.0f}: "
               f"{'met' if idle <= IDLE_MB else 'MISSED'})")
    for p in result["phases"]:
        g = p["growth_in_phase_mb"]
        ok = g <= GROWTH_MB and p["fds_after"] <= result["fds_after_warmup"]
        out.append(f"{p['count']:,} {p['phase']}: RSS {g:+.2f} MB, fds {p['fds_after']} vs "
                   f"{result['fds_after_warmup']} ({'met' if ok else 'MISSED'})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, help="keep-alive requests (default 1,000,000)")
    ap.add_argument("--cycles", type=int, help="connect/close cycles (default 200,000)")
    ap.add_argument("--quick", action="store_true", help="100k requests, 20k cycles")
    ap.add_argument("--mode", choices=("ember", "ember-pure", "both"), default="both")
    ap.add_argument("--bytecode", choices=("as-is", "pyc"), default="as-is",
                    help="pyc: with bytecode caches, as an installed wheel (default: as-is)")
    args = ap.parse_args()
    requests = args.requests or (100_000 if args.quick else 1_000_000)
    cycles = args.cycles or (20_000 if args.quick else 200_000)
    modes = ["ember", "ember-pure"] if args.mode == "both" else [args.mode]
    results = []
    for mode in modes:
        results.append(run_mode(mode, requests, cycles, args.bytecode))
    bare = subprocess.run([sys.executable, "-c", "import re; print(re.search(r'VmRSS:\\s+(\\d+)',"
                           " open('/proc/self/status').read()).group(1))"],
                          capture_output=True, text=True).stdout.strip()
    floor = int(bare) / 1024 if bare.isdigit() else float("nan")
    print(f"\n(for scale: a bare `python -c` interpreter here has VmRSS {floor:.1f} MB)")
    summary = []
    for r in results:
        lines = verdicts(r)
        print(f"{r['mode']}: " + "; ".join(lines))
        summary.append(f"{r['mode']}: " + "; ".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "leak.json").write_text(json.dumps({
        "command": ("python bench/leak.py " + " ".join(sys.argv[1:])).strip(),
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "requests": requests, "cycles": cycles, "bare_python_rss_mb": floor, "results": results,
        "summary": " | ".join(summary)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
