"""Issue 9 — the I/O layer: bare fixed-answer floors on every candidate, and Ember on each loop.

    python bench/io_layer.py                          # all rows, 4 s cells, 3 rounds
    python bench/io_layer.py --only floor --duration 5
    python bench/io_layer.py --only ember --paths /hello,/json,/users/42,pipelined
    python bench/io_layer.py --callgrind 5000        # user-space instructions per request

Rows (all in ONE run, interleaved round-robin with a rotating start, like bench/floor.py):

- ``floor <loop> plain|task``: ``apps/uvloop_floor.py`` on uvloop, rloop and the default
  asyncio loop (the same Protocol and answers; ``task``: one asyncio Task per request).
- ``epoll <mode>`` / ``io_uring <mode>``: ``apps/epoll_floor.pyx`` and ``apps/uring_floor.pyx``,
  built here with cython + cc into a temp dir (bench-only code): C accepts, reads, counts
  heads and writes; ``plain`` never enters Python, ``call`` calls a trivial Python function
  per request, ``coro`` drives a trivial coroutine per request with ``PyIter_Send``.
  io_uring rows are skipped, with the reason printed, when this kernel/container refuses
  it (the errno of a raw ``io_uring_setup`` probe) or liburing-dev is missing (the build
  error); ``serve`` raises OSError if ``io_uring_queue_init`` fails anyway.
- ``ember <loop>``: ``apps/ember_app.py minimal`` with ``EMBER_LOOP=<loop>``.

``--callgrind N`` instead runs every row under ``valgrind --tool=callgrind`` (as
bench/callgrind.py does for Ember: a run serving N keep-alive GET /hello from 10
connections minus a run serving none, divided by N): user-space instructions per
request, which move by well under 1% between runs on this noisy machine (the kernel's
share is not in it: compare with the sys µs column).  io_uring rows are left out there:
valgrind 3.19 does not interrupt the ring's wait, so the run would never end.

Server on CPU 0, ``wrk -t1 -c100`` on CPU 1; prints median req/s and the server's CPU µs
per request (utime+stime from /proc, and each apart: user = Python/loop/C code, sys = the
kernel's socket work), and each row's ratios to the uvloop floor.  For
Ember rows ``--paths`` adds JSON, path-parameter and pipelined (×16 per write) cells.
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
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
SRC = HERE.parent / "src"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of ``pid`` in clock ticks."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]), int(f[12])


def build(name: str, outdir: Path, libs: list[str]) -> str | None:
    """cython + cc ``apps/<name>.pyx`` into ``outdir``; the error text on failure."""
    c = outdir / f"{name}.c"
    so = outdir / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    r = subprocess.run([sys.executable, "-m", "cython", "-3", str(APPS / f"{name}.pyx"),
                        "-o", str(c)], capture_output=True, text=True)
    if r.returncode:
        return r.stderr.strip()[-400:]
    r = subprocess.run(["cc", "-O2", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
                        str(c), "-o", str(so), *[f"-l{lib}" for lib in libs]],
                       capture_output=True, text=True)
    return r.stderr.strip()[-400:] if r.returncode else None


def serve_c(builddir: str, module: str, port: int, mode: str) -> None:
    """Child: bind, then hand the listening fd to the compiled floor's ``serve``."""
    sys.path.insert(0, builddir)
    mod = __import__(module)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    sock.setblocking(False)

    def call(answer: bytes) -> bytes:
        return answer

    async def coro(answer: bytes) -> bytes:
        return answer

    # SIGTERM ends the run through Python (callgrind writes its counts at a clean exit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mod.serve(sock.fileno(), mode, coro if mode == "coro" else call)


def probe_uring(builddir: str) -> str | None:
    """Why io_uring cannot be used here, or None when a ring can be created."""
    code = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
            "p = (ctypes.c_char * 120)(); fd = libc.syscall(425, 8, p); "
            "print('ok' if fd >= 0 else 'io_uring_setup: ' + os.strerror(ctypes.get_errno()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    return None if out.strip() == "ok" else out.strip() or "probe failed"


def has(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode == 0


def rows_for(only: str, builddir: Path) -> tuple[list[tuple[str, list[str], dict]], list[str]]:
    rows: list[tuple[str, list[str], dict]] = []
    notes: list[str] = []
    py = sys.executable
    env_src = {"PYTHONPATH": str(SRC)}
    if only in ("all", "floor"):
        for loop in ("uvloop", "rloop", "asyncio"):
            if not has(loop):
                notes.append(f"{loop}: not installed (pip install {loop})")
                continue
            for mode in ("plain", "task"):
                rows.append((f"floor {loop} {mode}",
                             [py, str(APPS / "uvloop_floor.py"), "{port}", mode, loop], {}))
        err = build("epoll_floor", builddir, [])
        if err:
            notes.append(f"epoll floor: build failed: {err}")
        else:
            for mode in ("plain", "call", "coro"):
                rows.append((f"epoll {mode}", [py, __file__, "--serve", str(builddir),
                                               "epoll_floor", "{port}", mode], {}))
        why = probe_uring(str(builddir)) or build("uring_floor", builddir, ["uring"])
        if why:
            notes.append(f"io_uring: not measured: {why}")
        else:
            for mode in ("plain", "call", "coro"):
                rows.append((f"io_uring {mode}", [py, __file__, "--serve", str(builddir),
                                                  "uring_floor", "{port}", mode], {}))
    if only in ("all", "ember"):
        for loop in ("uvloop", "rloop", "asyncio"):
            rows.append((f"ember {loop}", [py, str(APPS / "ember_app.py"), "{port}", "minimal"],
                         {**env_src, "EMBER_LOOP": loop}))
    return rows, notes


def callgrind_ir(label: str, argv: list[str], env: dict, requests: int, workdir: Path) -> int:
    """Instructions (Ir) of one run of ``argv`` under callgrind that served ``requests``."""
    port = free_port()
    slug = re.sub(r"\W+", "_", label)
    out = workdir / f"cg.{slug}.{requests}.out"
    cmd = ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--cache-sim=no",
           "--branch-sim=no", f"--callgrind-out-file={out}",
           *[a.replace("{port}", str(port)) for a in argv]]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{label}: did not start under valgrind: "
                                 f"{proc.stderr.read().decode()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        if requests:
            subprocess.run(["taskset", "-c", "1", sys.executable, str(HERE / "callgrind.py"),
                            "--client", str(port), "--path", "/hello", "--requests",
                            str(requests), "--connections", "10"], check=True)
        # NOTE: SIGTERM, not SIGINT: a runner started in the background (nohup ... &)
        # passes SIGINT on as ignored, and uvloop then never sees it.
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(errors="replace"), re.M)
    if m is None:
        raise SystemExit(f"{label}: no callgrind totals in {out}")
    return int(m.group(1))


