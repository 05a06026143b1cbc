#!/usr/bin/env python3
"""ledger_diff: the ledger's two ways agree, row for row.

The ledger runs a call's admission and settlement either as one CALL of
the procedures tg_admit and tg_settle (sql/007, sql/008) or as statements
from lib/ledger.c (a database without the procedures, or a call they do not
take); where a procedure repeats C, this proves the two the same.
tests/unit/test-ledger runs one table of scenarios (a new customer, a tier,
a key and a customer, refusals at the exact boundary, a hold of 0, a due
reset, a duplicate request id, an unsettled row replaced, a budget deleted
mid-call, a model_max_budget cap, tags with a customer and a key, alone,
refused, reclaimed and replaced) on two databases of one server:
"tollgate" with the procedures and "tollgate_long" with them dropped.  Then
customers, api_keys, reservations and spend_logs of the two are compared
row for row, every column but those the server's clock writes (created_at,
updated_at, expires_at), and model_spend, the per-model accounts, tags and
the ledger's index by tag.  A procedure made to differ (a join, a condition) fails here.

In the ledger's spool and lease modes (TG_LEDGER_MODE, issue 22:
ledger_diff_spool.py, ledger_diff_lease.py) test-ledger gets the mode in its
environment, and a spool directory of the test's own; the rows are compared
once its journals are empty (Env.settle: the holds the scenarios leave on
purpose are not waited for).
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROGRAM = os.path.join(H.BUILDDIR, "tests", "unit", "test-ledger")

# Each table's columns as compared, its order, and a WHERE.
TABLES = {
    "customers": ("user_id, alias, blocked, spend, reserved, budget_id, "
                  "allowed_model_region, default_model, spend_reset_at", "user_id"),
    "api_keys": ("token, key_name, blocked, budget_id, spend, reserved, spend_reset_at",
                 "token"),
    "reservations": ("request_id, user_id, amount, model, api_key, start_time, key_token, "
                     "model_accounts, tags", "request_id"),
    "tags": ("tag_name, budget_id, spend, reserved, spend_reset_at", "tag_name"),
    "spend_log_tags": ("tag, request_id, start_time", "tag, request_id"),
    "model_spend": ("kind, account_id, model, spend, reserved, budget_limit, time_period, "
                    "spend_reset_at", "kind, account_id, model"),
    "spend_logs": ("request_id, end_user, model, model_id, api_key, call_type, status, spend, "
                   "prompt_tokens, completion_tokens, total_tokens, start_time, end_time, "
                   "request_duration_ms, api_base, metadata, response_id", "request_id"),
    "budgets": ("budget_id, max_budget, budget_duration", "budget_id"),
}


def run(t, env, db, label):
    url = env.db.url.replace("/tollgate?", "/%s?" % db)
    H.relay_tap(t, PROGRAM, label, env={"TG_TEST_DATABASE_URL": url,
                                        "TOLLGATE_SPOOL_DIR": env.spool_dirs()[0]})


def rows(env, db, table):
    cols, order = TABLES[table]
    return env.db.sql("SELECT %s FROM %s ORDER BY %s" % (cols, table, order), db=db)


def main(t, env):
    if not os.access(PROGRAM, os.X_OK):
        t.fail("test-ledger is built (make check builds it)", "missing: %s" % PROGRAM)
        return
    env.migrate(database_url=env.db.url.replace("/tollgate?", "/tollgate_long?"))
    env.db.sql("DROP PROCEDURE tg_admit; DROP PROCEDURE tg_settle; DROP PROCEDURE"
               " tg_admit_v11; DROP PROCEDURE tg_settle_v11", db="tollgate_long")
    procs = env.db.sql("SELECT db, COUNT(*) FROM mysql.proc WHERE name IN "
                       "('tg_admit', 'tg_settle', 'tg_admit_v11', 'tg_settle_v11')"
                       " GROUP BY db", db=None)
    t.is_eq(procs, [["tollgate", "4"]], "the procedures are in tollgate only")
    run(t, env, "tollgate", "procedures")
    run(t, env, "tollgate_long", "statements")
    env.settle_ok("the scenarios' books", holds=False)
    for table in TABLES:
        a, b = rows(env, "tollgate", table), rows(env, "tollgate_long", table)
        t.ok(len(a) > 0, "%s: the scenarios left %d rows" % (table, len(a)))
        t.is_eq(b, a, "%s: the statements leave the rows the procedures leave (%d rows)"
                % (table, len(a)))
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        for x, y in diff[:5]:
            t.diag("%s: procedures %r" % (table, x))
            t.diag("%s: statements %r" % (table, y))
    for db in ("tollgate", "tollgate_long"):
        capped = env.db.sql("SELECT spend, reserved FROM model_spend WHERE kind = 'customer'"
                            " AND account_id = 'cap-1' AND model = 'm'", db=db)
        t.is_eq([[H.dec(x) for x in r] for r in capped],
                [[H.Decimal("0.875"), H.Decimal(0)]],
                "%s: the capped model's spend is its three charges (0.5 + 0.25 + the "
                "unsettled 0.2 replaced by 0.125), nothing reserved" % db)
    for db in ("tollgate", "tollgate_long"):
        tagged = env.db.sql("SELECT tag_name, spend, reserved FROM tags ORDER BY tag_name",
                            db=db)
        t.is_eq([[r[0], H.dec(r[1]), H.dec(r[2])] for r in tagged],
                [["t-a", H.Decimal("0.875"), H.Decimal(0)],
                 ["t-b", H.Decimal("0.625"), H.Decimal(0)]],
                "%s: t-a's spend is its three charges (0.5 + 0.25 + the unsettled 0.2"
                " replaced by 0.125), t-b's its two (0.5 + 0.125), nothing reserved" % db)
    unsettled = env.db.sql("SELECT COUNT(*) FROM spend_logs WHERE status = 'unsettled'")
    t.is_eq(unsettled, [["0"]], "the unsettled row was replaced by its settlement")


H.run(main)
