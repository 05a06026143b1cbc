#!/usr/bin/env python3
"""leases: a busy account's calls admitted against a lease of its budget
(tollgate_settings.budget_leases; SPEC 4.6, lib/lease.h).

1. A hot customer, one worker: after the calls that make it busy, a lease
   (a reservations row that is no call's) holds a slice of its budget and
   the calls need no database transaction of their own: the commits for N
   calls are far fewer than N.  Once the customer is quiet the lease is
   returned: no row, nothing reserved, spend == the ledger's sum, one row
   per call, each charged its price.
2. Never past the budget, across processes: four workers and eight clients
   on one customer whose budget fits a few dozen calls' worst case, until
   refused; then, quiet, calls one by one until refused again: spend <=
   max_budget, and at that refusal less than one call's worst case is left
   (no budget stranded in a lease), books equal.
3. The lease of a key and a customer together, and a key alone: charged to
   both, returned from both.
4. SIGKILL of a worker with a call in flight against its lease: another
   worker moves its journal, the call in flight is charged as unsettled
   (at its worst case), the lease is returned, books equal, nothing held.
5. Leases off (the default): no lease row while a customer is busy.
6. A dead process's journal written by hand, read by another process: a
   lease it held ("L", not returned) is given back; a call it admitted
   against the lease and never settled ("A") is charged as unsettled at its
   share; one answered by an "X" (made a hold of its own already) is not
   charged again; a returned lease ("R") is left alone; the file goes.
"""

import json
import os
import signal
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

USAGE = {"usage": {"prompt_tokens": 10, "completion_tokens": 20}}
PRICE = cost(10, 20)


def settings(**kw):
    s = {"budget_leases": True, "reclaim_interval": 1, "lease_idle_ms": 300}
    s.update(kw)
    return {"tollgate_settings": s}


def commits(env):
    return int(env.sql("SHOW GLOBAL STATUS LIKE 'Com_commit'")[0][1])


def lease_rows(env, user, calls):
    """The user's reservations rows that are none of calls' (the answers of
    the user's calls so far): its leases.  A call's own hold may still be
    there, its settlement waiting for its batch."""
    ids = {r.header("x-litellm-call-id") for r in calls}
    return [row for row in env.sql("SELECT request_id, amount FROM reservations "
                                   "WHERE user_id = %s" % H.sql_quote(user))
            if row[0] not in ids]


def held(env, user):
    return int(env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s"
                       % H.sql_quote(user))[0][0])


def journal_records(srv):
    n = 0
    for root, _d, files in os.walk(srv.extra_env["TOLLGATE_SPOOL_DIR"]):
        for f in files:
            if f.startswith("journal."):
                try:
                    with open(os.path.join(root, f)) as fh:
                        n += sum(1 for ln in fh if ln.startswith("S "))
                except FileNotFoundError:
                    pass
    return n


