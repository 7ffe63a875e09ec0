-- The same batches with their current ETag: 304, no body.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local paths, etags, token
function init(args)
  math.randomseed(os.time() * 1000 + id)
  paths = read_lines("lookups.txt")
  etags = read_lines("etags.txt")
  token = read_token()
end
function request()
  local i = math.random(#paths)
  return wrk.format("GET", paths[i], { Authorization = "Bearer " .. token, ["If-None-Match"] = etags[i] })
end
