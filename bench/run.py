"""Ember's benchmark harness: our server and its peers, in one run, under identical conditions.

    python bench/run.py                       # everything, 6 s cells, 3 rounds (~15 min)
    python bench/run.py --quick               # smoke test: 2 s cells, 1 round
    python bench/run.py --only hello-100,ember,granian --duration 5

Every server is a single process (nginx: one worker), pinned to CPU 0 with
``taskset -c 0``; ``wrk -t1`` is pinned to CPU 1.  Per scenario all its servers
are started (each on its own port), answer-checked, warmed up with the same
load, then measured in three rounds interleaved over the servers (round-robin,
the starting server rotating each round).  The table gives the median over the
rounds of requests/s, p50 and p99 (``wrk --latency``); server CPU time per
request (utime+stime of the server's process group from /proc/PID/stat, before
and after each measured run, summed over the rounds, divided by the requests);
peak RSS (VmHWM from /proc/PID/status, at the end of the scenario); errors
(wrk socket connect/read/write errors + non-2xx/3xx answers) and timeouts.
See bench/README.md.  Peers live in bench/.venv-peers (created on first run).
Results: bench/results/latest.md and latest.json.  This machine is shared and
noisy: compare ratios within one run, never absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
RESULTS = HERE / "results"
VENV = HERE / ".venv-peers"
PEER_PY = VENV / "bin" / "python"
PEER_PACKAGES = ["fastapi", "pydantic", "uvicorn[standard]", "uvloop", "httptools", "starlette",
                 "granian", "socketify", "orjson"]
PEER_IMPORTS = ("fastapi, pydantic, uvicorn, uvloop, httptools, starlette, granian, socketify, "
                "orjson")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NODE_DIR = HERE / ".node"  # fastify, installed with npm on first use (not committed)
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, CLIENT_CPU = "0", "1"
WRK_TIMEOUT = "2s"  # wrk's default: a response slower than this counts as a timeout

HELLO = "Hello, World!"
ITEM = {"name": "widget", "price": 9.5, "tags": ["a", "b"]}
KEY_HEADERS = {"x-api-key": "bench-key", "Origin": "https://bench.example"}

# -- servers -------------------------------------------------------------------------------

SERVERS = ["ember", "ember-pure", "ember-sync", "floor", "granian", "socketify", "fastify",
           "raw-asgi", "starlette", "fastapi", "nginx"]
PEERS = {"granian", "socketify", "raw-asgi", "starlette", "fastapi"}
# NOTE: only with --only: "before" rows of another source tree (EMBER_BENCH_BASE=<its src>),
# e.g. main's, so a branch and its base are measured interleaved in one run.
# and Ember (compiled, this tree) under another interpreter: EMBER_BENCH_PY312 / _PY313=<python>
# with orjson, msgspec and uvloop and this tree's extensions built for it (build_ext --inplace).
BASE_SERVERS = ["ember-base", "ember-sync-base", "ember-py312", "ember-py313"]
UVICORN = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
           "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
           "warning", "--backlog", "4096"]

NGINX_CONF = """worker_processes 1;
daemon off;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp_body; proxy_temp_path {prefix}/tmp_proxy;
  fastcgi_temp_path {prefix}/tmp_fastcgi; uwsgi_temp_path {prefix}/tmp_uwsgi;
  scgi_temp_path {prefix}/tmp_scgi;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /hello {{ default_type text/plain; return 200 "Hello, World!"; }}
    location = /json {{ default_type application/json;
                        return 200 '{{"message":"Hello, World!"}}'; }}
  }}
}}
"""


def server_command(server: str, variant: str, port: int, workdir: Path) -> tuple[list[str],
                                                                              dict[str, str]]:
    """argv and extra environment of one server process."""
    # NOTE: APPS first, then the caller's PYTHONPATH (a source tree under test wins over an
    # installed ember, as in ``PYTHONPATH=src python bench/run.py``).
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(APPS), os.environ.get("PYTHONPATH"))
                                         if p)}
    p = str(port)
    if server in ("ember-py312", "ember-py313"):
        var = "EMBER_BENCH_PY" + server[-3:]
        python = os.environ.get(var)
        if not python:
            raise SystemExit(f"{server} needs {var}=<a python{server[-3]}.{server[-2:]} with "
                             "orjson, msgspec and uvloop>")
        return [python, str(APPS / "ember_app.py"), p, variant], env
    if server in BASE_SERVERS:
        base = os.environ.get("EMBER_BENCH_BASE")
        if not base:
            raise SystemExit(f"{server} needs EMBER_BENCH_BASE=<a source tree's src directory>")
        env["PYTHONPATH"] = os.pathsep.join((str(APPS), base))
        return [sys.executable, str(APPS / "ember_app.py"), p,
                "sync" if server == "ember-sync-base" else variant], env
    if server in ("ember", "ember-pure"):
        if server == "ember-pure":
            env["EMBER_NO_EXTENSIONS"] = "1"
        return [sys.executable, str(APPS / "ember_app.py"), p, variant], env
    if server == "ember-sync":  # the same routes as plain ``def`` handlers (thread pool)
        return [sys.executable, str(APPS / "ember_app.py"), p, "sync"], env
    if server == "floor":  # bare uvloop Protocol, fixed answers: the floor on uvloop
        return [sys.executable, str(APPS / "uvloop_floor.py"), p], env
    if server == "fastify":
        return [shutil.which("node") or "node", str(APPS / "fastify_app.js"), p], {
            "NODE_PATH": str(NODE_DIR / "node_modules")}
    if server in ("fastapi", "starlette", "raw-asgi"):
        app = {"fastapi": "asgi_apps:fastapi_app", "starlette": "asgi_apps:starlette_app",
               "raw-asgi": "asgi_apps:raw_app"}[server]
        return [str(PEER_PY), *(a.replace("{port}", p) for a in UVICORN), app], env
    if server == "granian":
        return [str(VENV / "bin" / "granian"), "--interface", "rsgi", "--host", "127.0.0.1",
                "--port", p, "--workers", "1", "--runtime-mode", "st", "--runtime-threads",
                "1", "--http", "1", "--no-ws", "--no-access-log", "--log-level", "warning",
                "--backlog", "4096", "granian_app:app"], env
    if server == "socketify":
        return [str(PEER_PY), str(APPS / "socketify_app.py"), p], env
    if server == "nginx":
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(prefix=workdir, port=port))
        return [NGINX, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c",
                str(workdir / "nginx.conf")], {}
    raise ValueError(server)


# -- scenarios -----------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    server: str
    path: str
    variant: str = "basic"
    script: str | None = None  # wrk Lua script in bench/
    method: str = "GET"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expect: Any = HELLO  # str: exact text body; other: the JSON body


@dataclass
class Scenario:
    name: str
    title: str
    connections: int
    rows: list[Row]


def build_scenarios(servers: list[str]) -> list[Scenario]:
    def rows(path: str, expect: Any, script: str | None = None,
             exclude: tuple[str, ...] = ()) -> list[Row]:
        return [Row(s, s, path, script=script, expect=expect) for s in servers
                if s not in exclude]

    ember = [s for s in ("ember", "ember-pure") if s in servers]
    post = {"method": "POST", "body": json.dumps(ITEM).encode(),
            "headers": {"Content-Type": "application/json"}, "script": "post_item.lua",
            "expect": ITEM}
    out = [
        Scenario("hello-100", "plain text GET /hello, 100 connections", 100,
                 rows("/hello", HELLO)),
        Scenario("hello-1000", "plain text GET /hello, 1000 connections", 1000,
                 rows("/hello", HELLO, exclude=("ember-sync", "ember-sync-base"))),
        Scenario("json", "JSON GET /json, 100 connections", 100,
                 rows("/json", {"message": HELLO})),
        Scenario("param", "path parameter GET /users/42 -> {\"id\": 42}, 100 connections", 100,
                 rows("/users/42", {"id": 42}, exclude=("nginx",))),
        Scenario("pipelined", "GET /hello, 16 pipelined requests per write, 100 connections",
                 100, rows("/hello", HELLO, script="pipeline.lua",
                      exclude=("ember-sync", "ember-sync-base"))),
        Scenario("routes", "1,000-route app vs 1-route app, GET /api/r249/users/42", 100,
                 [Row(f"{s} {v}", s, "/api/r249/users/42", variant=v, expect={"id": 42})
                  for s in ember for v in ("one-route", "many-routes")]),
        Scenario("middleware", "GET /hello with x-api-key + Origin headers, CORS + API-key "
                 "middleware vs none", 100,
                 [Row(f"{s} {v}", s, "/hello", variant=v, script="with_key.lua",
                      headers=KEY_HEADERS) for s in ember for v in ("basic", "middleware")]),
        Scenario("body", "POST /items validated JSON body (msgspec.Struct vs pydantic)", 100,
                 [Row(s, s, "/items", **post) for s in servers  # type: ignore[arg-type]
                  if s in ("ember", "ember-pure", "fastapi")]),
    ]
    return [s for s in out if s.rows]


SCENARIO_NAMES = [s.name for s in build_scenarios(SERVERS)]

# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


class Server:
    """One server process (and its children), pinned to CPU 0, in its own process group."""

    def __init__(self, server: str, variant: str) -> None:
        self.name = server if variant == "basic" else f"{server}[{variant}]"
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="ember-bench-"))
        argv, extra = server_command(server, variant, self.port, self.workdir)
        env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
        env.update(extra)
        self.log = open(self.workdir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *argv], cwd=APPS, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen within {timeout:.0f} s: "
                           f"{self.log_tail()}")

    def log_tail(self) -> str:
        self.log.flush()
        return (self.workdir / "server.log").read_text(errors="replace")[-1500:]

    def pids(self) -> list[int]:
        """Every live process in the server's process group (nginx master+worker, granian)."""
        pgid = self.proc.pid
        out = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if int(proc_stat(int(entry.name))[2]) == pgid:
                        out.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    pass
        return out

    def cpu_seconds(self) -> float:
        """utime+stime (all threads) of the live processes of the group."""
        ticks = 0
        for pid in self.pids():
            try:
                f = proc_stat(pid)
                ticks += int(f[11]) + int(f[12])
            except (OSError, IndexError, ValueError):
                pass
        return ticks / CLK_TCK

    def memory(self, key: str) -> tuple[float, float]:
        """(max over processes, sum over processes) of a /proc/PID/status field, in MB."""
        values = []
        for pid in self.pids():
            try:
                m = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(),
                              re.M)
            except OSError:
                continue
            if m:
                values.append(int(m.group(1)) / 1024)
        return (max(values, default=0.0), sum(values))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def check(server: Server, row: Row) -> str | None:
    """One request like wrk's; None when the answer is right, else what is wrong."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(row.method, row.path, body=row.body, headers=row.headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return f"request failed: {exc!r}"
    if resp.status != 200:
        return f"status {resp.status}: {body[:200]!r}"
    if isinstance(row.expect, str):
        ok = body.decode(errors="replace") == row.expect
    else:
        try:
            ok = json.loads(body) == row.expect
        except ValueError:
            ok = False
    if not ok:
        return f"unexpected body {body[:200]!r}"
    if row.variant == "middleware":
        if resp.getheader("access-control-allow-origin") != KEY_HEADERS["Origin"]:
            return "CORS middleware did not answer the Origin"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", row.path)
        status = conn.getresponse().status
        conn.close()
        if status != 401:
            return f"API-key middleware let a request without key through ({status})"
    return None


# -- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    """wrk's latency text in ms; NaN when missing or 0 (see _median_ms)."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value = float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0
    return value if value > 0 else float("nan")


