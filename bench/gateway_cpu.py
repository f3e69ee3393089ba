"""The gateway's server CPU per request, money path off and on, and where it goes.

Runs what ``anchors/ai/run_gateways.sh`` runs for "ours" (one worker on CPU 0 in front of
the instant fake upstream, fake_openai.py on uvicorn on CPU 1), drives it with ``wrk -c 50``
(CPU 1) and reports the gateway process's utime+stime per request from /proc/<pid>/stat,
which does not depend on how loaded the shared machine is (req/s does).

Modes (``--modes``, default ``off full``):

* ``off``     the anchor app: no budget, no limits, no spend log;
* ``memory``  a budget and per-key limits in process memory;
* ``full``    budget and limits in Redis (one URL) and the spend log in PostgreSQL: a private
  ``redis-server`` and PostgreSQL cluster are started for the run.

``--profile`` adds a py-spy sample of the gateway during the measured run (top self-time
frames and the share by package, see bench/profile_gateway.py).

    python bench/gateway_cpu.py [--seconds 8] [--modes off full] [--profile]

One run on a shared, noisy machine: CPU per request is the figure to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ANCHORS = "/work/shared/anchors/ai"
sys.path.insert(0, HERE)
SRC = [os.path.join(ROOT, "src")]  # --src: another checkout's (before/after comparisons)

from profile_gateway import free_port, summarize, ticks, wait_port  # noqa: E402

BODY = '{"model":"fake/fake","messages":[{"role":"user","content":"hi"}]}'
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = '%s'
"""


@contextlib.contextmanager
def redis() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    import glob

    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    tmp = tempfile.mkdtemp(prefix="ember-bench-pg-")
    data, port = os.path.join(tmp, "data"), free_port()
    preexec = None
    if os.geteuid() == 0:  # NOTE: PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(tmp, user.pw_uid, user.pw_gid)

        def preexec() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    subprocess.run([f"{bindir}/initdb", "-D", data, "-U", "ember", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True, preexec_fn=preexec)
    proc = subprocess.Popen([f"{bindir}/postgres", "-D", data, "-p", str(port), "-k", tmp,
                             "-h", "127.0.0.1", "-F"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=preexec)
    try:
        wait_port(port)
        yield f"postgresql://ember@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


def run(mode: str, seconds: int, profile: bool, fport: int, env_extra: dict) -> str:
    key = "sk-bench-" + secrets.token_hex(8)
    gport = free_port()
    env = dict(os.environ, KEY=key, FAKE_BASE_URL=f"http://127.0.0.1:{fport}/v1",
               FAKE_API_KEY="x", PYTHONPATH=SRC[0],
               MONEY={"off": "off", "memory": "memory", "full": "redis"}[mode], **env_extra)
    gw = subprocess.Popen(["taskset", "-c", "0", sys.executable,
                           os.path.join(HERE, "apps", "gateway_money_app.py"), str(gport)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spy = None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % (key, BODY))
        lua = f.name
    url = f"http://127.0.0.1:{gport}/v1/chat/completions"
    try:
        wait_port(gport)
        wrk = ["taskset", "-c", "1", "wrk", "-t1", "-c50", "-s", lua]
        subprocess.run([*wrk, "-d3s", url], capture_output=True)  # warm-up
        raw = tempfile.mktemp(suffix=".txt")
        if profile:
            spy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "py-spy"),
                                    "record", "--pid", str(gw.pid), "--format", "raw", "-r",
                                    "200", "-d", str(seconds), "-o", raw, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c0 = ticks(gw.pid)
        out = subprocess.run([*wrk, f"-d{seconds}s", "--latency", url], capture_output=True,
                             text=True).stdout
        c1 = ticks(gw.pid)
        n = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
        us = (c1 - c0) / os.sysconf("SC_CLK_TCK") * 1e6 / max(n, 1)
        text = (f"{mode:7} cpu_us_per_req={us:6.0f}  req/s={rps:7.0f}  p50={p50}  "
                f"requests={n} non2xx={bad.group(1) if bad else 0}")
        if spy is not None:
            spy.wait(seconds + 30)
            if os.path.exists(raw):
                with open(raw) as fh:
                    text += "\n" + summarize(fh.read(), top=25)
        return text
    finally:
        for p in (spy, gw):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
        os.unlink(lua)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--modes", nargs="+", default=["off", "full"],
                    choices=["off", "memory", "full"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rounds", type=int, default=1,
                    help="interleave the modes this many times (compare the medians)")
    ap.add_argument("--src", help="the src/ directory of the ember to run (default: this one)")
    args = ap.parse_args()
    if args.src:
        SRC[0] = os.path.abspath(args.src)
    fport = free_port()
    fake = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "uvicorn",
                             "fake_openai:app", "--app-dir", ANCHORS, "--port", str(fport),
                             "--log-level", "warning", "--no-access-log", "--loop", "uvloop",
                             "--http", "httptools"])
    try:
        wait_port(fport)
        with contextlib.ExitStack() as stack:
            extra: dict = {}
            if "full" in args.modes:
                extra["REDIS_URL"] = stack.enter_context(redis())
                extra["SPEND_DSN"] = stack.enter_context(postgres())
            seen: dict[str, list[float]] = {m: [] for m in args.modes}
            for _ in range(args.rounds):
                for mode in args.modes:
                    env = extra if mode == "full" else {}
                    line = run(mode, args.seconds, args.profile, fport, env)
                    seen[mode].append(float(line.split("=", 1)[1].split()[0]))
                    print(line, flush=True)
            if args.rounds > 1:
                for mode, values in seen.items():
                    values.sort()
                    print(f"{mode:7} cpu_us_per_req median={values[len(values) // 2]:.0f} "
                          f"min={values[0]:.0f} max={values[-1]:.0f}")
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
