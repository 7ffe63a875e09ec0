-- Shared by every scenario: per-thread ids, the request files, and a JSON summary line.
local dir = os.getenv("BENCH_DIR")
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function read_lines(name)
  local lines = {}
  for line in io.lines(dir .. "/" .. name) do
    lines[#lines + 1] = line
  end
  return lines
end

function read_token()
  local file = io.open(dir .. "/token")
  local token = file:read("*l")
  file:close()
  return token
end

-- socket_errors counts timeouts too (as before); timeouts (wrk's --timeout) are also given alone.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"non_2xx_3xx":%d,"socket_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout, e.timeout))
end
