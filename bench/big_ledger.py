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
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import ledger_load  # noqa: E402

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
FIRST_DAY = ledger_load.FIRST_DAY


def load(t, env):
    n, c, secs = ledger_load.load(env.sql, ROWS, CUSTOMERS, DAYS, FIRST_DAY)
    t.diag("loaded %s ledger rows, %s customers in %.1f s" % (n, c, secs))


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
