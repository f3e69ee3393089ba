-- Stop wrk's thread after a number of responses: wrk ... URL -- LIMIT MARKER_FILE
-- (bench/leak.py then sends wrk SIGINT, which makes it print its summary at once).
local limit, done, marker = 0, 0, nil
init = function(args) limit = tonumber(args[1]) or 0; marker = args[2] end
response = function(status, headers, body)
  done = done + 1
  if limit > 0 and done == limit then
    if marker then local f = io.open(marker, "w"); f:write(done); f:close() end
    wrk.thread:stop()
  end
end
