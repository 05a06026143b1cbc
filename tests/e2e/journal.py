#!/usr/bin/env python3
"""journal: settlements through the process's journal, moved in batches
(tollgate_settings.spool_settlements; SPEC 4.6, lib/journal.h).

1. Pending, then landed: with a long spool_batch_ms, calls answered are in
   the journals (fdatasync'd records) and their holds still reserve the
   budget; once the batch is due every call has its row, spend == the
   ledger's sum == what was charged, nothing reserved, no hold row, and the
   journals are empty.
2. Group commit: the commits MariaDB counts for N calls are N for the
   admissions plus a few batches, not 2N.
3. A budget is never passed while settlements wait: admission counts the
   waiting calls' holds, so a customer whose budget fits K calls' worst case
   is refused after K, and spend <= max_budget once they land.  With less
   left than 32 calls' worst case, calls settle before their answers.
4. SIGKILL of every chat worker with settlements in their journals: another
   process moves the dead ones' journals (before their holds could be
   charged as unsettled): every call one row, no unsettled row, books equal.
5. A clean stop moves what waits, and the journal goes.
6. A journal left by a process that is gone, with a last line torn by a
   crash: its whole records are moved, the torn one is not a record, and the
   file goes.
7. Off (the default): calls settle in the database before the answer.
"""

import json
import os
import signal
import sys
import time
import uuid

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

USAGE = {"usage": {"prompt_tokens": 10, "completion_tokens": 20}}
PRICE = cost(10, 20)


def settings(**kw):
    s = {"spool_settlements": True, "reclaim_interval": 1}
    s.update(kw)
    return {"tollgate_settings": s}


def journals(srv):
    """(path, lines) of every journal under the server's spool."""
    base = srv.extra_env["TOLLGATE_SPOOL_DIR"]
    out = []
    for root, _dirs, files in os.walk(base):
        for f in files:
            if f.startswith("journal."):
                p = os.path.join(root, f)
                try:
                    with open(p, "rb") as fh:
                        out.append((p, fh.read().decode("utf-8", "replace").splitlines()))
                except FileNotFoundError:
                    pass
    return out


def waiting(srv):
    return sum(1 for _p, lines in journals(srv) for ln in lines if ln.startswith("S "))


def holds(env, user):
    return int(env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s"
                       % H.sql_quote(user))[0][0])


def landed(env, srv, users, timeout=20):
    """Wait until nothing waits in the journals and no hold of users is left."""
    end = time.time() + timeout
    while time.time() < end:
        if waiting(srv) == 0 and all(holds(env, u) == 0 for u in users):
            return True
        time.sleep(0.1)
    return False


def books(t, env, user, calls, label):
    row = env.customer_row(user) or {}
    rows = env.ledger_rows(user)
    t.is_eq(len(rows), calls, "%s: one row per call" % label)
    t.is_eq(len({r["request_id"] for r in rows}), calls, "%s: no request id twice" % label)
    t.is_eq([r for r in rows if r["status"] == "unsettled"], [], "%s: no unsettled row" % label)
    t.is_eq(row.get("spend"), env.ledger_sum(user), "%s: spend == the ledger's sum" % label)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing reserved" % label)
    t.is_eq(holds(env, user), 0, "%s: no hold row left" % label)


def commits(env):
    return int(env.sql("SHOW GLOBAL STATUS LIKE 'Com_commit'")[0][1])


