-- wrk script: POST distinct KYC Verification Status webhooks. Each request
-- is a new body (new user or the next step of one), so no repeat detection
-- shortcut is measured. A user's steps are SPREAD requests apart (a block
-- of SPREAD users takes step 1, then the same users step 2, then step 3),
-- as P100's webhooks for one user come seconds apart, never together: two
-- steps of one user in flight at once would each wait for the other's
-- commit (kycd applies one user's deliveries in order). The token comes
-- from BENCH_TOKEN.
local token = os.getenv("BENCH_TOKEN")
local steps = {"PENDING", "VERIFICATION", "SUCCESSFUL"}
local n = 0
local SPREAD = 1000
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  n = n + 1
  local block = math.floor((n - 1) / (3 * SPREAD))
  local user = block * SPREAD + (n - 1) % SPREAD
  local step = steps[math.floor(((n - 1) % (3 * SPREAD)) / SPREAD) + 1]
  local v = step == "SUCCESSFUL" and "VERIFIED" or "NOT_VERIFIED"
  local body = string.format(
    '{"externalUserId":"bench-%d-%d-%d","verificationStatus":"%s","attemptStatus":"%s"}',
    tid or 0, os.time(), user, v, step)
  return wrk.format("POST", "/webhooks/p100/kyc-verification-status",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d errors_status=%d errors_connect=%d errors_timeout=%d duration_s=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
