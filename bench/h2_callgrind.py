"""Instructions per HTTP/2 request of the whole Ember server (callgrind, h2load).

    python bench/h2_callgrind.py                          # compiled, GET /hello, 6,000 requests
    python bench/h2_callgrind.py --modes compiled,pure --path /json -m 1

The server (the app of ``bench/h2_peers.py``, one worker, ``http2=True``, access log off)
runs twice under ``valgrind --tool=callgrind`` pinned to CPU 0: once serving
``--requests`` requests from ``h2load -c C -m M`` (cleartext prior knowledge, CPU 1) and
once serving ``--baseline`` requests; instructions per request = the difference in Ir
divided by the difference in requests (startup, imports and shutdown cancel out).  Both
runs stop with SIGINT.  Instruction counts move by well under 1 % between runs; wall-clock
figures on the shared machine by tens of percent.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from h2_peers import EMBER_APP, free_port  # noqa: E402


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        out = subprocess.run(["h2load", "-n", "1", "-c", "1", f"http://127.0.0.1:{port}/hello"],
                             capture_output=True, text=True).stdout
        if re.search(r"\b1 succeeded", out):
            return
        time.sleep(0.5)
    raise SystemExit("server did not start under valgrind")


def run(mode: str, requests: int, args: argparse.Namespace, workdir: Path) -> int:
    port = free_port()
    out = workdir / f"callgrind.{mode}.{requests}.out"
    app = workdir / "app.py"
    app.write_text(EMBER_APP)
    env = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
    if mode == "pure":
        env["EMBER_NO_EXTENSIONS"] = "1"
    cmd = ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--cache-sim=no",
           "--branch-sim=no", f"--callgrind-out-file={out}", sys.executable, str(app),
           str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_ready(port, proc)
        if requests:
            load = subprocess.run(["taskset", "-c", "1", "h2load", "-n", str(requests), "-c",
                                   str(args.connections), "-m", str(args.streams),
                                   f"http://127.0.0.1:{port}{args.path}"],
                                  capture_output=True, text=True, timeout=900).stdout
            if not re.search(rf"\b{requests} succeeded", load):
                raise SystemExit(f"h2load did not succeed:\n{load[-1500:]}")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text(errors="replace") if out.exists() else ""
    m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if m is None:
        raise SystemExit(f"no callgrind totals in {out}:\n{err.decode(errors='replace')[-2000:]}")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--baseline", type=int, default=0)
    ap.add_argument("-c", "--connections", type=int, default=20)
    ap.add_argument("-m", "--streams", type=int, default=10)
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--modes", default="compiled")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("h2load") is None:
        print("needs valgrind and h2load (nghttp2-client)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="ember-h2-callgrind-"))
    for mode in args.modes.split(","):
        base = run(mode, args.baseline, args, workdir)
        total = run(mode, args.requests, args, workdir)
        per = (total - base) / (args.requests - args.baseline)
        print(f"{mode:<9} HTTP/2 GET {args.path}: {per:,.0f} instructions/request "
              f"(h2load -c {args.connections} -m {args.streams}, "
              f"{args.requests - args.baseline} requests)", flush=True)
    print(f"(callgrind output files in {workdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
