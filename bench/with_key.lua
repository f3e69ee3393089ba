wrk.headers["x-api-key"] = "bench-key"
wrk.headers["Origin"] = "https://bench.example"
