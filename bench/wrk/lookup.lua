-- Batch lookups of 50 random identities, full answers.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local paths, token
function init(args)
  math.randomseed(os.time() * 1000 + id)
  paths = read_lines(os.getenv("BENCH_PATHS") or "lookups.txt")
  token = read_token()
end
function request()
  return wrk.format("GET", paths[math.random(#paths)], { Authorization = "Bearer " .. token })
end
