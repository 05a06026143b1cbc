#!/usr/bin/env python3
"""db_down: the database goes away and comes back (SPEC 4.4, 8, DESIGN).

With MariaDB stopped: chat, customer/info, customer/new and budget/new
answer 503 service_unavailable in the envelope (and a chat for a customer
never reaches the upstream), readiness answers 503 {"status": "unhealthy",
"db": "unreachable"} (why: only to the master key, as db_error),
liveliness still 200.  After MariaDB restarts on the same datadir and
socket, the same lighttpd and FastCGI processes serve normally again
(each reconnects by itself) and the ledger invariant holds.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost  # noqa: E402

PROCS = 3


def main(t, env):
    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=PROCS)
    usage = {"usage": {"prompt_tokens": 10, "completion_tokens": 10}}
    expected = Decimal(0)

    # Warm up: every chat process opens its connection.
    for i in range(PROCS * 3):
        r = env.chat(user="dd-user", fake=usage)
        if r.status == 200:
            expected += cost(10, 10)
    t.is_eq(env.customer_info("dd-user").status, 200, "before: customer/info 200")
    t.is_eq(env.request("GET", "/health/readiness", key=None).status, 200, "before: readiness 200")
    lighttpd_pid = srv.proc.pid
    children = sorted(srv.children())

    env.db.stop()
    t.ok(not env.db.ping(), "MariaDB stopped")
    env.upstream.reset()

    for i in range(PROCS + 1):
        r = env.chat(user="dd-user", fake=usage)
        env.check_error(r, 503, "service_unavailable", what="db down: chat #%d" % (i + 1))
    t.is_eq(env.upstream.requests(), [], "db down: chats for a customer never reach the upstream")
    r = env.customer_info("dd-user")
    env.check_error(r, 503, "service_unavailable", what="db down: customer/info")
    r = env.customer_new(user_id="dd-new")
    env.check_error(r, 503, "service_unavailable", what="db down: customer/new")
    r = env.budget_new(budget_id="dd-budget", max_budget=1)
    env.check_error(r, 503, "service_unavailable", what="db down: budget/new")
    r = env.request("GET", "/health/readiness", key=None)
    t.is_eq(r.status, 503, "db down: readiness 503")
    t.is_eq((r.json or {}).get("status"), "unhealthy", "db down: readiness status unhealthy")
    t.is_eq(sorted((r.json or {}).keys()), ["db", "spool", "spool_failed", "status"],
            "db down: readiness without a key says no more than its state")
    t.is_eq((r.json or {}).get("db"), "unreachable",
            "db down: readiness says unreachable, not the database's words (host, user)")
    r = env.request("GET", "/health/readiness", key=H.MASTER_KEY)
    t.ok(r.status == 503 and "Can't connect" in str((r.json or {}).get("db_error")),
         "db down: the master key is told why (db_error)", "got %r" % (r.json,))
    t.ok("readiness: the database is unreachable: Database unavailable" in srv.logs(),
         "db down: ... and the error log says it")
    r = env.request("GET", "/health/liveliness", key=None)
    t.is_eq(r.status, 200, "db down: liveliness still 200")
    r = env.request("POST", "/customer/new", body=b"{broken", key=H.MASTER_KEY)
    t.is_eq(r.status, 400, "db down: a bad body is still 400 (validation before the database)")

    env.db.start()
    t.ok(env.db.ping(), "MariaDB restarted on the same datadir and socket")
    # Give the health process one chance to reconnect, then everything must work.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if env.request("GET", "/health/readiness", key=None).status == 200:
            break
        time.sleep(0.2)
    t.is_eq(env.request("GET", "/health/readiness", key=None).status, 200, "after: readiness 200")

    statuses = []
    for i in range(PROCS * 4):
        r = env.chat(user="dd-user", fake=usage)
        statuses.append(r.status)
        if r.status == 200:
            expected += cost(10, 10)
    t.is_eq(statuses, [200] * (PROCS * 4),
            "after: every chat succeeds (each process reconnects transparently)")
    r = env.customer_info("dd-user")
    t.is_eq(r.status, 200, "after: customer/info 200")
    t.is_eq(H.dec((r.json or {}).get("spend")), expected,
            "after: spend counts exactly the successful calls")
    r = env.customer_new(user_id="dd-new")
    t.is_eq(r.status, 200, "after: customer/new 200 (nothing half-created while down)")
    r = env.budget_new(budget_id="dd-budget", max_budget=1)
    t.is_eq(r.status, 200, "after: budget/new 200")
    row = env.customer_row("dd-user") or {}
    t.is_eq(row.get("spend"), env.ledger_sum("dd-user"), "after: spend == SUM(spend_logs.spend)")
    t.is_eq(row.get("reserved"), Decimal(0), "after: nothing left reserved")
    t.is_eq(srv.proc.pid, lighttpd_pid, "the same lighttpd served throughout")
    t.ok(srv.alive(), "lighttpd still running")
    t.is_eq(sorted(srv.children()), children, "the same FastCGI processes served throughout")


if __name__ == "__main__":
    H.run(main)
