-- Batch lookups of 50 random identities, full answers (BENCH_PATHS: another request file;
-- BENCH_QUERY_SUFFIX: appended to every path, e.g. "&proofs=true").
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local paths, token
local suffix = os.getenv("BENCH_QUERY_SUFFIX") or ""
function init(args)
  math.randomseed(os.time() * 1000 + id)
  paths = read_lines(os.getenv("BENCH_PATHS") or "lookups.txt")
  token = read_token()
end
function request()
  return wrk.format("GET", paths[math.random(#paths)] .. suffix, { Authorization = "Bearer " .. token })
end
