-- POST one small chat completion with the bench key (bench/run_money_bench.sh)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.body = '{"model":"fake/fake","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}'
