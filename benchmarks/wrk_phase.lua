-- One measured phase for wrk (used by load.py --generator wrk): a lighter load generator than Python, so that
-- less of the 2 cores goes to the client side. Arguments after "--": method, a file of request paths (one per
-- line; a random one per request), a body template file or "-", and the JSON file to write the summary to.
-- A body template may contain __MI__ (replaced by a unique masterIdentifier) and __PATIENT__ (a random line of
-- the paths file, used as the subject's Patient id).

local method, paths_file, body_file, out_file
local paths = {}
local template = nil
local counter = 0
local tag = 0

function init(args)
  method, paths_file, body_file, out_file = args[1], args[2], args[3], args[4]
  for line in io.lines(paths_file) do paths[#paths + 1] = line end
  if body_file ~= "-" then
    local f = io.open(body_file, "rb"); template = f:read("*a"); f:close()
  end
  tag = math.floor(os.clock() * 1000000) + math.random(1, 1000000)
  math.randomseed(os.time() + tag)
end

function request()
  local pick = paths[math.random(1, #paths)]
  if template == nil then
    return wrk.format(method, pick)
  end
  counter = counter + 1
  local mi = string.format("urn:oid:1.2.250.1.999.%d.%d.%d", os.time(), tag, counter)
  local body = template:gsub("__MI__", mi, 1):gsub("__PATIENT__", pick)
  return wrk.format(method, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  -- done() runs in wrk's main Lua state, where init() never ran: the output file comes from the environment
  local f = io.open(os.getenv("WRK_SUMMARY"), "w")
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %f}',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
  f:close()
end
