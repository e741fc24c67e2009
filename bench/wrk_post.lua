-- wrk script for the simulator's capacity (bench/bench.py): every request
-- is a workspace provisioning POST with a userId never used before, as
-- bwprovd sends them. Run with one wrk thread (-t1), so one counter is
-- enough to keep the userIds distinct:
--   wrk -t1 -c N -d Ts -s wrk_post.lua URL/v1/broadworks/workspaces -- TOKEN NONCE
local token = "test-token-0123456789"
local nonce = "0"
local counter = 0
local headers = {}

function init(args)
  if args[1] then token = args[1] end
  if args[2] then nonce = args[2] end
  headers["Authorization"] = "Bearer " .. token
  headers["Content-Type"] = "application/json"
  headers["Accept"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"provisioningId":"prov-wrk-%s-%d","userId":"%d.wrk%s@sp.com",' ..
    '"spEnterpriseId":"Reseller1+acme","displayName":"Room %d"}',
    nonce, counter, counter, nonce, counter)
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d status_errors=%d connect_errors=%d " ..
    "read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d mean_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
