-- wrk script for the noisy-neighbour benchmark (noisy.sh): tenant B sends one of the worst
-- requests of issue 17 (KIND, 1 to 6, below) as fast as wrk can; noisy.sh runs one wrk per
-- kind, so that the server slowing one kind down does not slow B's others. Environment:
-- KIND, B_TENANT, B_USER, B_KEY.
local tenant, user, key = os.getenv("B_TENANT"), os.getenv("B_USER"), os.getenv("B_KEY")
local reqs = {}
local threads = {}

local function words(n, prefix)
  local out = {}
  for i = 1, n do out[i] = string.format("%s%03x", prefix, i) end
  return table.concat(out, " ")
end

function setup(thread) table.insert(threads, thread) end

function init(args)
  local auth = { ["Content-Type"] = "application/json", ["X-Tenant-ID"] = tenant,
                 ["X-User-ID"] = user, ["X-API-Key"] = key }
  local stranger = { ["Content-Type"] = "application/json", ["X-Tenant-ID"] = tenant,
                     ["X-User-ID"] = user, ["X-API-Key"] = "bsk_not-the-key" }
  -- 1. A hostile search: 100 words, all "a"; B's records hold far more "a…" words than a
  --    search may read, so it reads its whole budget and ends with 422.
  local q = string.rep("a%20", 99) .. "a"
  reqs[#reqs + 1] = wrk.format("GET", "/v1/search?q=" .. q, auth)
  -- 2. A task at the text limits: 255-character title, 10,000-character description of
  --    distinct words (the most index entries one record may have).
  local desc = string.sub(words(2000, "a"), 1, 10000)
  reqs[#reqs + 1] = wrk.format("POST", "/v1/tasks", auth,
    '{"title":"' .. string.rep("t", 255) .. '","description":"' .. desc .. '"}')
  -- 3. A 1 MiB body of zeros with bad credentials: parsed (that is the contract's order), then
  --    refused with 401.
  reqs[#reqs + 1] = wrk.format("POST", "/v1/kpis", stranger,
    "[" .. string.rep("0,", 524286) .. "0]")
  -- 4. A payload nested 126 deep, replayed under one Idempotency-Key after the first call.
  local deep = string.rep('{"d":', 126) .. "true" .. string.rep("}", 126)
  local h = {}
  for k, v in pairs(auth) do h[k] = v end
  h["Idempotency-Key"] = "deep-" .. tostring(math.random(1, 1000000))
  reqs[#reqs + 1] = wrk.format("POST", "/v1/tools/invoke", h,
    '{"tool_name":"echo","payload":' .. deep .. "}")
  -- 5. 1 MiB of "[": deeper than any parser goes.
  reqs[#reqs + 1] = wrk.format("POST", "/v1/tasks", auth, string.rep("[", 1048576))
  -- 6. A declared 10 MiB body: refused by its Content-Length (wrk sends only the head and a
  --    few bytes; the server closes the connection after its 413).
  local big = wrk.format("POST", "/v1/kpis", stranger, "x")
  reqs[#reqs + 1] = string.gsub(big, "Content%-Length: 1\r\n", "Content-Length: 10485760\r\n")
  codes = {}
end

local kind = tonumber(os.getenv("KIND") or "1")

function request()
  return reqs[kind]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("codes")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do parts[#parts + 1] = status .. ":" .. count end
  table.sort(parts)
  io.write("B statuses " .. table.concat(parts, " ") .. "\n")
end
