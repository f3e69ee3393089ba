#!/usr/bin/env bash
# The gateway with the money path off and on (issue #20), one short run each:
# gateway (one worker) on CPU 0, the instant fake upstream (anchors/ai/fake_openai.py on
# uvicorn) and wrk (c50) on CPU 1.  MONEY=off | memory | redis (a private redis-server).
# Prints req/s, p50 and the gateway process's CPU per request (user + system).
#   bash bench/run_money_bench.sh            # DUR=10 by default
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$HERE/../.venv/bin/python}
A=/work/shared/anchors/ai
FP=${FP:-18041}; GP=${GP:-14041}; RP=${RP:-16391}; DUR=${DUR:-10}
export KEY=sk-bench-$RANDOM$RANDOM
taskset -c 1 "$PY" -m uvicorn fake_openai:app --app-dir "$A" --host 127.0.0.1 --port $FP \
  --loop uvloop --http httptools --log-level warning --no-access-log >/dev/null 2>&1 & FPID=$!
redis-server --port $RP --save "" --appendonly no >/dev/null 2>&1 & RPID=$!
GPID=""
trap 'kill $FPID $RPID $GPID 2>/dev/null; wait 2>/dev/null' EXIT
for money in ${MODES:-off memory redis}; do
  MONEY=$money REDIS_URL=redis://127.0.0.1:$RP/0 FAKE_BASE_URL=http://127.0.0.1:$FP/v1 \
    FAKE_API_KEY=x taskset -c 0 "$PY" "$HERE/apps/gateway_money_app.py" $GP >/dev/null 2>&1 &
  GPID=$!
  for i in $(seq 1 60); do curl -sf -o /dev/null -X POST -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' \
    -d '{"model":"fake/fake","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}' \
    http://127.0.0.1:$GP/v1/chat/completions && break; sleep 0.5; done
  taskset -c 1 wrk -t1 -c10 -d2s -s "$HERE/gateway_post.lua" http://127.0.0.1:$GP/v1/chat/completions >/dev/null
  cpu0=$(awk '{print $14 + $15}' /proc/$GPID/stat)
  out=$(taskset -c 1 wrk -t1 -c50 -d${DUR}s --latency -s "$HERE/gateway_post.lua" \
    http://127.0.0.1:$GP/v1/chat/completions)
  cpu1=$(awk '{print $14 + $15}' /proc/$GPID/stat)
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/{print $5}')
  n=$(echo "$out" | awk '/requests in/{print $1}')
  # CPU of the gateway process per request: steadier than req/s on a shared machine
  us=$(awk -v c=$((cpu1 - cpu0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN{printf "%.0f", c / hz / n * 1e6}')
  echo "money=$money req/s=$rps p50=$p50 non2xx=${non2xx:-0} gateway_cpu_us_per_req=$us"
  kill $GPID; wait $GPID 2>/dev/null; GPID=""
done
