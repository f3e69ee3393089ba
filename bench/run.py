"""Ember's benchmark harness: our server and its peers, one run, identical conditions.

    python bench/run.py                 # full run (~15 min)
    python bench/run.py --quick         # 3 s cells, fewer scenarios
    python bench/run.py --only ember,fastapi --scenarios hello,json

Each server runs alone, pinned to CPU 0 (``taskset -c 0``), single process; ``wrk``
(Debian package) is pinned to CPU 1.  Per scenario: a warm-up, then three rounds
interleaved over the servers (server A, B, C, A, B, C, ...), median of the rounds.
Columns: requests/s, p50 and p99 latency (wrk --latency), server CPU time per
request (utime+stime of the server process from /proc, over the measured
rounds), peak RSS (VmHWM), and errors (socket errors + timeouts + non-2xx).
Peers live in ``bench/.venv-peers`` (created on first run with pip).  The table
of ratios is printed and written to ``bench/results/latest.md`` (+ ``.json``).
Compare ratios from one run only: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-peers"
PEER_PACKAGES = ["fastapi", "uvicorn[standard]", "starlette", "granian", "socketify", "msgspec"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # scenario path overrides
    cwd: Path = HERE / "apps"


@dataclass
class Scenario:
    name: str
    path: str
    connections: int = 100
    script: str | None = None
    servers: tuple[str, ...] | None = None  # None: every server that supports the path
    variant: str | None = None  # ember app variant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"[bench] creating {VENV} with {', '.join(PEER_PACKAGES)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def servers(port_base: dict[str, int], variant: str | None) -> dict[str, Server]:
    peer = str(VENV / "bin" / "python")
    ember_args = [sys.executable, "ember_app.py", "{port}"] + ([variant] if variant else [])
    out = {
        "ember": Server("ember", ember_args),
        "ember-pure": Server("ember-pure", ember_args, {"EMBER_NO_EXTENSIONS": "1"}),
        "fastapi": Server("fastapi", [peer, "-m", "uvicorn", "asgi_apps:fastapi_app", "--port",
                                      "{port}", "--no-access-log", "--loop", "uvloop", "--http",
                                      "httptools", "--log-level", "warning"]),
        "starlette": Server("starlette", [peer, "-m", "uvicorn", "asgi_apps:starlette_app",
                                          "--port", "{port}", "--no-access-log", "--loop",
                                          "uvloop", "--http", "httptools", "--log-level",
                                          "warning"]),
        "raw-asgi": Server("raw-asgi", [peer, "-m", "uvicorn", "asgi_apps:raw_app", "--port",
                                        "{port}", "--no-access-log", "--loop", "uvloop",
                                        "--http", "httptools", "--log-level", "warning"]),
        "granian": Server("granian", [str(VENV / "bin" / "granian"), "--interface", "rsgi",
                                      "--port", "{port}", "--workers", "1", "--runtime-threads",
                                      "1", "--no-ws", "--log-level", "warning",
                                      "granian_app:app"]),
        "socketify": Server("socketify", [peer, "socketify_app.py", "{port}"]),
    }
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx:
        out["nginx"] = Server("nginx", [nginx, "-p", "{prefix}", "-c", "{prefix}/nginx.conf",
                                        "-g", "daemon off;"])
    return out


NGINX_CONF = """worker_processes 1;
error_log {prefix}/error.log crit;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 100000000;
  server {{
    listen 127.0.0.1:{port};
    location /hello {{ default_type text/plain; return 200 "Hello, World!"; }}
    location /json {{ default_type application/json; return 200 '{{"message":"Hello, World!"}}'; }}
  }}
}}
"""


class Running:
    """A started server process, pinned to CPU 0."""

    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.port = port
        self.prefix = None
        argv = list(server.argv)
        if server.name == "nginx":
            self.prefix = tempfile.mkdtemp(prefix="bench-nginx-")
            Path(self.prefix, "nginx.conf").write_text(NGINX_CONF.format(prefix=self.prefix,
                                                                        port=port))
        argv = [a.replace("{port}", str(port)).replace("{prefix}", self.prefix or "")
                for a in argv]
        env = {**os.environ, **server.env, "PYTHONPATH": str(HERE / "apps")}
        if server.name == "granian":
            argv += ["--host", "127.0.0.1"]
        self.proc = subprocess.Popen(["taskset", "-c", "0", *argv], cwd=server.cwd, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"{self.server.name} exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.3)
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.server.name} did not start")

    def pids(self) -> list[int]:
        """The server process and its children (nginx master + worker, granian workers)."""
        out = []
        try:
            children = subprocess.run(["pgrep", "-g", str(os.getpgid(self.proc.pid))],
                                      capture_output=True, text=True).stdout.split()
            out = [int(p) for p in children]
        except (ProcessLookupError, ValueError):
            pass
        return out or [self.proc.pid]

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (FileNotFoundError, IndexError, ValueError):
                pass
        return total / CLK_TCK

    def peak_rss_mb(self) -> float:
        peak = 0
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/status").read_text()
                m = re.search(r"VmHWM:\s+(\d+) kB", text)
                if m:
                    peak = max(peak, int(m.group(1)))
            except FileNotFoundError:
                pass
        return peak / 1024

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.prefix:
            shutil.rmtree(self.prefix, ignore_errors=True)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(port: int, scenario: Scenario, duration: float) -> dict[str, float]:
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{scenario.connections}",
            f"-d{max(1, round(duration))}s", "--latency", "--timeout", "5s"]
    if scenario.script:
        argv += ["-s", str(HERE / scenario.script)]
    argv.append(f"http://127.0.0.1:{port}{scenario.path}")
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    return {"rps": rps, "requests": total, "p50": _ms(p50.group(1)) if p50 else float("nan"),
            "p99": _ms(p99.group(1)) if p99 else float("nan"), "errors": errors}


SCENARIOS = [
    Scenario("hello-100", "/hello", 100),
    Scenario("hello-1000", "/hello", 1000),
    Scenario("json", "/json", 100),
    Scenario("param", "/users/42", 100, servers=("ember", "ember-pure", "fastapi", "starlette",
                                                 "raw-asgi", "granian", "socketify")),
    Scenario("pipelined-16", "/hello", 100, script="pipeline.lua"),
    Scenario("body-validated", "/items", 100, script="post_item.lua",
             servers=("ember", "fastapi")),
    Scenario("routes-1", "/users/42", 100, servers=("ember",)),
    Scenario("routes-1000", "/r999/users/42", 100, servers=("ember",), variant="routes1000"),
    Scenario("no-middleware", "/users/42", 100, script="with_key.lua", servers=("ember",)),
    Scenario("cors+apikey", "/users/42", 100, script="with_key.lua", servers=("ember",),
             variant="middleware"),
]
DEFAULT_SERVERS = ["ember", "ember-pure", "granian", "socketify", "raw-asgi", "starlette",
                   "fastapi", "nginx"]


def supports(server: str, scenario: Scenario) -> bool:
    if scenario.servers is not None:
        return server in scenario.servers
    return True


def measure(scenario: Scenario, names: list[str], duration: float, rounds: int,
            warmup: float) -> dict[str, dict[str, float]]:
    names = [n for n in names if supports(n, scenario)]
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    extra: dict[str, dict[str, float]] = {n: {"cpu": 0.0, "requests": 0, "rss": 0.0}
                                          for n in names}
    for rnd in range(rounds):
        for name in names:
            port = free_port()
            server = servers({}, scenario.variant)[name]
            print(f"[bench] {scenario.name:15s} round {rnd + 1}/{rounds} {name:11s}",
                  end="", flush=True)
            try:
                running = Running(server, port)
            except Exception as exc:
                print(f"  FAILED TO START: {exc}")
                continue
            try:
                if warmup:
                    run_wrk(port, Scenario(scenario.name, scenario.path, min(
                        scenario.connections, 100), scenario.script), warmup)
                before = running.cpu_seconds()
                r = run_wrk(port, scenario, duration)
                extra[name]["cpu"] += running.cpu_seconds() - before
                extra[name]["requests"] += r["requests"]
                extra[name]["rss"] = max(extra[name]["rss"], running.peak_rss_mb())
                results[name].append(r)
                print(f"  {r['rps']:>10,.0f} rps  p99 {r['p99']:.2f} ms  errors {r['errors']}",
                      flush=True)
            finally:
                running.stop()
    summary = {}
    for name, rs in results.items():
        if not rs:
            continue
        reqs = extra[name]["requests"] or 1
        summary[name] = {
            "rps": statistics.median(r["rps"] for r in rs),
            "p50": statistics.median(r["p50"] for r in rs),
            "p99": statistics.median(r["p99"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "cpu_us": extra[name]["cpu"] / reqs * 1e6,
            "rss_mb": extra[name]["rss"],
        }
    return summary


def render(all_results: dict[str, dict[str, dict[str, float]]], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             f"Machine: {os.cpu_count()} CPUs, server pinned to CPU 0, wrk to CPU 1. "
             f"Python {sys.version.split()[0]}.", ""]
    for scen, res in all_results.items():
        if not res:
            continue
        lines += [f"### {scen}", "",
                  "| server | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in sorted(res.items(), key=lambda kv: -kv[1]["rps"]):
            lines.append(f"| {name} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                         f"{r['cpu_us']:.1f} | {r['rss_mb']:.1f} | {r['errors']} |")
        lines.append("")
    lines += ["### Ratios", "", "| scenario | ratio | value | target |", "|---|---|---:|---|"]

    def ratio(scen: str, a: str, b: str | tuple[str, ...], label: str, target: str) -> None:
        res = all_results.get(scen, {})
        if a not in res:
            return
        bs = (b,) if isinstance(b, str) else b
        others = [res[x]["rps"] for x in bs if x in res]
        if not others:
            return
        lines.append(f"| {scen} | {label} | {res[a]['rps'] / max(others):.2f}x | {target} |")

    for scen in ("hello-100", "hello-1000", "json", "param"):
        ratio(scen, "ember", ("granian", "socketify"), "ember / best(granian, socketify)",
              ">= 1.2x")
        ratio(scen, "ember", "fastapi", "ember / fastapi", ">= 10x")
        ratio(scen, "ember", "ember-pure", "compiled / pure", "> 1x")
    ratio("pipelined-16", "ember", "nginx", "ember / nginx", ">= 0.9x")
    ratio("body-validated", "ember", "fastapi", "ember (msgspec) / fastapi (pydantic)", ">= 5x")
    if "routes-1000" in all_results and "routes-1" in all_results:
        a = all_results["routes-1000"].get("ember")
        b = all_results["routes-1"].get("ember")
        if a and b:
            lines.append(f"| routes | 1000-route / 1-route app | {a['rps'] / b['rps']:.2f}x | "
                         ">= 0.9x |")
    if "cors+apikey" in all_results and "no-middleware" in all_results:
        a = all_results["cors+apikey"].get("ember")
        b = all_results["no-middleware"].get("ember")
        if a and b:
            lines.append(f"| middleware | CORS+API key / none | {a['rps'] / b['rps']:.2f}x | "
                         ">= 0.8x |")
    p = all_results.get("hello-100", {})
    if "ember" in p and "socketify" in p:
        lines.append(f"| hello-100 | p99 ember / socketify | "
                     f"{p['ember']['p99'] / p['socketify']['p99']:.2f}x | <= 1x |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s cells, 1 s warm-up")
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated servers")
    parser.add_argument("--scenarios", default="", help="comma-separated scenarios")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("wrk and taskset are required (apt-get install -y wrk util-linux)")
        return 2
    ensure_venv()
    duration = args.duration or (3.0 if args.quick else 6.0)
    warmup = 1.0 if args.quick else 2.0
    names = [n for n in (args.only.split(",") if args.only else DEFAULT_SERVERS) if n]
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios.split(",")]
    from ember._compat import is_compiled
    from ember.http import parser

    if not is_compiled(parser._impl):
        print("[bench] WARNING: Ember's compiled extensions are not built; 'ember' runs pure")
    results = {}
    for scenario in chosen:
        results[scenario.name] = measure(scenario, names, duration, args.rounds, warmup)
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    text = render(results, command.strip())
    print("\n" + text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