def quiet(env, srv, users, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if journal_records(srv) == 0 and all(held(env, u) == 0 for u in users):
            return True
        time.sleep(0.1)
    return False


def books(t, env, user, label, calls=None):
    row = env.customer_row(user) or {}
    rows = env.ledger_rows(user)
    if calls is not None:
        t.is_eq(len(rows), calls, "%s: one row per call" % label)
    t.is_eq(len({r["request_id"] for r in rows}), len(rows), "%s: no request id twice" % label)
    t.is_eq(row.get("spend"), env.ledger_sum(user), "%s: spend == the ledger's sum" % label)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing reserved" % label)
    t.is_eq(held(env, user), 0, "%s: no hold or lease row left" % label)


def hot(t, env):
    srv = env.start_lighttpd(env.write_config("hot", env.config(extra=settings(
        lease_idle_ms=2000))), name="hot", max_procs=1)
    user = "ls-hot"
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=10).status, 200, "a customer")
    calls = [env.chat(user=user, fake=USAGE, server=srv) for _ in range(3)]
    leases = lease_rows(env, user, calls)
    t.is_eq(len(leases), 1, "a busy customer: one lease row", repr(leases))
    n = 50
    c0 = commits(env)
    got = [env.chat(user=user, fake=USAGE, server=srv).status for _ in range(n)]
    t.is_eq(got, [200] * n, "%d calls answered" % n)
    c1 = commits(env)
    t.diag("%d calls against the lease: %d commits (%.2f per call)"
           % (n, c1 - c0, (c1 - c0) / n))
    t.ok(c1 - c0 <= n // 3, "far fewer commits than calls (%d for %d)" % (c1 - c0, n))
    t.ok(quiet(env, srv, [user]), "quiet: the lease is returned and every batch landed")
    books(t, env, user, "hot", calls=n + 3)
    t.is_eq(env.customer_row(user)["spend"], (n + 3) * PRICE, "each call charged its price")
    return srv


def budget(t, env):
    srv = env.start_lighttpd(env.write_config("budget", env.config(extra=settings())),
                             name="budget", max_procs=4)
    user = "ls-budget"
    # A call bounded by max_tokens costs close to its worst case; that
    # worst case is what a hold of one takes, read while it is in flight.
    bounded = {"max_tokens": 20}
    probe = threading.Thread(target=lambda: env.chat(
        user="ls-probe", fake=dict(USAGE, delay=1.5), extra=bounded, server=srv))
    probe.start()
    time.sleep(0.7)
    est = dec(env.sql("SELECT COALESCE(MAX(amount), 0) FROM reservations "
                      "WHERE user_id = 'ls-probe'")[0][0])
    probe.join(10)
    t.ok(est > 0, "a bounded call's worst case: %s" % est)
    if not est:
        return srv
    maxb = (est * 40 + est / 3).quantize(Decimal("0.0000000001"))
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=float(maxb)).status, 200,
            "a customer whose budget fits 40 calls' worst case")
    stop = threading.Event()
    codes = []
    lock = threading.Lock()

    def client():
        for _ in range(500):
            if stop.is_set():
                return
            r = env.chat(user=user, fake=USAGE, extra=bounded, server=srv)
            with lock:
                codes.append(r.status)
            if r.status == 429:
                return

    th = [threading.Thread(target=client) for _ in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join(60)
    stop.set()
    t.ok(set(codes) <= {200, 429}, "answers 200 or 429 only", repr(sorted(set(codes))))
    t.ok(quiet(env, srv, [user]), "quiet: the leases returned, the batches landed")
    row = env.customer_row(user)
    t.ok(row["spend"] <= maxb, "spend %s <= max_budget %s" % (row["spend"], maxb))
    seq = 0
    while seq < 100:
        r = env.chat(user=user, fake=USAGE, extra=bounded, server=srv)
        if r.status != 200:
            break
        seq += 1
    t.is_eq(r.status, 429, "then refused one by one")
    quiet(env, srv, [user])
    row = env.customer_row(user)
    left = maxb - row["spend"]
    t.ok(Decimal(0) <= left < est,
         "at the refusal less than one call's worst case was left (%s < %s): nothing "
         "stranded in a lease" % (left, est))
    ok = codes.count(200) + seq
    t.diag("%d calls admitted (%d under load, %d one by one), spend %s of %s"
           % (ok, codes.count(200), seq, row["spend"], maxb))
    books(t, env, user, "budget", calls=ok)
    return srv


def with_key(t, env, srv):
    r = env.request("POST", "/key/generate", server=srv, body={"max_budget": 5})
    t.is_eq(r.status, 200, "a virtual key", r.text[:200])
    if r.status != 200:
        return
    key = r.json["key"]
    token = env.sql("SELECT token FROM api_keys ORDER BY created_at DESC LIMIT 1")[0][0]
    user = "ls-keyed"
    for _ in range(12):
        env.chat(user=user, fake=USAGE, server=srv, key=key)
    leases = env.sql("SELECT request_id FROM reservations WHERE key_token = %s"
                     % H.sql_quote(token))
    t.ok(len(leases) >= 1, "a lease of the key and the customer", repr(leases))
    for _ in range(12):
        env.chat(fake=USAGE, server=srv, key=key)
    t.ok(quiet(env, srv, [user, ""]), "returned")
    k = env.sql("SELECT spend, reserved FROM api_keys WHERE token = %s" % H.sql_quote(token))[0]
    keyrows = env.sql("SELECT COALESCE(SUM(spend), 0), COUNT(*) FROM spend_logs WHERE api_key = %s"
                      % H.sql_quote(token))[0]
    t.is_eq(dec(k[0]), dec(keyrows[0]), "the key's spend == its ledger rows' sum")
    t.is_eq(int(keyrows[1]), 24, "24 rows for the key")
    t.is_eq(dec(k[1]), Decimal(0), "nothing reserved on the key")
    books(t, env, user, "key and customer", calls=12)


def killed(t, env, stream):
    """The slow call a stream: its process moves its journal before it goes
    upstream (spool_batch_ms long, so there is something to move), and the
    call's record must outlive that."""
    name = "kill-stream" if stream else "kill"
    srv = env.start_lighttpd(env.write_config(name, env.config(extra=settings(
        lease_idle_ms=600000, lease_seconds=600,
        spool_batch_ms=600000 if stream else 20))), name=name, max_procs=2)
    srv.expect_child_deaths = True
    user = "ls-" + name
    calls = [env.chat(user=user, fake=USAGE, server=srv) for _ in range(4)]
    t.ok(len(lease_rows(env, user, calls)) >= 1, "a lease")
    result = {}

    def slow():
        if stream:
            result["r"] = env.stream_chat(user=user, fake=dict(USAGE, delay=3), server=srv)
        else:
            result["r"] = env.chat(user=user, fake=dict(USAGE, delay=3), server=srv)

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(1.0)
    pids = srv.program_pids("chat_completions")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    th.join(30)
    t.diag("%s: SIGKILL of %d chat workers during a call; it got %s"
           % (name, len(pids), getattr(result.get("r"), "status", None)))
    end = time.time() + 30
    calls = 4
    while time.time() < end and (held(env, user) > 0 or journal_records(srv) > 0):
        env.chat(user=user + "-other", fake=USAGE, server=srv)
        time.sleep(0.3)
    rows = env.ledger_rows(user)
    unsettled = [r for r in rows if r["status"] == "unsettled"]
    t.is_eq(len(unsettled), 1, "%s: the call in flight is charged as unsettled" % name,
            repr(unsettled))
    t.ok(unsettled and unsettled[0]["spend"] > PRICE, "%s: at its worst case" % name)
    t.is_eq(len([r for r in rows if r["status"] == "success"]), calls,
            "%s: the others settled" % name)
    books(t, env, user, name)
    srv.stop()


def off(t, env):
    srv = env.start_lighttpd(env.write_config("off", env.config(
        extra={"tollgate_settings": {"spool_settlements": True}})), name="off", max_procs=1)
    user = "ls-off"
    calls = [env.chat(user=user, fake=USAGE, server=srv) for _ in range(5)]
    t.is_eq(lease_rows(env, user, calls), [], "no lease without budget_leases")
    srv.stop()


def by_hand(t, env):
    srv = env.start_lighttpd(env.write_config("hand", env.config(extra=settings())),
                             name="hand", max_procs=1)
    user = "ls-hand"
    t.is_eq(env.customer_new(server=srv, user_id=user, max_budget=1).status, 200, "a customer")
    env.chat(user=user, fake=USAGE, server=srv)  # the server's spool directory
    quiet(env, srv, [user])
    spool = None
    for root, _d, _f in os.walk(srv.extra_env["TOLLGATE_SPOOL_DIR"]):
        if os.path.basename(root).startswith("db-"):
            spool = root
    lease, gone = str(uuid.uuid4()), str(uuid.uuid4())
    a1, a2 = str(uuid.uuid4()), str(uuid.uuid4())
    share = Decimal("0.001")
    # The lease as a process would have taken it: a row, and reserved.
    env.sql("INSERT INTO reservations (request_id, user_id, amount, expires_at, created_at, "
            "model) VALUES (%s, %s, 0.01, UTC_TIMESTAMP(6) + INTERVAL 600 SECOND, "
            "UTC_TIMESTAMP(6), 'fake-gpt')" % (H.sql_quote(lease), H.sql_quote(user)))
    env.sql("UPDATE customers SET reserved = reserved + 0.01 WHERE user_id = %s"
            % H.sql_quote(user))
    now = int(time.time() * 1e6)

    def adm(rid):
        return "A " + json.dumps({"request_id": rid, "lease_id": lease,
                                  "amount": int(share * 10**10), "user_id": user,
                                  "key_token": "", "model": "fake-gpt", "start_us": now})
    lines = ["L " + json.dumps({"lease_id": gone}), "R " + json.dumps({"lease_id": gone}),
             "L " + json.dumps({"lease_id": lease}), adm(a1), adm(a2),
             "X " + json.dumps({"request_id": a2})]
    path = os.path.join(spool, "journal.999999998.1")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    end = time.time() + 15
    while time.time() < end and (os.path.exists(path) or held(env, user) > 0):
        env.chat(user="ls-hand-trigger", fake=USAGE, server=srv)
        time.sleep(0.3)
    t.ok(not os.path.exists(path), "the dead process's journal was read and removed")
    rows = {r["request_id"]: r for r in env.ledger_rows(user)}
    t.ok(a1 in rows and rows[a1]["status"] == "unsettled" and rows[a1]["spend"] == share,
         "the call it admitted and never settled: unsettled at its share", repr(rows.get(a1)))
    t.ok(a2 not in rows, "the call answered by an X record: not charged again")
    t.is_eq(env.sql("SELECT COUNT(*) FROM reservations WHERE request_id = %s"
                    % H.sql_quote(lease))[0][0], "0", "its lease was given back")
    books(t, env, user, "by hand")
    srv.stop()


def main(t, env):
    srv = hot(t, env)
    with_key(t, env, srv)
    budget(t, env)
    killed(t, env, False)
    killed(t, env, True)
    by_hand(t, env)
    off(t, env)


H.run(main)
