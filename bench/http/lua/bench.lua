-- The one wrk script of bench/http/run.sh. Configured through the environment (the API key never appears in a
-- process listing):
--   HB_MODE     verify-app | verify-email | send-email | factors | healthz
--   HB_KEY      the API key (Bearer)
--   HB_FILE     "user code" lines (verify-*) or "user ..." lines (factors); each thread takes every HB_THREADS-th
--   HB_OFFSET   first line of HB_FILE to use (0-based), HB_LIMIT how many; verify-* send each line once and then
--               stop (a second use would be a replay), unless HB_ONCE=0 (wrong codes: cycle through them)
--   HB_THREADS  wrk's -t
--   HB_EXPECT   the status every response must have (200, 202 or 401); HB_VALID=1: the body must say "valid":true
--   HB_TAG      send-email: users are s<TAG>t<thread>n<i>@bench.example, all distinct
--   HB_MAXREQ   stop each thread after this many responses (0: only the duration stops it)
-- done() prints one "HB_RESULT key=value ..." line that run.sh records.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } hb_timespec;
int clock_gettime(int clock, hb_timespec *t);
]]
local ts = ffi.new("hb_timespec")

-- wrk's own duration is always -d, even when every thread stopped early: time the run here (CLOCK_MONOTONIC, μs).
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

function init(args)
  mode = env("HB_MODE", "healthz")
  expect = tonumber(env("HB_EXPECT", "200"))
  want_valid = env("HB_VALID", "0") == "1"
  maxreq = tonumber(env("HB_MAXREQ", "0"))
  tag = env("HB_TAG", "0")
  local nthreads = tonumber(env("HB_THREADS", "1"))
  local offset = tonumber(env("HB_OFFSET", "0"))
  local limit = tonumber(env("HB_LIMIT", "1000000000"))
  local auth = "Bearer " .. env("HB_KEY", "")
  local form = { ["Authorization"] = auth, ["Content-Type"] = "application/x-www-form-urlencoded" }
  local get = { ["Authorization"] = auth }

  requests = {}
  if mode == "verify-app" or mode == "verify-email" or mode == "factors" then
    local kind = mode == "verify-app" and "APP" or "EMAIL"
    local i = 0
    for line in io.lines(env("HB_FILE", "")) do
      if i >= offset + limit then break end
      if i >= offset and (i - offset) % nthreads == tid then
        local user, code = line:match("^(%S+)%s+(%S+)")
        if mode == "factors" then
          user = line:match("^(%S+)")
          requests[#requests + 1] = wrk.format("GET", "/v1/mfa/factors?user=" .. user, get)
        else
          requests[#requests + 1] = wrk.format("POST", "/v1/mfa/verify", form,
            "User=" .. user .. ", Type=" .. kind .. ", Code=" .. code)
        end
      end
      i = i + 1
    end
  elseif mode == "healthz" then
    requests[1] = wrk.format("GET", "/healthz")
  end
  once = (mode == "verify-app" or mode == "verify-email") and env("HB_ONCE", "1") == "1"
  form_headers = form

  issued = 0
  responses = 0
  ok = 0
  bad = 0
  statuses = {}
  exhausted = 0
  first_us = 0
  last_us = 0
  probe = tid == 0
end

function request()
  if probe then
    -- wrk calls request() once on thread 0 before the run, only to parse what it returns: consume nothing.
    probe = false
    if mode == "send-email" or #requests == 0 then return wrk.format("GET", "/healthz") end
    return requests[1]
  end
  if mode == "send-email" then
    if first_us == 0 then first_us = now_us() end
    local user = "s" .. tag .. "t" .. tid .. "n" .. issued .. "@bench.example"
    issued = issued + 1
    return wrk.format("POST", "/v1/mfa", form_headers, "User=" .. user .. ", Type=EMAIL")
  end
  if (once and issued >= #requests) or #requests == 0 then
    -- Every request of this thread was sent once (a second use would be a replay): this connection sends nothing
    -- more (an empty write leaves it idle), and the thread stops when the last answer is in.
    exhausted = 1
    if responses >= issued then wrk.thread:stop() end
    return ""
  end
  if first_us == 0 then first_us = now_us() end
  issued = issued + 1
  return requests[(issued - 1) % #requests + 1]
end

function response(status, headers, body)
  last_us = now_us()
  responses = responses + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status == expect and (not want_valid or string.find(body, '"valid":true', 1, true)) then
    ok = ok + 1
  else
    bad = bad + 1
  end
  if (maxreq > 0 and responses >= maxreq) or (exhausted == 1 and responses >= issued) then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad, counts, issued_list, any_exhausted = 0, 0, {}, {}, 0
  local first, last = nil, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + (t:get("ok") or 0)
    total_bad = total_bad + (t:get("bad") or 0)
    for s, n in pairs(t:get("statuses") or {}) do counts[s] = (counts[s] or 0) + n end
    issued_list[#issued_list + 1] = tostring(t:get("issued") or 0)
    if (t:get("exhausted") or 0) == 1 then any_exhausted = 1 end
    local f, l = t:get("first_us") or 0, t:get("last_us") or 0
    if f > 0 and (first == nil or f < first) then first = f end
    if l > last then last = l end
  end
  local keys = {}
  for s in pairs(counts) do keys[#keys + 1] = s end
  table.sort(keys)
  local parts = {}
  for _, s in ipairs(keys) do parts[#parts + 1] = s .. ":" .. counts[s] end
  local e = summary.errors
  -- The measured window: first request sent to last response received, over all threads.
  local seconds = summary.duration / 1e6
  if first ~= nil and last > first then seconds = (last - first) / 1e6 end
  io.write(string.format(
    "HB_RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d ok=%d bad=%d statuses=%s errors=connect:%d,read:%d,write:%d,timeout:%d issued=%s exhausted=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    total_ok, total_bad, table.concat(parts, ","), e.connect, e.read, e.write, e.timeout,
    table.concat(issued_list, ","), any_exhausted))
end