def pending_then_landed(t, env):
    srv = env.start_lighttpd(env.write_config("slow", env.config(
        extra=settings(spool_batch_ms=3000))), name="slow", max_procs=2)
    user = "jr-pending"
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=1).status, 200,
            "a customer with a budget")
    for i in range(8):
        r = env.chat(user=user, fake=USAGE, server=srv)
        if r.status != 200:
            t.fail("call %d answered %d" % (i, r.status), r.text[:300])
            return srv
    row = env.customer_row(user)
    n = waiting(srv)
    t.ok(n > 0, "answered calls wait in the journals (%d records)" % n)
    t.ok(row["spend"] < 8 * PRICE, "spend does not have them yet (%s)" % row["spend"])
    t.ok(row["reserved"] > 0 and holds(env, user) > 0,
         "their holds still reserve the budget (%s)" % row["reserved"])
    t.ok(landed(env, srv, [user]), "the batch lands when due")
    books(t, env, user, 8, "pending")
    t.is_eq(env.customer_row(user)["spend"], 8 * PRICE, "each call charged its price")
    t.is_eq(dec(env.customer_info(user, server=srv).json.get("spend")), 8 * PRICE,
            "/customer/info says so")
    return srv


def group_commit(t, env, srv):
    user = "jr-commits"
    n = 40
    env.chat(user=user, fake=USAGE, server=srv)
    t.ok(landed(env, srv, [user]), "warm")
    c0 = commits(env)
    for _ in range(n):
        env.chat(user=user, fake=USAGE, server=srv)
    t.ok(landed(env, srv, [user]), "the batches land")
    c1 = commits(env)
    got = c1 - c0
    t.diag("%d calls: %d commits (%.2f per call); direct settlement makes 2 per call"
           % (n, got, got / n))
    t.ok(got <= n + 10, "N admissions plus a few batches: %d commits for %d calls" % (got, n))
    books(t, env, user, n + 1, "group commit")


def budget_kept(t, env, srv):
    user = "jr-budget"
    # fake-gpt's worst case is what a hold takes; learn it from one call.
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=1000).status, 200, "a customer")
    r = env.chat(user=user, fake=USAGE, server=srv)
    est = None
    if r.status == 200:
        rows = env.sql("SELECT amount FROM reservations WHERE user_id = %s" % H.sql_quote(user))
        est = dec(rows[0][0]) if rows else None
    t.ok(est is not None and est > 0, "a call's hold waits with its settlement (%s)" % est)
    if not est:
        return
    landed(env, srv, [user])
    env.sql("UPDATE customers SET spend = 0 WHERE user_id = %s" % H.sql_quote(user))
    env.sql("DELETE FROM spend_logs WHERE end_user = %s" % H.sql_quote(user))
    k = 40
    maxb = (k * est + est / 2).quantize(Decimal("0.0000000001"))
    r = env.request("POST", "/customer/update", server=srv,
                    body={"user_id": user, "max_budget": float(maxb)})
    t.is_eq(r.status, 200, "its budget fits %d calls' worst case" % k, r.text[:200])
    got = [env.chat(user=user, fake=USAGE, server=srv).status for _ in range(k + 2)]
    t.is_eq(got, [200] * k + [429] * 2,
            "admitted while the waiting holds leave room, then refused", repr(got))
    t.ok(landed(env, srv, [user]), "landed")
    row = env.customer_row(user)
    t.ok(row["spend"] <= maxb, "spend %s <= max_budget %s" % (row["spend"], maxb))
    books(t, env, user, k, "budget")
    # Less left than 32 calls' worst case: settled before the answer, so
    # that the holds of calls answered do not keep the last of it.
    user = "jr-near-end"
    maxb = (10 * est).quantize(Decimal("0.0000000001"))
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=float(maxb)).status, 200,
            "a customer near its budget's end")
    for i in range(3):
        r = env.chat(user=user, fake=USAGE, server=srv)
        t.is_eq(r.status, 200, "near the end: call %d" % i)
    t.is_eq(env.customer_row(user)["spend"], 3 * PRICE,
            "near the end: charged before the answers, as without the journal")
    t.is_eq(holds(env, user), 0, "near the end: no hold waits")
    books(t, env, user, 3, "near the end")


