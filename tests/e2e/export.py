#!/usr/bin/env python3
"""export: GET /spend/export, a period's spend per customer (or key) as
CSV, to bill from (lib/spendlog.h, SPEC 8).

1. Calls of customers (one with a comma, a quote and a line feed in its
   id, one that a spreadsheet would take for a formula), of no customer,
   with a virtual key and with the master key; some of them moved into
   last month and archived.  The export of both months, read by Python's
   csv module: one line per customer, each equal to its ledger (rows and
   summaries) to the last digit, the calls of no customer first as
   "(no customer)", the formula neutralised; the sum of the spend column
   equals the ledger's; by key the same.
2. 12,000 customers with calls this month and 7,000 with archived days
   last month, 3,000 of them in both (the export reads 5,000 accounts a
   page from each source and merges them): every account once, the sums
   of both sources, in the order of its id.  Streamed: no Content-Length.
3. Errors: no dates, an end before the start, a group_by that is neither
   customer nor key: 422; a virtual key: 403.
"""

import csv
import subprocess
import io
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

ODD = 'co,"quoted"\nline'
FORMULA = "=HYPERLINK(\"x\")"


def export(env, srv, start, end, by=None, key=H.MASTER_KEY):
    q = "start_date=%s&end_date=%s" % (start, end) + ("&group_by=%s" % by if by else "")
    r = env.request("GET", "/spend/export?" + q, server=srv, key=key, timeout=300)
    rows = list(csv.reader(io.StringIO(r.body.decode("utf-8"), newline=""))) \
        if r.status == 200 else []
    return r, rows


def ledger(env, column, start, end):
    """{id: (requests, spend)} of rows and archived days of [start, end]."""
    out = {}
    for ident, n, spend in env.sql(
            "SELECT COALESCE(%s, ''), COUNT(*), SUM(spend) FROM spend_logs WHERE start_time >= '%s'"
            " AND start_time < '%s' + INTERVAL 1 DAY GROUP BY 1" % (column, start, end)):
        out[ident] = (int(n), dec(spend))
    for ident, n, spend in env.sql(
            "SELECT %s, SUM(requests), SUM(spend) FROM spend_archive WHERE day >= '%s'"
            " AND day <= '%s' GROUP BY 1" % (column, start, end)):
        a = out.get(ident, (0, Decimal(0)))
        out[ident] = (a[0] + int(n), a[1] + dec(spend))
    return out


