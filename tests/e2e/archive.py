#!/usr/bin/env python3
"""archive: tollgate-archive moves the ledger rows of closed months into
daily summaries under load, and the books and the reports do not change
(sql/012; docs/OPERATING.md "How the data grows").

1. 360 calls of four customers (one with a budget), a key and two tags
   (one of them an account) are made, then moved back into the three
   months before this one, a few of them onto the last microsecond of last
   month and the first of this one.
2. While four threads keep calling for the same customers, key and tag,
   `tollgate-archive --before <this month> --batch 40 --export DIR` moves
   them: no call fails; no row of an earlier month is left and none of this
   month moved; archived_months counts them; the export holds exactly the
   rows that moved, their spend to the last digit.
3. /customer/daily/activity (every customer, and one), and /spend/logs
   ?summarize=true over the archived months answer as before, to the last
   digit; the customers', the key's and the tag's spend still equal their
   ledger (rows + summaries); nothing is reserved.
4. A second run has nothing to move; --before a month not over, or not a
   month, is refused (2); --dry-run says what would move.
5. A settlement replayed from a spool after its row was archived (its
   first replay went through) charges nothing again: the procedure and
   the statements each see a hold that is gone and no row.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

ARCHIVE = os.path.join(H.BUILDDIR, "tools", "tollgate-archive")
USERS = ["ar-a", "ar-b", "ar-c", "ar-budget"]
HOLD_TIMEOUT = 3


def month_of(offset):
    """(year, month) of this UTC month plus offset months."""
    now = time.gmtime()
    n = now.tm_year * 12 + now.tm_mon - 1 + offset
    return n // 12, n % 12 + 1


def month_name(offset):
    return "%04d-%02d" % month_of(offset)


def settings(env):
    return {"hold_grace": 1, "reclaim_interval": 1,
            "spool_dir": os.path.join(env.tmp, "spool")}


def run_archive(env, cfg, *args):
    r = subprocess.run([ARCHIVE, "--config", cfg] + list(args),
                       env=dict(os.environ, DATABASE_URL=env.db.url),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def reports(env, srv, start, end):
    """What the reports say of [start, end]."""
    def get(path, **q):
        r = env.request("GET", path + "?" + urllib.parse.urlencode(q), server=srv)
        return r.status, r.json
    out = {
        "activity": get("/customer/daily/activity", start_date=start, end_date=end,
                        page_size=1000),
        "activity_a": get("/customer/daily/activity", start_date=start, end_date=end,
                          end_user_ids="ar-a,ar-budget", page_size=1000),
        "summary": get("/spend/logs", start_date=start, end_date=end, summarize="true"),
        "summary_b": get("/spend/logs", start_date=start, end_date=end, summarize="true",
                         end_user="ar-b"),
    }
    return out


def books(t, env, key_token, label):
    for u in USERS:
        row = env.customer_row(u) or {}
        t.is_eq(row.get("spend"), env.ledger_sum(u),
                "%s: %s spend == its rows + its summaries" % (label, u))
        t.is_eq(row.get("reserved"), Decimal(0), "%s: %s has nothing reserved" % (label, u))
    k = env.sql("SELECT spend, reserved FROM api_keys WHERE token = '%s'" % key_token)[0]
    rows = env.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE api_key = '%s'"
                   % key_token)[0][0]
    arch = env.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_archive WHERE api_key = '%s'"
                   % key_token)[0][0]
    t.is_eq(dec(k[0]), dec(rows) + dec(arch), "%s: the key's spend == its rows + summaries"
            % label)
    tg = env.sql("SELECT spend, reserved FROM tags WHERE tag_name = 'ar-team'")[0]
    rows = env.sql("SELECT COALESCE(SUM(l.spend), 0) FROM spend_log_tags t JOIN spend_logs l "
                   "ON l.request_id = t.request_id WHERE t.tag = 'ar-team'")[0][0]
    arch = env.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_archive_tags "
                   "WHERE tag = 'ar-team'")[0][0]
    t.is_eq(dec(tg[0]), dec(rows) + dec(arch), "%s: the tag's spend == its rows + summaries"
            % label)
    t.is_eq(dec(k[1]) + dec(tg[1]), Decimal(0), "%s: key and tag have nothing reserved" % label)


def main(t, env):
    cfg_dict = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT),
                                  env.model("fake-gpt-2")],
                          extra={"tollgate_settings": settings(env)})
    cfg = env.write_config("main", cfg_dict)
    srv = env.start_lighttpd(cfg, max_procs=4)

    r = env.customer_new(user_id="ar-budget", max_budget="5", server=srv)
    t.is_eq(r.status, 200, "setup: a customer with a budget")
    r = env.request("POST", "/tag/new", body={"name": "ar-team", "max_budget": 50}, server=srv)
    t.is_eq(r.status, 200, "setup: a tag with a budget", r.text[:200])
    r = env.request("POST", "/key/generate", body={"key_alias": "ar-key"}, server=srv)
    t.is_eq(r.status, 200, "setup: a key")
    key = (r.json or {}).get("key")
    key_token = env.sql("SELECT token FROM api_keys WHERE key_alias = 'ar-key'")[0][0]

    # 1. The old months' calls, made now and moved back.
    def call(i, user=None):
        extra = {"metadata": {"tags": ["ar-team"] if i % 3 else ["ar-team", "ar-free"]}} \
            if i % 2 else None
        return env.chat(user=user or USERS[i % 4], model="fake-gpt" if i % 5 else "fake-gpt-2",
                        extra=extra, key=key if i % 4 == 1 else H.MASTER_KEY, server=srv,
                        fake={"usage": {"prompt_tokens": 7 + i % 13,
                                        "completion_tokens": 3 + i % 17}})
    statuses = H.parallel(4, [lambda i=i: call(i).status for i in range(360)])
    t.is_eq(sorted(set(statuses)), [200], "old calls: every one answered 200")
    n_old = int(env.sql("SELECT COUNT(*) FROM spend_logs")[0][0])
    t.is_eq(n_old, 360, "old calls: 360 rows")
    # Spread over the three months before this one (the 1st to the 28th).
    for table in ("spend_logs", "spend_log_tags"):
        env.sql("UPDATE %s SET start_time = TIMESTAMP(DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL "
                "(CRC32(request_id) %% 3 + 1) MONTH, '%%Y-%%m-01') + INTERVAL "
                "(CRC32(request_id) %% 28) DAY + INTERVAL (CRC32(request_id) %% 86400) SECOND)"
                % table)
    env.sql("UPDATE spend_logs SET end_time = start_time + INTERVAL 1 SECOND")
    # Two on the boundary: the last microsecond of last month moves, the
    # first of this one stays.
    y, m = month_of(0)
    edge = env.sql("SELECT request_id FROM spend_logs ORDER BY request_id LIMIT 2")
    for (rid,), at in zip(edge, ["TIMESTAMP('%04d-%02d-01') - INTERVAL 1 MICROSECOND" % (y, m),
                                 "TIMESTAMP('%04d-%02d-01')" % (y, m)]):
        for table in ("spend_logs", "spend_log_tags"):
            env.sql("UPDATE %s SET start_time = %s WHERE request_id = '%s'" % (table, at, rid))
    kept_edge = edge[1][0]
    first_day = "%04d-%02d-01" % month_of(-3)
    last_day = env.sql("SELECT DATE(TIMESTAMP('%04d-%02d-01') - INTERVAL 1 DAY)" % (y, m))[0][0]
    old = env.sql("SELECT COUNT(*), SUM(spend) FROM spend_logs WHERE start_time < '%04d-%02d-01'"
                  % (y, m))[0]
    n_move, spend_move = int(old[0]), dec(old[1])
    t.is_eq(n_move, 359, "old calls: 359 rows before this month")
    old_ids = {r[0] for r in env.sql("SELECT request_id FROM spend_logs WHERE start_time < "
                                     "'%04d-%02d-01'" % (y, m))}
    tag_before = env.sql("SELECT t.tag, SUM(l.spend), COUNT(*) FROM spend_log_tags t JOIN "
                         "spend_logs l ON l.request_id = t.request_id WHERE l.start_time < "
                         "'%04d-%02d-01' GROUP BY t.tag ORDER BY t.tag" % (y, m))
    before = reports(env, srv, first_day, last_day)
    for k, (status, body) in before.items():
        t.is_eq(status, 200, "before: %s answers 200" % k, str(body)[:300])
    t.cmp_ok(len((before["activity"][1] or {}).get("results", [])), ">", 60,
             "before: activity on more than 60 days")
    books(t, env, key_token, "before")

    # 2. Archive under load.
    stop = threading.Event()
    load = []

    def loader(w):
        i = 0
        while not stop.is_set():
            load.append(call(1000 * w + i).status)
            i += 1
    threads = [threading.Thread(target=loader, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    export = os.path.join(env.tmp, "export")
    os.makedirs(export)
    started = time.monotonic()
    rc, out, err = run_archive(env, cfg, "--before", month_name(0), "--batch", "40",
                               "--pause", "5", "--export", export)
    took = time.monotonic() - started
    time.sleep(0.5)
    stop.set()
    for th in threads:
        th.join(60)
    t.is_eq(rc, 0, "archive: exit status 0", out, err)
    t.diag("archive: %d rows in %.2f s beside %d calls; said: %s"
           % (n_move, took, len(load), out.strip().replace("\n", " | ")))
    t.cmp_ok(len(load), ">", 20, "load: calls ran during the archive")
    t.is_eq(sorted(set(load)), [200], "load: every call answered 200")
    said = re.search(r"archived (\d+) rows before (\S+), spend (\S+), in ", out)
    t.is_eq(said and (int(said.group(1)), said.group(2), dec(said.group(3))),
            (n_move, month_name(0), spend_move), "archive: says how many rows and what spend moved")
    for off in (-3, -2, -1):
        t.like(out, r"(?m)^%s: \d+ rows moved, spend " % month_name(off),
               "archive: a line for %s" % month_name(off))
    left = env.sql("SELECT COUNT(*) FROM spend_logs WHERE start_time < '%04d-%02d-01'" % (y, m))
    t.is_eq(left[0][0], "0", "archive: no row of an earlier month left")
    t.is_eq(env.sql("SELECT COUNT(*) FROM spend_logs WHERE request_id = '%s'" % kept_edge)[0][0],
            "1", "archive: the row of this month's first microsecond stayed")
    t.is_eq(env.sql("SELECT COUNT(*) FROM spend_log_tags WHERE start_time < '%04d-%02d-01'"
                    % (y, m))[0][0], "0", "archive: their tag index rows went with them")
    am = env.sql("SELECT SUM(rows_archived), SUM(spend), COUNT(*) FROM archived_months")[0]
    t.is_eq((int(am[0]), dec(am[1]), int(am[2])), (n_move, spend_move, 3),
            "archive: archived_months counts the rows and spend of three months")
    arch = env.sql("SELECT SUM(requests), SUM(spend) FROM spend_archive")[0]
    t.is_eq((int(arch[0]), dec(arch[1])), (n_move, spend_move),
            "archive: the summaries hold every call and its spend")
    tag_after = env.sql("SELECT tag, SUM(spend), SUM(requests) FROM spend_archive_tags "
                        "GROUP BY tag ORDER BY tag")
    t.is_eq([(a, dec(b), int(c)) for a, b, c in tag_after],
            [(a, dec(b), int(c)) for a, b, c in tag_before],
            "archive: the tag summaries hold each tag's calls and spend")
    files = os.listdir(export)
    t.is_eq(len(files), 1, "export: one file", files)
    path = os.path.join(export, files[0]) if files else "/dev/null"
    t.like(os.path.basename(path), r"^spend_logs-%s-\d{8}T\d{6}Z\.jsonl$" % month_name(-3),
           "export: named by its first month and the run's time")
    t.is_eq(oct(os.stat(path).st_mode & 0o777), "0o600", "export: readable by its owner only")
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    t.is_eq({r["request_id"] for r in rows}, old_ids, "export: exactly the rows that moved")
    t.is_eq(len(rows), n_move, "export: each once")
    t.is_eq(sum((dec(r["spend"]) for r in rows), Decimal(0)), spend_move,
            "export: their spend to the last digit")
    t.ok(all(isinstance(r["metadata"], dict) and isinstance(r["prompt_tokens"], int)
             for r in rows), "export: metadata as JSON, tokens as numbers")

    # 3. The reports and the books.
    after = reports(env, srv, first_day, last_day)
    for k in before:
        t.is_eq(after[k], before[k], "after: %s answers as before" % k)
    days = (after["summary"][1] or [])
    t.is_eq(sum((dec(d["spend"]) for d in days), Decimal(0)), spend_move,
            "after: the summary's days add up to the spend that moved")
    books(t, env, key_token, "after")

    # 4. Again, and refusals.
    rc, out, _ = run_archive(env, cfg, "--before", month_name(0))
    t.is_eq((rc, out.strip()), (0, "nothing to archive before %s" % month_name(0)),
            "again: nothing to move")
    rc, _, err = run_archive(env, cfg, "--before", month_name(1))
    t.is_eq(rc, 2, "a month not over: refused")
    t.like(err, r"only months that are over move", "... and says why")
    for bad in ("2026-13", "2026-1", "x"):
        rc, _, _ = run_archive(env, cfg, "--before", bad)
        t.is_eq(rc, 2, "--before %s: refused" % bad)
    for opt, bad in (("--batch", "0"), ("--batch", "10001"), ("--pause", "-1"),
                     ("--pause", "5x"), ("--format", "xml")):
        rc, _, err = run_archive(env, cfg, "--before", month_name(0), opt, bad)
        t.is_eq(rc, 2, "%s %s: refused" % (opt, bad), err)
    rc, out, _ = run_archive(env, cfg, "--before", month_name(1), "--dry-run")
    t.is_eq(rc, 2, "--dry-run does not lift the refusal")

    # A schema before sql/012.
    env.sql("CREATE DATABASE tollgate_old")
    old_sql = os.path.join(env.tmp, "sql-011")
    os.makedirs(old_sql)
    for f in os.listdir(H.SQL_DIR):
        if f.endswith(".sql") and f < "012":
            shutil.copy(os.path.join(H.SQL_DIR, f), old_sql)
    old_url = env.db.url.replace("/tollgate?", "/tollgate_old?")
    env.migrate(sql_dir=old_sql, database_url=old_url)
    r = subprocess.run([ARCHIVE, "--config", cfg, "--before", month_name(0)],
                       env=dict(os.environ, DATABASE_URL=old_url),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    t.is_eq(r.returncode, 1, "schema 11: fails")
    t.like(r.stderr.decode(), r"run tollgate-migrate \(sql/012\) first", "... and says what to do")

    # 5. A replayed settlement of an archived row.
    spool_replay_after_archive(t, env, srv, cfg)


def spool_replay_after_archive(t, env, srv, cfg):
    user = "ar-late"
    spool = settings(env)["spool_dir"]
    aside = os.path.join(env.tmp, "spool-copy")
    os.makedirs(aside, exist_ok=True)
    env.customer_new(user_id=user, max_budget="1", server=srv)
    body = env.chat_body(user=user, fake={"delay": 1.5, "usage": {"prompt_tokens": 9,
                                                                  "completion_tokens": 9}})
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=body, server=srv, timeout=30)))
    th.start()
    H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                           for q in env.upstream.requests()), timeout=10)
    env.db.stop()  # the answer arrives while the database is down
    th.join(30)
    t.is_eq(out.get("r") and out["r"].status, 200, "late: answered with the database down")
    files = H.spool_files(spool)
    t.is_eq(len(files), 1, "late: one settlement spooled")
    for f in files:  # a copy, as a process that died after its commit leaves it
        shutil.copy(f, os.path.join(aside, os.path.basename(f)))
    env.db.start()

    def settled():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return not H.spool_files(spool) and env.ledger_rows(user)
    rows = H.wait_for(settled, timeout=15, interval=0.3)
    t.is_eq([x["status"] for x in rows or []], ["success"], "late: the replay settled it")
    spend = (env.customer_row(user) or {}).get("spend")
    rid = rows[0]["request_id"] if rows else ""
    y, m = month_of(-1)
    env.sql("UPDATE spend_logs SET start_time = '%04d-%02d-15 12:00:00' WHERE request_id = '%s'"
            % (y, m, rid))
    rc, out, err = run_archive(env, cfg, "--before", month_name(0))
    said = re.search(r"archived (\d+) rows before \S+, spend (\S+), in ", out)
    t.is_eq((rc, said and (int(said.group(1)), dec(said.group(2)))), (0, (1, spend)),
            "late: its row archived", out, err)
    for f in files:
        shutil.copy(os.path.join(aside, os.path.basename(f)), f)

    def replayed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return not H.spool_files(spool)
    t.ok(H.wait_for(replayed, timeout=15, interval=0.3), "late: the copy was replayed")
    row = env.customer_row(user) or {}
    t.is_eq(row.get("spend"), spend, "late: the replay charged nothing again")
    t.is_eq(env.ledger_rows(user), [], "late: and wrote no row")
    t.is_eq(env.ledger_sum(user), spend, "late: spend == its summary")
    t.is_eq(row.get("reserved"), Decimal(0), "late: nothing reserved")


if __name__ == "__main__":
    H.run(main)
