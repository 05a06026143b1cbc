-- bench/wrk-post.lua: the wrk script of bench/run.
--
-- POSTs the same body on every request: the file BENCH_BODY_FILE names,
-- with Content-Type: application/json and the extra headers of
-- BENCH_HEADERS ("Name: value" lines).  At the end it prints one line
--   BENCH {"requests": ..., "p50_us": ..., ...}
-- (JSON) that bench/run reads: wrk's own summary has no p99 at this
-- resolution and no count of non-2xx answers in a form worth parsing.
-- A run in which any answer is not 2xx/3xx (errors_status) is reported
-- as failed by bench/run: a fast 429 or 500 must never pass for a result.
--
-- With BENCH_USERS set (comma-separated customer ids), every
-- "@BENCH_USER@" in the body is replaced by each of them in turn, one
-- request after the other (round robin, a counter per wrk thread; the
-- requests are formatted once, in init; wrk thread i starts 16 * i
-- customers further, so that 2 threads of 16 connections cover 32 at
-- once): the 32-customer rows of issue 22.

local path = os.getenv("BENCH_BODY_FILE")
local f = assert(io.open(path, "rb"), "cannot read BENCH_BODY_FILE " .. tostring(path))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
	local name, value = line:match("^([^:]+):%s*(.*)$")
	if name then
		wrk.headers[name] = value
	end
end

local users = {}
for user in (os.getenv("BENCH_USERS") or ""):gmatch("[^,]+") do
	users[#users + 1] = user
end
if #users > 0 then
	local requests, n, threads = {}, 0, 0
	function setup(thread)
		thread:set("bench_thread", threads)
		threads = threads + 1
	end
	function init(args)
		n = (16 * (bench_thread or 0)) % #users
		for i, user in ipairs(users) do
			local body = wrk.body:gsub("@BENCH_USER@", user)
			requests[i] = wrk.format(nil, nil, nil, body)
		end
	end
	function request()
		n = n % #requests + 1
		return requests[n]
	end
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
		'"errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
		'"errors_status": %d, "errors_timeout": %d, "mean_us": %.1f, ' ..
		'"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
		summary.requests, summary.duration, summary.bytes,
		e.connect, e.read, e.write, e.status, e.timeout, latency.mean,
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency.max))
end