def killed(t, env):
    srv = env.start_lighttpd(env.write_config("kill", env.config(
        extra=settings(spool_batch_ms=600000))), name="kill", max_procs=2)
    user = "jr-killed"
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=1).status, 200, "a customer")
    for _ in range(10):
        env.chat(user=user, fake=USAGE, server=srv)
    t.ok(waiting(srv) == 10, "10 settlements wait in the journals (%d)" % waiting(srv))
    srv.expect_child_deaths = True
    pids = srv.program_pids("chat_completions")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    t.diag("SIGKILL of %d chat workers" % len(pids))
    time.sleep(0.5)
    # The next calls start new workers; their periodic work moves the
    # dead processes' journals.
    end = time.time() + 20
    calls = 10
    while time.time() < end:
        if env.chat(user=user, fake=USAGE, server=srv).status == 200:
            calls += 1
        dead = [p for p, _l in journals(srv)
                if not any(str(pid) == os.path.basename(p).split(".")[1]
                           for pid in srv.program_pids("chat_completions"))]
        if not dead:
            break
        time.sleep(0.5)
    t.is_eq(dead, [], "the dead workers' journals were moved and removed")
    srv.stop()
    t.ok(landed(env, srv, [user]), "the rest landed at the stop")
    books(t, env, user, calls, "after SIGKILL")


def clean_stop(t, env):
    srv = env.start_lighttpd(env.write_config("stop", env.config(
        extra=settings(spool_batch_ms=600000))), name="stop", max_procs=1)
    user = "jr-stop"
    for _ in range(5):
        env.chat(user=user, fake=USAGE, server=srv)
    t.is_eq(waiting(srv), 5, "5 settlements wait")
    srv.stop()
    t.is_eq(journals(srv), [], "the stop moved them and removed the journal")
    books(t, env, user, 5, "clean stop")


def torn(t, env, srv):
    user = "jr-torn"
    t.is_eq(env.customer_new(server=srv, user_id=user).status, 200, "a customer")
    spool = None
    for root, _d, _f in os.walk(srv.extra_env["TOLLGATE_SPOOL_DIR"]):
        if os.path.basename(root).startswith("db-"):
            spool = root
    t.ok(spool is not None, "the server's spool directory", srv.extra_env["TOLLGATE_SPOOL_DIR"])
    if spool is None:
        return
    now = int(time.time() * 1e6)
    rid = str(uuid.uuid4())
    rec = {"account": {"user_id": user},
           "entry": {"request_id": rid, "end_user": user, "model": "fake-gpt",
                     "model_id": "fake/fake-gpt", "call_type": "acompletion", "success": True,
                     "spend": str(PRICE), "prompt_tokens": 10, "completion_tokens": 20,
                     "total_tokens": 30, "start_us": now - 1000, "end_us": now}}
    path = os.path.join(spool, "journal.999999999.1")
    with open(path, "w") as f:
        f.write("S " + json.dumps(rec) + "\n")
        f.write('S {"account": {"user_id": "%s"}, "entry": {"request_id": "%s", "sp'
                % (user, uuid.uuid4()))
    end = time.time() + 15
    while time.time() < end and os.path.exists(path):
        env.chat(user="jr-torn-trigger", fake=USAGE, server=srv)
        time.sleep(0.3)
    t.ok(not os.path.exists(path), "the dead process's journal was moved and removed")
    row = env.ledger_row(rid)
    t.ok(row is not None and row["spend"] == PRICE and row["status"] == "success",
         "its whole record is a ledger row", repr(row))
    t.is_eq(len(env.ledger_rows(user)), 1, "the torn line is not a record")
    t.is_eq(env.customer_row(user)["spend"], PRICE, "the customer is charged once")


def off_by_default(t, env):
    srv = env.start_lighttpd(env.write_config("off", env.config()), name="off", max_procs=1)
    user = "jr-off"
    r = env.chat(user=user, fake=USAGE, server=srv)
    t.is_eq(r.status, 200, "a call")
    t.is_eq(journals(srv), [], "no journal without spool_settlements")
    books(t, env, user, 1, "direct")


def main(t, env):
    srv = pending_then_landed(t, env)
    group_commit(t, env, srv)
    budget_kept(t, env, srv)
    torn(t, env, srv)
    killed(t, env)
    clean_stop(t, env)
    off_by_default(t, env)


H.run(main)
