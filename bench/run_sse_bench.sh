#!/usr/bin/env bash
# SSE capacity, one run (anchors/ai/run_sse.py): FastAPI's EventSourceResponse vs Ember's
# sse_stream before (the main checkout: a task + timeout per event for pings) and after
# (this tree: one idle timer per stream). N streams of 200 events at 20/s, server on CPU 0.
#   bash bench/run_sse_bench.sh "500 1000 2000"
# Needs bench/.venv-fastapi (python -m venv; pip install fastapi uvicorn uvloop httptools).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
NS=${1:-"500 1000 2000"}
PY=$(python -c "import sys; print(sys.executable)")
export OUT_DIR=${OUT_DIR:-$HERE/results} STOP_ON_BREAK=0
mkdir -p "$OUT_DIR"
echo "== fastapi"; PORT=18765 "$HERE/.venv-fastapi/bin/python" /work/shared/anchors/ai/run_sse.py $NS
echo "== ember main (before)"; SSE_SERVER=ours OURS_PY=$PY PYTHONPATH=/work/main/src PORT=18766 \
  "$PY" /work/shared/anchors/ai/run_sse.py $NS
echo "== ember this tree (after)"; SSE_SERVER=ours OURS_PY=$PY PYTHONPATH=$ROOT/src PORT=18767 \
  "$PY" /work/shared/anchors/ai/run_sse.py $NS