def _median_ms(values: list[float]) -> float:
    """Median of the rounds that have a figure.

    wrk prints 0 for a percentile when its coordinated-omission correction has put
    samples below the recorded minimum, which happens with pipelining (wrk records
    one latency per batch of 16, but corrects with the per-response rate).  Those
    rounds are left out; a cell with none shows n/a.
    """
    ok = [v for v in values if v == v]
    return statistics.median(ok) if ok else float("nan")


def run_wrk(port: int, row: Row, connections: int, seconds: int) -> dict[str, Any]:
    argv = ["taskset", "-c", CLIENT_CPU, WRK, "-t1", f"-c{connections}", f"-d{seconds}s",
            "--latency", "--timeout", WRK_TIMEOUT]
    if row.script:
        argv += ["-s", str(HERE / row.script)]
    argv.append(f"http://127.0.0.1:{port}{row.path}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = proc.stdout
    m_rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    m_total = re.search(r"(\d+) requests in", out)
    if not m_rps or not m_total:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-500:]} {proc.stderr[-500:]}")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = timeouts = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += int(m.group(1)) + int(m.group(2)) + int(m.group(3))
        timeouts += int(m.group(4))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    return {"rps": float(m_rps.group(1)), "requests": int(m_total.group(1)),
            "p50": _ms(p50.group(1)) if p50 else float("nan"),
            "p99": _ms(p99.group(1)) if p99 else float("nan"),
            "errors": errors, "timeouts": timeouts}


