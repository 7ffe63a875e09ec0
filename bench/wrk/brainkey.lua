-- Pythia brainkey evaluations (e3kit's backup and restore step): one official blinded password,
-- as the rate limits are off and the cost of an evaluation does not depend on it.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local token
local body = '{"blinded_password":"AhRrVp3l4hxjk83/+HZXMMwwvhPq69YR2tyhJVXPlJUfffOvxHNPyu0uHnXvw7NvEA=="}'
function init(args)
  token = read_token()
end
function request()
  return wrk.format("POST", "/pythia/v1/brainkey",
    { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end
