-- wrk script: `latest` across every tenant of a populated database. CREDS_FILE holds the
-- lines `populate` prints (tenant_id user_id api_key kpi_id).
local rows = {}
for line in io.lines(os.getenv("CREDS_FILE")) do
  local t, u, k, kpi = line:match("(%S+) (%S+) (%S+) (%S+)")
  rows[#rows + 1] = {t, u, k, kpi}
end
local n = 0
request = function()
  n = n + 1
  local r = rows[(n * 7919) % #rows + 1]
  return wrk.format("GET", "/v1/kpis/" .. r[4] .. "/latest", {["X-Tenant-ID"] = r[1], ["X-User-ID"] = r[2], ["X-API-Key"] = r[3]})
end
