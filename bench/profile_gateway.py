"""Server CPU per gateway request, and where it goes (py-spy), httpx vs aiohttp upstream.

Starts the anchor fake OpenAI upstream (uvicorn, CPU 1) and the anchor gateway app
(anchors/ai/ours_gateway_app.py, one worker, CPU 0) once per upstream client, drives
it with ``hey -c 50`` (CPU 1) and reports req/s, the gateway's CPU time per request
(from /proc ticks) and, with ``--profile``, the top self-time frames and the share of
time by package from ``py-spy record --format raw``.

    python bench/profile_gateway.py [--seconds 10] [--profile]

One run on a shared, noisy machine: compare the ratios within the run.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time

ANCHORS = "/work/shared/anchors/ai"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


GROUPS = (("httpx/httpcore/anyio", ("httpx", "httpcore", "anyio", "h11")),
          ("aiohttp/yarl/multidict", ("aiohttp", "yarl", "multidict")),
          ("ember.gateway", ("ember/gateway",)), ("ember.models", ("ember/models",)),
          ("ember http engine", ("ember/http", "ember/server", "ember/app", "ember/routing",
                                 "ember/responses", "ember/requests", "ember/sse")),
          ("msgspec/orjson", ("msgspec", "orjson")), ("asyncio/uvloop", ("asyncio", "uvloop")))


def summarize(raw: str, top: int = 12) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_time[frames[-1]] += n
        seen = set()
        for frame in frames:
            for name, keys in GROUPS:
                if name not in seen and any(k in frame for k in keys):
                    seen.add(name)
        # NOTE: a sample counts for the innermost group it touches (exclusive shares)
        for frame in reversed(frames):
            hit = next((name for name, keys in GROUPS if any(k in frame for k in keys)), None)
            if hit:
                groups[hit] += n
                break
        else:
            groups["other"] += n
    out = [f"  samples: {total}", "  by package (innermost frame):"]
    out += [f"    {k:28} {100 * v / total:5.1f}%" for k, v in groups.most_common()]
    out.append("  top self time:")
    for k, v in self_time.most_common(top):
        short = re.sub(r" *\(/.*?site-packages/", " (", k)[:110]
        out.append(f"    {100 * v / total:5.1f}%  {short}")
    return "\n".join(out)


def run(client: str, seconds: int, profile: bool) -> str:
    key = "sk-" + secrets.token_hex(16)
    fport, gport = free_port(), free_port()
    env = dict(os.environ, KEY=key, FAKE_BASE_URL=f"http://127.0.0.1:{fport}/v1",
               FAKE_API_KEY="sk-upstream", PYTHONPATH=os.path.join(ROOT, "src"),
               EMBER_MODEL_HTTP_CLIENT=client)
    fake = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "uvicorn",
                             "fake_openai:app", "--app-dir", ANCHORS, "--port", str(fport),
                             "--log-level", "warning", "--no-access-log", "--loop", "uvloop",
                             "--http", "httptools"])
    gw = subprocess.Popen(["taskset", "-c", "0", sys.executable,
                           os.path.join(ANCHORS, "ours_gateway_app.py"), str(gport)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spy = None
    try:
        wait_port(fport)
        wait_port(gport)
        body = ('{"model":"fake/fake","stream":true,"messages":[{"role":"user","content":"hi"}]}'
                if os.environ.get("STREAM") else
                '{"model":"fake/fake","messages":[{"role":"user","content":"hi"}]}')
        hey = ["taskset", "-c", "1", "hey", "-c", "50", "-m", "POST", "-T", "application/json",
               "-H", f"Authorization: Bearer {key}", "-d", body,
               f"http://127.0.0.1:{gport}/v1/chat/completions"]
        subprocess.run([*hey[:3], "hey", "-z", "3s", *hey[4:]], capture_output=True)  # warm-up
        raw_path = tempfile.mktemp(suffix=".txt")
        if profile:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(gw.pid), "--format", "raw",
                                    "-r", "250", "-d", str(seconds), "-o", raw_path,
                                    "--nonblocking"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        c0 = ticks(gw.pid)
        out = subprocess.run([*hey[:3], "hey", "-z", f"{seconds}s", *hey[4:]],
                             capture_output=True, text=True).stdout
        c1 = ticks(gw.pid)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = re.search(r"50%+ in ([\d.]+) secs", out)
        codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
        n = sum(int(c) for _, c in codes)
        cpu_ms = (c1 - c0) / os.sysconf("SC_CLK_TCK") * 1000 / max(n, 1)
        text = (f"{client:8} {rps:8.0f} req/s  CPU {cpu_ms:.3f} ms/req  p50 "
                f"{float(p50.group(1)) * 1000 if p50 else float('nan'):.1f} ms  status {codes}")
        if spy is not None:
            spy.wait(seconds + 30)
            if os.path.exists(raw_path):
                with open(raw_path) as f:
                    text += "\n" + summarize(f.read())
        return text
    finally:
        for p in (spy, gw, fake):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    for client in os.environ.get("CLIENTS", "httpx aiohttp").split():
        print(run(client, args.seconds, args.profile), flush=True)


if __name__ == "__main__":
    main()