def wrk(port: int, path: str, connections: int, duration: int) -> str:
    script = []
    if path == "pipelined":
        path, script = "/hello", ["-s", str(HERE / "pipeline.lua")]
    return subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}",
                           f"-d{duration}s", *script, f"http://127.0.0.1:{port}{path}"],
                          capture_output=True, text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("all", "floor", "ember"), default="all")
    ap.add_argument("--paths", default="/hello", help="comma-separated; 'pipelined' = ×16 "
                    "/hello (Ember rows; floors always answer /hello)")
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--callgrind", type=int, metavar="N", help="instructions per request "
                    "under callgrind (N requests) instead of wrk")
    ap.add_argument("--skip-python-floors", action="store_true",
                    help="with --callgrind: only the C floors and Ember")
    ap.add_argument("--serve", nargs=4, metavar=("BUILDDIR", "MODULE", "PORT", "MODE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_c(args.serve[0], args.serve[1], int(args.serve[2]), args.serve[3])
        return 0
    builddir = Path(tempfile.mkdtemp(prefix="ember-io-layer-"))
    rows, notes = rows_for(args.only, builddir)
    if args.callgrind:
        print(f"| row | instructions/request (callgrind, GET /hello, {args.callgrind} requests, "
              "10 connections) |")
        print("|---|---:|")
        for label, argv, env in rows:
            if label.startswith(("floor uvloop", "floor asyncio", "floor rloop")) and \
                    args.skip_python_floors:
                continue
            if label.startswith("io_uring"):
                # NOTE: under valgrind 3.19 the ring's wait is not interrupted by SIGTERM
                # (the run never ends); its user-space share is ~0.1 µs in the wrk rows.
                continue
            base = callgrind_ir(label, argv, env, 0, builddir)
            total = callgrind_ir(label, argv, env, args.callgrind, builddir)
            print(f"| {label} | {(total - base) / args.callgrind:,.0f} |", flush=True)
        for note in notes:
            print(f"- {note}")
        return 0
    servers = {}
    for label, argv, env in rows:
        port = free_port()
        cmd = [a.replace("{port}", str(port)) for a in argv]
        proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, **env})
        servers[label] = (proc, port)
    paths = args.paths.split(",")
    cells = [(label, path) for label in servers
             for path in (paths if label.startswith("ember") else ["/hello"])]
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {c: [] for c in cells}
    try:
        for label, (proc, port) in list(servers.items()):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        notes.append(f"{label}: exited with {proc.returncode}: "
                                     f"{proc.stderr.read().decode()[-300:]}")
                        break
                    time.sleep(0.1)
            if proc.poll() is None:
                wrk(port, "/hello", args.connections, 1)
        cells = [c for c in cells if servers[c[0]][0].poll() is None]
        for r in range(args.rounds):
            for label, path in cells[r % len(cells):] + cells[:r % len(cells)]:
                proc, port = servers[label]
                c0 = cpu_ticks(proc.pid)
                out = wrk(port, path, args.connections, args.duration)
                c1 = cpu_ticks(proc.pid)
                m = re.search(r"(\d+) requests in", out)
                if not m:
                    notes.append(f"{label} {path}: wrk failed: {out[-200:]}")
                    continue
                n = int(m.group(1))
                rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
                if "Non-2xx" in out or "Socket errors" in out:
                    notes.append(f"{label} {path}: {out.strip().splitlines()[-3]}")
                per = 1e6 / CLK_TCK / max(n, 1)
                results[(label, path)].append((rps, (c1[0] - c0[0]) * per,
                                               (c1[1] - c0[1]) * per))
    finally:
        for proc, _ in servers.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(10)
    base = results.get(("floor uvloop plain", "/hello"))
    base_rps = statistics.median(v[0] for v in base) if base else None
    base_cpu = statistics.median(v[1] + v[2] for v in base) if base else None
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}, "
          f"{args.rounds} rounds × {args.duration} s, c{args.connections}")
    print("| row | path | req/s | CPU µs/req | user µs | sys µs | req/s ÷ uvloop floor "
          "| CPU ÷ uvloop floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (label, path), vals in results.items():
        if not vals:
            continue
        rps = statistics.median(v[0] for v in vals)
        cpu = statistics.median(v[1] + v[2] for v in vals)
        user = statistics.median(v[1] for v in vals)
        sys_ = statistics.median(v[2] for v in vals)
        rr = f"{rps / base_rps:.2f}" if base_rps else "–"
        rc = f"{cpu / base_cpu:.2f}" if base_cpu else "–"
        print(f"| {label} | {path} | {rps:,.0f} | {cpu:.2f} | {user:.2f} | {sys_:.2f} | {rr} "
              f"| {rc} |")
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
