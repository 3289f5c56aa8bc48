-- wrk script: POST one 10,000-point body to a rotating list of KPIs, so every request inserts
-- new points. Environment: TENANT_ID, ADMIN_ID, API_KEY, KPIS_FILE (one KPI id per line; more
-- KPIs than requests), BODY_FILE (the JSON body). See bulk.sh.
local ids = {}
for line in io.lines(os.getenv("KPIS_FILE")) do ids[#ids + 1] = line end
local f = assert(io.open(os.getenv("BODY_FILE"))); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-ID"] = os.getenv("TENANT_ID")
wrk.headers["X-User-ID"] = os.getenv("ADMIN_ID")
wrk.headers["X-API-Key"] = os.getenv("API_KEY")
local n = 0
local nthreads = 0
function setup(thread) nthreads = nthreads + 1; thread:set("tno", nthreads) end
request = function()
  n = n + 1
  local i = ((n * 2 + (tno or 1)) % #ids) + 1
  return wrk.format(nil, "/v1/kpis/" .. ids[i] .. "/points:bulk")
end
