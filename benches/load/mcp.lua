-- wrk script: `kpi_summary` as `POST /v1/tools/invoke` (MODE=rest) or as an MCP `tools/call`
-- under 2026-07-28 (MODE=mcp), each request with a key of its own (a new invocation, metered
-- and billed, never a replay). TENANT_ID, API_KEY, ADMIN_ID, KPI_ID come from the environment
-- (shared/tools/load/setup.sh). Answers that are not 2xx, and MCP tool errors, are counted.
local mode = os.getenv("MODE")
local kpi = os.getenv("KPI_ID")
local counter = 0
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-ID"] = os.getenv("TENANT_ID")
wrk.headers["X-User-ID"] = os.getenv("ADMIN_ID")
wrk.headers["X-API-Key"] = os.getenv("API_KEY")
if mode == "mcp" then
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
  wrk.headers["Mcp-Method"] = "tools/call"
  wrk.headers["Mcp-Name"] = "kpi_summary"
end
local nthreads = 0
function setup(thread) nthreads = nthreads + 1; thread:set("tid", mode .. tostring(os.time()) .. "-" .. nthreads) end
request = function()
  counter = counter + 1
  local key = tid .. "-" .. counter
  if mode == "mcp" then
    return wrk.format("POST", "/mcp", nil,
      '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"tools/call","params":{"name":"kpi_summary",' ..
      '"arguments":{"kpi_id":"' .. kpi .. '","window_days":7,"idempotency_key":"' .. key .. '"},' ..
      '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}')
  end
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Idempotency-Key"] = key
  return wrk.format("POST", "/v1/tools/invoke", h,
    '{"tool_name":"kpi_summary","payload":{"kpi_id":"' .. kpi .. '","window_days":7}}')
end
local bad = 0
response = function(status, headers, body)
  if status >= 300 or string.find(body, '"isError":true', 1, true) then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("bad %d\n", bad))
end