def month_start(offset):
    now = time.gmtime()
    n = now.tm_year * 12 + now.tm_mon - 1 + offset
    return "%04d-%02d-01" % (n // 12, n % 12 + 1)


def main(t, env):
    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=2)
    this, last = month_start(0), month_start(-1)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    usage = {"usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    vkey = (env.request("POST", "/key/generate", body={"key_alias": "ex-key"},
                        server=srv).json or {}).get("key")
    statuses = []
    for i, user in enumerate(["ex-a", "ex-b", ODD, FORMULA, None, "ex-a", "ex-old", None]):
        statuses.append(env.chat(user=user, fake=usage, server=srv,
                                 key=vkey if i % 3 == 1 else H.MASTER_KEY).status)
    t.is_eq(statuses, [200] * 8, "the calls answered")
    # ex-old's call, and one of ex-a's, belong to last month, archived.
    env.sql("UPDATE spend_logs SET start_time = '%s 10:00:00' WHERE end_user = 'ex-old'"
            " OR request_id = (SELECT r FROM (SELECT MIN(request_id) r FROM spend_logs"
            " WHERE end_user = 'ex-a') x)" % last)
    r = subprocess.run([os.path.join(H.BUILDDIR, "tools", "tollgate-archive"), "--config", cfg,
                          "--before", this[:7]], env=dict(os.environ, DATABASE_URL=env.db.url),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t.like(r.stdout.decode(), r"archived 2 rows", "two rows archived")

    # 1. By customer, both months.
    r, rows = export(env, srv, last, today)
    t.is_eq((r.status, r.header("content-type"), r.header("content-length")),
            (200, "text/csv; charset=utf-8", None), "export: 200 CSV, streamed")
    t.like(r.header("content-disposition") or "",
           r'^attachment; filename="tollgate-spend-by-customer-%s-%s\.csv"$' % (last, today),
           "export: a file name with the period")
    t.is_eq(rows[:1], [["customer_id", "alias", "requests", "successful_requests",
                        "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd"]],
            "export: the header")
    body = rows[1:]
    t.is_eq(body[:1] and body[0][:3], ["", "(no customer)", "2"],
            "export: the calls of no customer first, named so")
    want = ledger(env, "end_user", last, today)
    got = {row[0]: (int(row[2]), dec(row[7])) for row in body}
    t.is_eq(got.get("'" + FORMULA), want.get(FORMULA),
            "export: an id a spreadsheet would run gets a ' first")
    got[FORMULA] = got.pop("'" + FORMULA, None)
    t.is_eq(got, want, "export: every customer's calls and spend == its ledger, to the last digit")
    t.ok(ODD in got, "export: an id with a comma, a quote and a line feed comes back whole")
    total = sum((dec(row[7]) for row in body), Decimal(0))
    t.is_eq(total, sum((v[1] for v in want.values()), Decimal(0)),
            "export: the spend column adds up to the ledger's (%s)" % total)
    t.is_eq(dict((row[0], row[1]) for row in body).get("ex-a"), "", "export: ex-a has no alias")
    r, rows = export(env, srv, this, today)
    t.is_eq({row[0] for row in rows[1:]} & {"ex-old"}, set(),
            "export of this month alone: ex-old's archived call is not in it")

    # ... and by key.
    r, rows = export(env, srv, last, today, by="key")
    t.is_eq(rows[:1] and rows[0][:2], ["key_token", "key_alias"], "by key: the header")
    want = ledger(env, "api_key", last, today)
    got = {row[0]: (int(row[2]), dec(row[7])) for row in rows[1:]}
    t.is_eq(got, want, "by key: every key's calls and spend == its ledger")
    token = env.sql("SELECT token FROM api_keys WHERE key_alias = 'ex-key'")[0][0]
    t.is_eq(dict((row[0], row[1]) for row in rows[1:]).get(token), "ex-key",
            "by key: the key's alias")

    # 2. Pages of both sources, merged.
    env.sql("INSERT INTO spend_logs (request_id, end_user, model, call_type, status, spend,"
            " prompt_tokens, completion_tokens, total_tokens, start_time, end_time)"
            " SELECT CONCAT('ex-bulk-', seq), CONCAT('bulk-', LPAD(seq, 5, '0')), 'fake-gpt',"
            " 'acompletion', 'success', seq / 1000000, 1, 1, 2, '%s 01:00:00', '%s 01:00:01'"
            " FROM seq_1_to_12000" % (this, this))
    env.sql("INSERT INTO spend_archive (day, end_user, api_key, model, call_type, spend,"
            " prompt_tokens, completion_tokens, total_tokens, requests, successful_requests)"
            " SELECT '%s', CONCAT('bulk-', LPAD(seq, 5, '0')), '', 'fake-gpt', 'acompletion',"
            " 0.0000001 * seq, 2, 2, 4, 3, 3 FROM seq_9001_to_16000" % last)
    t0 = time.monotonic()
    r, rows = export(env, srv, last, today)
    t.diag("export of %d customers: %d KiB in %.2f s"
           % (len(rows) - 1, len(r.body) // 1024, time.monotonic() - t0))
    want = ledger(env, "end_user", last, today)
    ids = [row[0] for row in rows[1:]]
    t.is_eq(len(ids), len(set(ids)), "pages: every account once")
    got = {row[0]: (int(row[2]), dec(row[7])) for row in rows[1:]}
    got[FORMULA] = got.pop("'" + FORMULA, None)
    t.is_eq(got, want, "pages: 16,000 bulk customers and the others == the ledger")
    t.is_eq(got.get("bulk-09500"), (4, Decimal("0.0095") + Decimal("0.00095")),
            "pages: a customer of both sources has both")
    t.is_eq(ids[1:] == sorted(ids[1:], key=lambda s: s.encode()), True,
            "pages: in the order of the ids' bytes")

    # 3. Errors.
    for q, param in (("end_date=%s" % today, "start_date"), ("start_date=%s" % today, "end_date"),
                     ("start_date=%s&end_date=%s" % (today, last), "end_date"),
                     ("start_date=%s&end_date=%s&group_by=model" % (last, today), "group_by")):
        r = env.request("GET", "/spend/export?" + q, server=srv)
        env.check_error(r, 422, "invalid_request_error", param=param, what="export ?%s" % q)
    r = env.request("GET", "/spend/export?start_date=%s&end_date=%s" % (last, today),
                    server=srv, key=vkey)
    t.is_eq(r.status, 403, "export with a virtual key: 403")


if __name__ == "__main__":
    H.run(main)
