"""ledger_load: fill a tollgate database with a big ledger, in SQL.

Shared by bench/big_ledger.py (report endpoints on a big ledger) and
bench/run (the budgeted chat call on a big ledger).  The rows are made by
the server itself from MariaDB's Sequence engine (seq_1_to_N), so loading
a million rows takes seconds and sends no data over the socket.

load(sql, rows, customers, days, first_day) inserts `customers` customers
named bench-1 ... bench-N (spend 0, no budget) and `rows` spend_logs rows
spread evenly over `days` days from `first_day` and over those customers,
three models, every 17th a failure; then ANALYZE TABLE.  sql is a function
that runs one statement and returns its rows as lists of str (the e2e
harness's Env.sql or MariaDB.sql).  Returns (ledger rows, customers,
seconds taken), the counts as the database reports them afterwards.
"""

import time

FIRST_DAY = "2026-09-01"


def load(sql, rows, customers, days=90, first_day=FIRST_DAY):
    t0 = time.time()
    sql("INSERT INTO customers (user_id, spend, created_at, updated_at)"
        " SELECT CONCAT('bench-', seq), 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)"
        " FROM seq_1_to_%d" % customers)
    # Rows spread evenly over the days and the customers; three models.
    sql("INSERT INTO spend_logs (request_id, end_user, model, model_id, api_key,"
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
        % (customers, first_day, days * 86400, rows, first_day, days * 86400, rows, rows))
    sql("ANALYZE TABLE spend_logs, customers")
    n = int(sql("SELECT COUNT(*) FROM spend_logs")[0][0])
    c = int(sql("SELECT COUNT(*) FROM customers")[0][0])
    return n, c, time.time() - t0
