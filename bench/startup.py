"""Import time of Ember: wall time of ``python -c "import ember"``, median of 20.

    python bench/startup.py [--runs 20] [--quick]

Each sample is the wall time of a fresh interpreter (``subprocess.run``), so it
includes the interpreter's own start; the ``python -c pass`` row is that floor,
measured interleaved with the others.  Rows: ``import ember`` compiled,
``import ember`` with ``EMBER_NO_EXTENSIONS=1``, ``from ember import Ember``, and a
minimal app built (three routes, as bench/apps/ember_app.py's ``minimal``); the rows
marked ``(pyc)`` run with bytecode caches, as an installed wheel has them
(``PYTHONPYCACHEPREFIX`` under the system temp dir; the others inherit this shell's
environment, which here sets ``PYTHONDONTWRITEBYTECODE=1``, so Ember's sources are
compiled at every start).
The ten slowest imports by cumulative time (beyond those of ``python -c pass``)\ncome from ``python -X importtime``.
Writes bench/results/startup.json (read by bench/run.py's report).  Target (#2):
``python -c "import ember"`` <= 60 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PYCACHE = Path(tempfile.gettempdir()) / "ember-bench-pycache"
TARGET_MS = 60.0
PYC = "pyc"  # the third field of a case: "pure" (EMBER_NO_EXTENSIONS=1), PYC, or ""


def env(pure: bool | str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "EMBER_NO_EXTENSIONS"}
    if pure is True or pure == "pure":
        e["EMBER_NO_EXTENSIONS"] = "1"
    elif pure == PYC:
        e.pop("PYTHONDONTWRITEBYTECODE", None)
        e["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return e


MINIMAL_APP = (f"import sys; sys.path.insert(0, {str(HERE / 'apps')!r}); import ember_app; "
               "ember_app.build('minimal')")

CASES: list[tuple[str, str, bool | str]] = [
    ("python -c pass", "pass", False),
    ('python -c "import ember"', "import ember", False),
    ('EMBER_NO_EXTENSIONS=1 python -c "import ember"', "import ember", True),
    ('python -c "from ember import Ember"', "from ember import Ember", False),
    ("minimal app built (3 routes)", MINIMAL_APP, False),
    ("python -c pass (pyc)", "pass", PYC),
    ('python -c "from ember import Ember" (pyc)', "from ember import Ember", PYC),
    ("minimal app built (3 routes) (pyc)", MINIMAL_APP, PYC),
]


def sample(code: str, pure: bool | str) -> float:
    """Wall ms of one fresh interpreter; its CPU ms (user + sys) go to ``CPU_MS``."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env(pure))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t) * 1e3
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, code)
    CPU_MS.append((usage.ru_utime + usage.ru_stime) * 1e3)
    return wall


CPU_MS: list[float] = []  # NOTE: the CPU time of the last sample() is CPU_MS[-1]


def importtime(code: str, top: int = 10) -> list[tuple[float, str]]:
    """The slowest imports of ``code`` by cumulative ms, without the interpreter's own."""
    def parse(c: str) -> list[tuple[float, str]]:
        p = subprocess.run([sys.executable, "-X", "importtime", "-c", c],
                           capture_output=True, text=True, env=env(False), check=True)
        rows = []
        for line in p.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                rows.append((int(m.group(2)) / 1e3, m.group(3)[1:] + m.group(4)))
        return rows

    startup = {name.strip() for _, name in parse("pass")}
    return sorted((r for r in parse(code) if r[1].strip() not in startup), reverse=True)[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="samples per case (default 20)")
    ap.add_argument("--quick", action="store_true", help="5 samples per case")
    args = ap.parse_args()
    runs = args.runs or (5 if args.quick else 20)
    for _, code, pure in CASES:  # warm the page cache and any .pyc writing
        sample(code, pure)
    samples: dict[str, list[float]] = {label: [] for label, _, _ in CASES}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in CASES}
    for i in range(runs):  # interleaved, so drift hits every case alike
        for label, code, pure in CASES:
            samples[label].append(sample(code, pure))
            cpu[label].append(CPU_MS[-1])
        if sys.stdout.isatty():
            print(f"[startup] round {i + 1}/{runs}", end="\r", flush=True)
        elif (i + 1) % 5 == 0 or i + 1 == runs:
            print(f"[startup] round {i + 1}/{runs}", flush=True)
    print()
    floor = statistics.median(samples["python -c pass"])
    floor_pyc = statistics.median(samples["python -c pass (pyc)"])
    # NOTE: the CPU column (user + sys of the child) is far less disturbed by other load
    # on this shared machine than the wall clock; compare it between runs.
    print(f"{'command':50s} {'median ms':>10s} {'min ms':>8s} {'minus python':>13s} "
          f"{'CPU ms':>7s}")
    rows = {}
    for label, values in samples.items():
        med = statistics.median(values)
        base = floor_pyc if label.endswith("(pyc)") else floor
        cpu_med = statistics.median(cpu[label])
        rows[label] = {"median_ms": med, "min_ms": min(values), "minus_python_ms": med - base,
                       "cpu_median_ms": cpu_med, "samples_ms": [round(v, 2) for v in values]}
        print(f"{label:50s} {med:10.1f} {min(values):8.1f} {med - base:13.1f} {cpu_med:7.1f}")
    med = rows['python -c "import ember"']["median_ms"]
    verdict = "met" if med <= TARGET_MS else f"MISSED by {med - TARGET_MS:.1f} ms"
    print(f"\ntarget: import ember <= {TARGET_MS:.0f} ms: {med:.1f} ms, {verdict}")
    slow = {}
    for code in ("import ember", "from ember import Ember"):
        slow[code] = importtime(code)
        print(f"\nslowest imports of {code!r} beyond the interpreter's own "
              "(cumulative ms, one python -X importtime run):")
        for ms, name in slow[code]:
            print(f"  {ms:7.1f}  {name}")
    RESULTS.mkdir(exist_ok=True)
    pure = rows[CASES[2][0]]["median_ms"]
    summary = (f"`python -c \"import ember\"` median {med:.1f} ms of {runs} "
               f"(interpreter alone {floor:.1f} ms; pure mode {pure:.1f} ms); "
               f"target <= {TARGET_MS:.0f} ms: {verdict}")
    (RESULTS / "startup.json").write_text(json.dumps({
        "command": ("python bench/startup.py " + " ".join(sys.argv[1:])).strip(),
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "runs": runs, "rows": rows,
        "slowest_imports_ms": slow, "summary": summary.strip()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
