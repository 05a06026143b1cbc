#!/usr/bin/env python3
"""big_ledger: /spend/logs and /customer/daily/activity on a big ledger.

Issue 7 item 6: with 1,000,000 ledger rows and 100,000 customers, each
report must answer within 50 ms.  A benchmark, not a test: it starts the
e2e harness's private MariaDB and lighttpd, loads the rows with SQL (the
Sequence engine), times each request shape and prints the figures.

Usage (from a build directory, after make):
  TG_SRCDIR=/path/to/src TG_BUILDDIR=$PWD python3 bench/big_ledger.py
Options by environment: BENCH_ROWS (1000000), BENCH_CUSTOMERS (100000),
BENCH_DAYS (90), BENCH_REPEAT (20), BENCH_BUFFER_POOL (1G).
"""

import os
import statistics
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import harness as H  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
DAYS = int(os.environ.get("BENCH_DAYS", "90"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
# The tests' MariaDB has a 64 MiB buffer pool; a server holding a big ledger
# is given room for it (BENCH_BUFFER_POOL, 1G), as a real one would be.
BUFFER_POOL = os.environ.get("BENCH_BUFFER_POOL", "1G")
H.MariaDB.SERVER_OPTS = [o for o in H.MariaDB.SERVER_OPTS
                         if not o.startswith("--innodb-buffer-pool-size=")] + [
    "--innodb-buffer-pool-size=" + BUFFER_POOL]
FIRST_DAY = "2026-09-01"


def load(t, env):
    t0 = time.time()
    env.sql("INSERT INTO customers (user_id, spend, created_at, updated_at)"
            " SELECT CONCAT('bench-', seq), 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)"
            " FROM seq_1_to_%d" % CUSTOMERS)
    # Rows spread evenly over DAYS days and the customers; three models.
    env.sql("INSERT INTO spend_logs (request_id, end_user, model, model_id, api_key,"
            " call_type, status, spend, prompt_tokens, completion_tokens, total_tokens,"
            " start_time, end_time, request_duration_ms, api_base, metadata)"
            " SELECT CONCAT('bench-req-', seq), CONCAT('bench-', 1 + seq MOD %d),"
            " ELT(1 + seq MOD 3, 'fake-gpt', 'fake-gpt-2', 'other'), 'id', 'hash',"
            " 'completion', IF(seq MOD 17 = 0, 'failure', 'success'),"
            " (seq MOD 1000) * 0.0000001, seq MOD 500, seq MOD 300,"
            " seq MOD 500 + seq MOD 300,"
            " '%s' + INTERVAL (seq * %d DIV %d) SECOND,"
            " '%s' + INTERVAL (seq * %d DIV %d) SECOND, 3, 'http://up', NULL"
            " FROM seq_1_to_%d"
            % (CUSTOMERS, FIRST_DAY, DAYS * 86400, ROWS, FIRST_DAY, DAYS * 86400, ROWS, ROWS))
    env.sql("ANALYZE TABLE spend_logs, customers")
    n = env.sql("SELECT COUNT(*) FROM spend_logs")[0][0]
    c = env.sql("SELECT COUNT(*) FROM customers")[0][0]
    t.diag("loaded %s ledger rows, %s customers in %.1f s" % (n, c, time.time() - t0))


def timed(env, path):
    times = []
    r = None
    for _ in range(REPEAT):
        r = env.request("GET", path)
        # The transport's time (request sent to body read), not the
        # client's JSON parsing.
        times.append(r.elapsed * 1000)
    return r, times


def q(path, **params):
    return path + "?" + urllib.parse.urlencode(params)


def main(t, env):
    cfg = env.write_config("bench", env.config())
    env.start_lighttpd(cfg, max_procs=1)
    load(t, env)
    mid = "2026-10-15"
    ten = ",".join("bench-%d" % i for i in range(1, 11))
    shapes = [
        ("spend/logs newest 100", q("/spend/logs", page_size=100)),
        ("spend/logs one customer", q("/spend/logs", end_user="bench-4242")),
        ("spend/logs one customer, one day",
         q("/spend/logs", end_user="bench-4242", start_date="2026-10-16",
           end_date="2026-10-16")),
        ("spend/logs one day, page 50", q("/spend/logs", start_date=mid, end_date=mid,
                                          page=50, page_size=100)),
        ("spend/logs request_id", q("/spend/logs", request_id="bench-req-500000")),
        ("daily/activity one customer, all time",
         q("/customer/daily/activity", end_user_ids="bench-4242")),
        ("daily/activity one customer, 30 days",
         q("/customer/daily/activity", end_user_ids="bench-4242", start_date="2026-10-01",
           end_date="2026-10-30")),
        ("daily/activity ten customers, 30 days",
         q("/customer/daily/activity", end_user_ids=ten, start_date="2026-10-01",
           end_date="2026-10-30")),
        ("daily/activity everyone, one day",
         q("/customer/daily/activity", start_date=mid, end_date=mid)),
        ("daily/activity one model, one day",
         q("/customer/daily/activity", start_date=mid, end_date=mid, model="other")),
    ]
    t.diag("%-42s %8s %8s %8s %s" % ("request", "p50 ms", "p90 ms", "max ms", "answer"))
    for name, path in shapes:
        r, times = timed(env, path)
        times.sort()
        p50 = statistics.median(times)
        p90 = times[int(len(times) * 0.9) - 1] if len(times) >= 10 else times[-1]
        size = len(r.body) if r is not None else 0
        t.diag("%-42s %8.1f %8.1f %8.1f %d, %d bytes" % (name, p50, p90, times[-1], r.status, size))
        t.ok(r.status == 200, "%s: 200" % name)


if __name__ == "__main__":
    H.run(main)
