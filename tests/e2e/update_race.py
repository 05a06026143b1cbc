#!/usr/bin/env python3
"""update_race: /customer/update of max_budget while 50 chats run (issue 7).

A customer's max_budget is raised, lowered and raised again by
/customer/update while 50 chats for it are in flight.  A test-only trigger
records, at every admission (the statement that raises the customer's
reserved), the money then committed (spend + reserved) and the max_budget
of the budget row the admission joined: each must be within that
max_budget.  At the end spend equals the ledger sum and nothing stays
reserved.
"""

import collections
import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

USER = "race-update"


def main(t, env):
    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=8)
    body, n = H.exact_chat_body("fake-gpt", USER, 100, fake={"delay": 0.2})
    est = cost(n, 100)
    budgets = [est * k + est / 2 for k in (10, 20, 5, 30, 12)]
    r = env.customer_new(user_id=USER, max_budget=str(budgets[0]), server=srv)
    t.is_eq(r.status, 200, "customer with max_budget %s" % budgets[0])
    env.sql("CREATE TABLE admission_audit (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
            " committed DECIMAL(20,10) NOT NULL, max_budget DECIMAL(20,10) NULL)")
    # The budget row is read with a shared lock, as the admission's join
    # holds it: the value is the one the admission compared against.
    env.sql("CREATE TRIGGER admission_audit_t BEFORE UPDATE ON customers FOR EACH ROW"
            " INSERT INTO admission_audit (committed, max_budget)"
            " SELECT NEW.spend + NEW.reserved, b.max_budget FROM budgets b"
            " WHERE b.budget_id = NEW.budget_id AND NEW.reserved > OLD.reserved"
            " LOCK IN SHARE MODE")

    rnd = random.Random(3)
    delays = [rnd.uniform(0, 1.5) for _ in range(50)]

    def chat(delay):
        time.sleep(delay)
        return env.request("POST", "/chat/completions", body=body, server=srv, timeout=120)

    updates = []

    def updater():
        for b in budgets[1:]:
            time.sleep(0.3)
            r = env.request("POST", "/customer/update",
                            body={"user_id": USER, "max_budget": str(b)}, server=srv)
            updates.append((b, r.status))

    th = threading.Thread(target=updater)
    th.start()
    results = H.parallel(50, [lambda d=d: chat(d) for d in delays])
    th.join()

    t.is_eq([s for _, s in updates], [200] * (len(budgets) - 1),
            "every /customer/update during the chats: 200")
    transport = [r for r in results if isinstance(r, Exception)]
    resps = [r for r in results if not isinstance(r, Exception)]
    statuses = collections.Counter(r.status for r in resps)
    t.diag("statuses %s; budgets in turn %s" % (dict(statuses), budgets))
    t.is_eq(transport, [], "no transport errors")
    t.is_eq(statuses.get(200, 0) + statuses.get(429, 0), 50, "every chat is 200 or 429",
            "statuses %s" % dict(statuses))
    admitted = statuses.get(200, 0)

    audit = [(dec(c), dec(m) if m is not None else None)
             for c, m in env.sql("SELECT committed, max_budget FROM admission_audit ORDER BY id")]
    t.is_eq(len(audit), admitted, "one audited admission per admitted chat")
    over = [(c, m) for c, m in audit if m is None or c > m]
    t.is_eq(over, [], "at every admission, spend + reserved <= the max_budget then in force")
    t.ok(all(m in budgets for _, m in audit), "each admission saw one of the budgets set",
         "seen %s" % sorted(set(m for _, m in audit)))
    t.diag("budgets seen at admissions: %s" % sorted(set(m for _, m in audit)))

    row = env.customer_row(USER) or {}
    t.is_eq(row.get("spend"), env.ledger_sum(USER), "final spend == SUM(spend_logs.spend)")
    t.is_eq(row.get("spend"), est * admitted, "final spend = admitted x cost")
    t.is_eq(row.get("reserved"), Decimal(0), "nothing left reserved")
    info = env.customer_info(USER, server=srv).json or {}
    t.is_eq(dec((info.get("litellm_budget_table") or {}).get("max_budget")), budgets[-1],
            "the last max_budget set is the one in force")
    env.sql("DROP TRIGGER admission_audit_t")


if __name__ == "__main__":
    H.run(main)
