-- Fresh cards, each published once, each with its own identity's token; BENCH_PUBLISH_SET names
-- the scenario's own file (<set>.txt, default publish.txt), so no two scenarios share an identity.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local entries, counter, offset, stride = {}, 0, 0, 2
function init(args)
  offset = tonumber(args[1] or "0")
  stride = tonumber(args[2] or "2")
  for _, line in ipairs(read_lines((os.getenv("BENCH_PUBLISH_SET") or "publish") .. ".txt")) do
    local tab = line:find("\t")
    entries[#entries + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
  end
end
function request()
  local entry = entries[offset + id + counter * stride + 1] or entries[#entries]
  counter = counter + 1
  return wrk.format("POST", "/v1/cards", { Authorization = "Bearer " .. entry[1], ["Content-Type"] = "application/json" }, entry[2])
end