# -- measuring -----------------------------------------------------------------------------


class Progress:
    def __init__(self, total_cells: int, seconds_per_cell: float, planned: float) -> None:
        self.total, self.done, self.per, self.planned = total_cells, 0, seconds_per_cell, planned
        self.start = time.monotonic()

    def line(self, text: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = max(self.planned - elapsed, (self.total - self.done) * self.per)
        print(f"[{self.done:3d}/{self.total} {elapsed / 60:4.1f} min, ~{left / 60:4.1f} min left] "
              f"{text}", flush=True)


def measure(scenario: Scenario, duration: int, warmup: int, rounds: int,
            progress: Progress) -> dict[str, Any]:
    print(f"\n== {scenario.name}: {scenario.title}", flush=True)
    started: dict[tuple[str, str], Server] = {}
    results: dict[str, Any] = {}
    live: list[Row] = []
    try:
        for row in scenario.rows:
            key = (row.server, row.variant)
            if key not in started:
                started[key] = Server(row.server, row.variant)
        idle: dict[tuple[str, str], tuple[float, float]] = {}
        for key, server in started.items():
            try:
                server.wait_ready()
                time.sleep(0.5)  # let it settle before reading the idle RSS
                idle[key] = server.memory("VmRSS")
            except RuntimeError as exc:
                print(f"   {server.name}: FAILED TO START: {exc}", flush=True)
        for row in scenario.rows:
            key = (row.server, row.variant)
            if key not in idle:
                results[row.label] = {"failed": "did not start"}
                continue
            problem = check(started[key], row)
            if problem:
                print(f"   {row.label}: WRONG ANSWER, skipped: {problem}", flush=True)
                results[row.label] = {"failed": problem}
                continue
            live.append(row)
        for row in live:
            if warmup:
                try:
                    run_wrk(started[(row.server, row.variant)].port, row,
                            scenario.connections, warmup)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"   {row.label}: warm-up failed: {exc}", flush=True)
        print(f"   started, checked and warmed up {len(live)} server(s)", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {r.label: [] for r in live}
        cpu: dict[str, float] = {r.label: 0.0 for r in live}
        for rnd in range(rounds):
            order = live[rnd % len(live):] + live[:rnd % len(live)] if live else []
            for row in order:
                server = started[(row.server, row.variant)]
                before = server.cpu_seconds()
                try:
                    r = run_wrk(server.port, row, scenario.connections, duration)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    progress.line(f"{scenario.name} r{rnd + 1} {row.label}: wrk failed: {exc}")
                    continue
                cpu[row.label] += server.cpu_seconds() - before
                runs[row.label].append(r)
                alive = "" if server.proc.poll() is None else "  SERVER DIED"
                progress.line(f"{scenario.name:10s} round {rnd + 1}/{rounds} {row.label:24s} "
                              f"{r['rps']:>9,.0f} rps  p50 {_lat(r['p50']):>6s} ms  p99 "
                              f"{_lat(r['p99']):>7s} ms  err {r['errors']} tmo {r['timeouts']}{alive}")
        for row in live:
            rs = runs[row.label]
            if not rs:
                results[row.label] = {"failed": "every wrk run failed"}
                continue
            server = started[(row.server, row.variant)]
            hwm_max, hwm_sum = server.memory("VmHWM")
            requests = sum(r["requests"] for r in rs)
            results[row.label] = {
                "server": row.server, "variant": row.variant,
                "rps": statistics.median(r["rps"] for r in rs),
                "rps_rounds": [r["rps"] for r in rs],
                "p50_ms": _median_ms([r["p50"] for r in rs]),
                "p99_ms": _median_ms([r["p99"] for r in rs]),
                "cpu_us_per_req": cpu[row.label] / requests * 1e6 if requests else float("nan"),
                "requests": requests,
                "peak_rss_mb": hwm_max, "peak_rss_tree_mb": hwm_sum,
                "idle_rss_mb": idle[(row.server, row.variant)][0],
                "idle_rss_tree_mb": idle[(row.server, row.variant)][1],
                "processes": len(server.pids()),
                "errors": sum(r["errors"] for r in rs),
                "timeouts": sum(r["timeouts"] for r in rs),
                "alive": server.proc.poll() is None,
            }
    finally:
        for server in started.values():
            server.stop()
    return {"title": scenario.title, "connections": scenario.connections, "rows": results}


# -- report --------------------------------------------------------------------------------


def _rps(results: dict[str, Any], scen: str, label: str) -> float | None:
    row = results.get(scen, {}).get("rows", {}).get(label)
    return row.get("rps") if row and "rps" in row else None


def _field(results: dict[str, Any], scen: str, label: str, name: str) -> Any:
    row = results.get(scen, {}).get("rows", {}).get(label)
    return row.get(name) if row else None


def _lat(v: float) -> str:
    return f"{v:.2f}" if v == v else "n/a"


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(what, measured, target, detail, met) for every target the run can judge."""
    out: list[tuple[str, str, str, str, bool]] = []

    def ratio(what: str, scen: str, a: str, bs: tuple[str, ...], need: float,
              higher: bool = True, key: str = "rps") -> None:
        va = _field(results, scen, a, key)
        vb = [(_field(results, scen, b, key), b) for b in bs]
        vb = [(v, b) for v, b in vb if v and v == v]
        if not va or va != va or not vb:
            return
        best, who = max(vb) if higher else min(vb)
        r = va / best
        out.append((what, f"{r:.2f}x", f"{'>=' if higher else '<='} {need}x",
                    f"{a} {_num(va)} vs {who} {_num(best)}", r >= need if higher else r <= need))

    for scen in ("hello-100", "hello-1000", "json", "param"):
        ratio(f"{scen}: ember / best(granian, socketify) req/s", scen, "ember",
              ("granian", "socketify"), 1.2)
        ratio(f"{scen}: ember / fastapi req/s", scen, "ember", ("fastapi",), 10)
        ratio(f"{scen}: ember p99 / socketify p99", scen, "ember", ("socketify",), 1.0,
              higher=False, key="p99_ms")
    ratio("pipelined: ember / nginx req/s", "pipelined", "ember", ("nginx",), 0.9)
    ratio("pipelined: ember / socketify req/s", "pipelined", "ember", ("socketify",), 1.0)
    for scen in ("hello-100", "json", "param"):
        ratio(f"{scen}: ember-sync (def) / ember (async def) req/s", scen, "ember-sync",
              ("ember",), 0.7)
    ratio("hello-100: ember / floor (bare uvloop) req/s", "hello-100", "ember", ("floor",), 0.8)
    for label in ("ember", "ember-pure"):
        row = results.get("hello-1000", {}).get("rows", {}).get(label)
        if row and "errors" in row:
            n = row["errors"] + row["timeouts"]
            out.append((f"hello-1000: {label} errors + timeouts", str(n), "0",
                        f"errors {row['errors']}, timeouts {row['timeouts']}", n == 0))
    rss = _field(results, "hello-100", "ember", "peak_rss_mb")
    if rss:
        out.append(("hello-100: ember peak RSS (VmHWM)", f"{rss:.1f} MB", "<= 25 MB", "",
                    rss <= 25))
    idle = _field(results, "hello-100", "ember", "idle_rss_mb")
    if idle:
        out.append(("ember idle RSS (after start)", f"{idle:.1f} MB", "<= 20 MB", "",
                    idle <= 20))
    for s in ("ember", "ember-pure"):
        ratio(f"routes: {s} 1,000-route / 1-route app", "routes", f"{s} many-routes",
              (f"{s} one-route",), 0.9)
        ratio(f"middleware: {s} CORS+API key / none", "middleware", f"{s} middleware",
              (f"{s} basic",), 0.8)
        ratio(f"body: {s} (msgspec) / fastapi (pydantic)", "body", s, ("fastapi",), 5)
    return out


def extras() -> list[str]:
    """Targets measured by bench/startup.py and bench/leak.py, from their last results."""
    lines = []
    for name in ("startup", "leak"):
        path = RESULTS / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            lines.append(f"- `{data.get('command', name)}` ({data.get('when', '?')}): "
                         f"{data.get('summary', '')}")
    return lines


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"Command: `{meta['command']}`  ", f"When: {meta['when']} (UTC)  ",
             f"Machine: {meta['machine']}  ",
             f"Cells: {meta['duration']} s measured after a {meta['warmup']} s warm-up, "
             f"{meta['rounds']} interleaved round(s), median shown.  ",
             f"Ember: {meta['ember']}  ", f"Peers: {meta['peers']}", ""]
    for scen, data in results.items():
        rows = data["rows"]
        if not rows:
            continue
        ok = {k: v for k, v in rows.items() if "rps" in v}
        ref = ok.get("ember", {}).get("rps") or next(
            (v["rps"] for k, v in ok.items() if k.startswith("ember")), None)
        lines += [f"### {scen}: {data['title']}", "",
                  "| server | req/s | vs ember | p50 ms | p99 ms | CPU µs/req | peak RSS MB "
                  "| (tree) | errors | timeouts |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, r in sorted(ok.items(), key=lambda kv: -kv[1]["rps"]):
            vs = f"{r['rps'] / ref:.2f}x" if ref else ""
            died = " (died)" if not r["alive"] else ""
            lines.append(f"| {label}{died} | {r['rps']:,.0f} | {vs} | {_lat(r['p50_ms'])} | "
                         f"{_lat(r['p99_ms'])} | {r['cpu_us_per_req']:.1f} | "
                         f"{r['peak_rss_mb']:.1f} | {r['peak_rss_tree_mb']:.1f} | "
                         f"{r['errors']} | {r['timeouts']} |")
        for label, r in rows.items():
            if "rps" not in r:
                lines.append(f"| {label} | FAILED: {r['failed'][:120]} | | | | | | | | |")
        lines.append("")
    idle = {k: v for k, v in results.get("hello-100", {}).get("rows", {}).items() if "rps" in v}
    if idle:
        lines += ["### Idle RSS after start (MB, before any request)", "",
                  "| server | idle RSS | (tree) | processes |", "|---|---:|---:|---:|"]
        for label, r in sorted(idle.items(), key=lambda kv: kv[1]["idle_rss_mb"]):
            lines.append(f"| {label} | {r['idle_rss_mb']:.1f} | {r['idle_rss_tree_mb']:.1f} "
                         f"| {r['processes']} |")
        lines.append("")
    tg = targets(results)
    if tg:
        lines += ["### Targets (issues #2 and #3)", "",
                  "| target | measured | goal | detail | |", "|---|---:|---|---|---|"]
        for what, val, goal, detail, met in tg:
            lines.append(f"| {what} | {val} | {goal} | {detail} | {'met' if met else 'MISSED'} |")
        lines.append("")
    ex = extras()
    if ex:
        lines += ["### From the last startup.py / leak.py runs", "", *ex, ""]
    return "\n".join(lines)


# -- setup ---------------------------------------------------------------------------------


def ensure_peers() -> None:
    ok = PEER_PY.exists() and subprocess.run(
        [str(PEER_PY), "-c", f"import {PEER_IMPORTS}"], capture_output=True).returncode == 0
    if ok:
        return
    if not PEER_PY.exists():
        print(f"[setup] creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"[setup] pip install {' '.join(PEER_PACKAGES)} into {VENV}", flush=True)
    subprocess.run([str(PEER_PY), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)


def ensure_fastify() -> str | None:
    """Install fastify@5 into bench/.node with npm; None when ready, else why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node/npm not found"
    if (NODE_DIR / "node_modules" / "fastify" / "package.json").exists():
        return None
    NODE_DIR.mkdir(exist_ok=True)
    print(f"[setup] npm install fastify@5 into {NODE_DIR}", flush=True)
    p = subprocess.run([npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
                        "fastify@5"], capture_output=True, text=True)
    if p.returncode != 0:
        return f"npm install fastify@5 failed: {(p.stdout + p.stderr).strip()[-300:]}"
    return None


def peer_versions() -> str:
    code = ("import importlib.metadata as m\n"
            "print(', '.join(f'{p} {m.version(p)}' for p in ('fastapi', 'starlette', 'uvicorn',"
            " 'uvloop', 'httptools', 'pydantic', 'granian', 'socketify')))")
    out = subprocess.run([str(PEER_PY), "-c", code], capture_output=True, text=True).stdout
    nginx = (subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
             if Path(NGINX).exists() else "no nginx")
    wrk = subprocess.run([WRK, "-v"], capture_output=True, text=True)
    wrk_v = (wrk.stdout + wrk.stderr).split("[")[0].strip()
    fastify = NODE_DIR / "node_modules" / "fastify" / "package.json"
    node = shutil.which("node")
    extra = ""
    if fastify.exists() and node:
        node_v = subprocess.run([node, "-v"], capture_output=True, text=True).stdout.strip()
        extra = f", fastify {json.loads(fastify.read_text())['version']} (node {node_v})"
    return f"{out.strip()}, {nginx.replace('nginx version: ', '')}, {wrk_v}{extra}"


def ember_modes() -> dict[str, dict[str, bool]]:
    """Which hot modules are compiled, in the default and in the EMBER_NO_EXTENSIONS mode."""
    code = ("import json, ember.http.parser as a, ember.http.protocol as b, "
            "ember.http.writer as c, ember.routing.router as d\n"
            "from ember._compat import is_compiled\n"
            "print(json.dumps({m.__name__.rsplit('.', 1)[1]: is_compiled(m._impl) "
            "for m in (a, b, c, d)}))")
    out = {}
    for mode, extra in (("ember", {}), ("ember-pure", {"EMBER_NO_EXTENSIONS": "1"})):
        env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
        env.update(extra)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        out[mode] = json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr[-300:]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="Ember vs peers, one run, identical conditions.")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2 s cells, 1 s warm-up, 1 round")
    ap.add_argument("--only", default="",
                    help="comma-separated server and/or scenario names, e.g. "
                         "hello-100,json,ember,granian (servers: " + ",".join(SERVERS)
                         + "; scenarios: " + ",".join(SCENARIO_NAMES) + ")")
    ap.add_argument("--duration", type=int, help="seconds per measured cell (default 6)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up per server (default 2)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    ap.add_argument("--report", action="store_true",
                    help="measure nothing: rewrite latest.md from latest.json and the last "
                         "startup.py/leak.py results")
    args = ap.parse_args()
    if args.report:
        data = json.loads((RESULTS / "latest.json").read_text(),
                          parse_constant=lambda c: float(c))
        for scen in data["results"].values():
            for row in scen["rows"].values():
                for k in ("p50_ms", "p99_ms"):
                    if k in row and row[k] is None:
                        row[k] = float("nan")
        text = render(data["results"], data["meta"])
        (RESULTS / "latest.md").write_text(f"# Benchmark results\n\n{text}")
        print(text)
        return 0

    duration = args.duration or (2 if args.quick else 6)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    rounds = args.rounds or (1 if args.quick else 3)
    tokens = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in tokens
               if t not in SERVERS and t not in BASE_SERVERS and t not in SCENARIO_NAMES]
    if unknown:
        ap.error(f"unknown --only names {unknown}; servers: {SERVERS}, "
                 f"scenarios: {SCENARIO_NAMES}")
    servers = [s for s in SERVERS + BASE_SERVERS if s in tokens] or SERVERS
    wanted = [t for t in tokens if t in SCENARIO_NAMES] or SCENARIO_NAMES
    for tool in ("taskset", WRK):
        if not shutil.which(tool):
            print(f"{tool} is required (Debian: apt-get install wrk util-linux)")
            return 2
    if "nginx" in servers and not Path(NGINX).exists():
        print(f"[setup] no nginx at {NGINX}: nginx rows skipped")
        servers.remove("nginx")
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        print("[setup] WARNING: fewer than 2 CPUs; server and wrk share a core")
    if PEERS & set(servers):
        ensure_peers()
    if "fastify" in servers:
        why = ensure_fastify()
        if why:
            print(f"[setup] fastify row skipped: {why}", flush=True)
            servers.remove("fastify")

    modes = ember_modes()
    compiled = modes.get("ember", {})
    if "error" in compiled:
        print(f"[setup] ember does not import: {compiled['error']}")
        return 2
    ember_note = ("compiled: " + ", ".join(f"{k}={'C' if v else 'py'}"
                                           for k, v in compiled.items()))
    if not all(compiled.values()):
        print(f"[setup] WARNING: not every Ember hot module is compiled ({ember_note}); "
              "the 'ember' rows run (partly) pure Python", flush=True)
    if any(modes.get("ember-pure", {}).values()):
        print(f"[setup] WARNING: EMBER_NO_EXTENSIONS=1 still loads compiled modules: "
              f"{modes['ember-pure']}", flush=True)

    scenarios = [s for s in build_scenarios(servers) if s.name in wanted]
    cells = sum(len(s.rows) for s in scenarios) * rounds
    starts = sum(len(s.rows) for s in scenarios)
    est = cells * duration + starts * (warmup + 1.5)
    print(f"[setup] {len(scenarios)} scenario(s), {cells} measured cells of {duration} s, "
          f"{rounds} round(s); about {est / 60:.0f} min", flush=True)
    progress = Progress(cells, duration + 0.3, est)
    results: dict[str, Any] = {}
    interrupted = False
    try:
        for scenario in scenarios:
            results[scenario.name] = measure(scenario, duration, warmup, rounds, progress)
    except KeyboardInterrupt:
        interrupted = True
        print("\n[bench] interrupted: reporting what was measured", flush=True)

    argv = " ".join(sys.argv[1:])
    meta = {
        "command": f"python bench/run.py {argv}".strip(),
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs ({platform_cpu()}), Linux {os.uname().release}, "
                   f"Python {sys.version.split()[0]}; server on CPU {SERVER_CPU}, "
                   f"wrk -t1 on CPU {CLIENT_CPU}",
        "duration": duration, "warmup": warmup, "rounds": rounds,
        "ember": ember_note + "; ember-pure: EMBER_NO_EXTENSIONS=1",
        "peers": peer_versions() if PEERS & set(servers) else "",
        "modes": modes,
    }
    text = render(results, meta)
    print("\n" + text)
    if not args.no_save and not interrupted:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text(f"# Benchmark results\n\n{text}")
        (RESULTS / "latest.json").write_text(json.dumps(_no_nan(
            {"meta": meta, "results": results,
             "targets": [dict(zip(("what", "measured", "goal", "detail", "met"), t, strict=True))
                         for t in targets(results)]}), indent=1))
        print(f"written: {RESULTS / 'latest.md'} and latest.json")
    return 130 if interrupted else 0


def _no_nan(obj: Any) -> Any:
    """NaN (a latency wrk could not give) as null, so the JSON is standard."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def platform_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
