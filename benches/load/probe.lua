-- wrk script for noisy.sh: GET /healthz about every 10 ms on one connection, so its latency
-- tells how long any request waits for a runtime worker.
function delay() return 10 end
