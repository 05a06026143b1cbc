#!/usr/bin/env python3
"""hot_path: what a chat call costs the database, and that the cheap way
keeps the ledger's promise (DESIGN "The ledger", issue 11; sql/007).

Through lighttpd with one chat worker (reclaim_interval long, so that no
periodic work falls among the counted calls):
1. Round trips: MariaDB's Questions per call, over 20 calls made one by one
   once the worker is warm, minus the cost of reading the counter: 2 for a
   customer with a max_budget (CALL tg_admit_v11, CALL tg_settle_v11),
   streamed or not, for a customer without a budget, and for a customer
   naming a tag that does not exist; 3 for a customer and a virtual key
   (the key's authentication is a read of its own), and as many with a tag
   as well, each of the three accounts with a max_budget: a third account
   costs no round trip; 1 for a call without a customer or key (its ledger
   row).  The books hold: spend == the sum of
   the ledger rows, nothing reserved, no hold row left.
2. A call without a customer or key takes no hold row while it is at the
   upstream, and its ledger row is written.
3. A refusal on the cheap way: a new customer on a default tier with
   max_budget 0 gets 429 budget_exceeded in LiteLLM's words (Spend, Budget),
   x-should-retry false, nothing reserved, and the customer exists.
4. What the procedures leave to the long way still works: a blocked
   customer (403), a due period reset (applied before admission).
5. Races inside tg_admit, made deterministic with a second session that
   holds a row lock until the call waits for it: (a) the call's customer
   is created by another request between tg_admit's read and its insert
   (on the max_budget 0 tier: refused, nothing held or reserved); (b) the
   customer is deleted while tg_admit takes its hold (the call takes the
   long way and makes it a new customer: served, spend == the ledger sum,
   nothing held).
6. A schema without the procedures (dropped, as while new programs run on a
   database not yet migrated), and a database user without EXECUTE (a grant
   older than the procedures): calls are still served and charged.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

N = 20
USAGE = {"usage": {"prompt_tokens": 10, "completion_tokens": 20}}
TIER = "hp-zero-tier"


def questions(env):
    return int(env.sql("SHOW GLOBAL STATUS LIKE 'Questions'")[0][1])


def per_call(env, call):
    """Questions per call of call(), made N times: the counter's own reading
    is measured with no call in between and taken off."""
    q0 = questions(env)
    q1 = questions(env)
    reading = q1 - q0
    for _ in range(N):
        call()
    q2 = questions(env)
    return Decimal(q2 - q1 - reading) / N


def books(t, env, user, label):
    row = env.customer_row(user) or {}
    t.is_eq(row.get("spend"), env.ledger_sum(user), "%s: spend == the ledger's sum" % label)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing reserved" % label)
    held = env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s" % H.sql_quote(user))
    t.is_eq(held[0][0], "0", "%s: no hold row left" % label)


def round_trips(t, env):
    def plain(user):
        def call():
            r = env.chat(user=user, fake=USAGE)
            t.ok(r.status == 200, "call of %s: 200" % (user or "no customer"), r.text[:300])
        return call

    def streamed(user):
        def call():
            s = env.stream_chat(user=user, fake=USAGE)
            t.ok(s.status == 200 and s.events and s.events[-1]["done"],
                 "stream of %s: complete" % user)
        return call

    budgeted = "hp-budgeted"
    t.is_eq(env.customer_new(user_id=budgeted, max_budget=5).status, 200,
            "a customer with a max_budget")
    free = "hp-free"
    # Warm up: the worker's connection, its prepared statements, its first
    # reclaim (due at its first answer).
    for user in (budgeted, free, None):
        plain(user)()
    t.is_eq(per_call(env, plain(budgeted)), Decimal(2),
            "a customer with a max_budget: 2 round trips per call")
    books(t, env, budgeted, "budgeted")
    t.is_eq(per_call(env, streamed(budgeted)), Decimal(2),
            "streamed, a customer with a max_budget: 2 round trips per call")
    books(t, env, budgeted, "budgeted, streamed")
    t.is_eq(per_call(env, plain(free)), Decimal(2),
            "a customer without a budget: 2 round trips per call")
    books(t, env, free, "free")
    r = env.request("POST", "/key/generate", body={"max_budget": 5})
    key = json.loads(r.text).get("key") if r.status == 200 else None
    t.ok(key is not None, "a virtual key with a max_budget", r.text[:200])
    r = env.request("POST", "/tag/new", body={"name": "hp-tag", "max_budget": 5})
    t.is_eq(r.status, 200, "a tag with a max_budget", r.text[:200])

    def tagged(user, tag, key):
        def call():
            r = env.request("POST", "/chat/completions", key=key,
                            headers={"x-litellm-tags": tag},
                            body=H.Env.chat_body(user=user, fake=USAGE))
            t.ok(r.status == 200, "tagged call of %s: 200" % user, r.text[:300])
        return call
    three = "hp-three"
    env.customer_new(user_id=three, max_budget=5)
    tagged(three, "hp-tag", key)()
    tagged(budgeted, "hp-no-such-tag", H._DEFAULT_KEY)()
    t.is_eq(per_call(env, tagged(three, "", key)), Decimal(3),
            "a customer and a key, each with a max_budget: 3 round trips per call"
            " (the key's authentication, the admission, the settlement)")
    t.is_eq(per_call(env, tagged(three, "hp-tag", key)), Decimal(3),
            "a customer, a key and a tag, each with a max_budget: as many")
    books(t, env, three, "three accounts")
    tag = env.sql("SELECT spend, reserved FROM tags WHERE tag_name = 'hp-tag'")
    rows = env.sql("SELECT SUM(s.spend), COUNT(*) FROM spend_logs s JOIN spend_log_tags x"
                   " ON x.request_id = s.request_id WHERE x.tag = 'hp-tag'")
    t.is_eq([dec(x) for x in tag[0]], [dec(rows[0][0]), Decimal(0)],
            "three accounts: the tag's spend == its rows (%s), nothing reserved" % rows[0][1])
    t.is_eq(per_call(env, tagged(budgeted, "hp-no-such-tag", H._DEFAULT_KEY)), Decimal(2),
            "a customer naming a tag that does not exist: 2 round trips per call")
    books(t, env, budgeted, "an unknown tag")
    before = int(env.sql("SELECT COUNT(*) FROM spend_logs WHERE end_user = ''")[0][0])
    t.is_eq(per_call(env, plain(None)), Decimal(1),
            "no customer: 1 round trip per call (its ledger row)")
    after = int(env.sql("SELECT COUNT(*) FROM spend_logs WHERE end_user = ''")[0][0])
    t.is_eq(after - before, N, "no customer: one ledger row per call")


def no_customer_no_hold(t, env):
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.chat(fake={"delay": 1.5, "usage": USAGE["usage"]})))
    th.start()
    reached = H.wait_for(lambda: any(q.get("json", {}).get("fake", {}).get("delay") == 1.5
                                     for q in env.upstream.requests()), timeout=10)
    t.ok(reached, "no customer: the call reached the upstream")
    t.is_eq(env.sql("SELECT COUNT(*) FROM reservations")[0][0], "0",
            "no customer: no hold row while it is at the upstream")
    th.join(30)
    r = out.get("r")
    t.is_eq(r.status if r else None, 200, "no customer: answered")
    row = env.ledger_row(r.header("x-litellm-call-id") or "") if r else None
    t.ok(row is not None and row["end_user"] == "" and row["status"] == "success"
         and row["spend"] == cost(10, 20), "no customer: its ledger row", repr(row))
    # The master key's hash is made once per process: still the right one.
    t.is_eq((row or {}).get("api_key"), hashlib.sha256(H.MASTER_KEY.encode()).hexdigest(),
            "no customer: the row's api_key is the master key's SHA-256")


def refusal(t, env, srv):
    user = "hp-refused"
    env.upstream.reset()
    r = env.chat(user=user, fake=USAGE, server=srv)
    env.check_error(r, 429, "budget_exceeded",
                    re.compile(r"^ExceededBudget: End User=%s over budget\. Spend=\S+, "
                               r"Budget=\S+$" % user), what="refused on the default tier")
    m = re.search(r"Spend=(\S+), Budget=(\S+)$",
                  ((r.json or {}).get("error") or {}).get("message") or "")
    t.is_eq((dec(m.group(1)), dec(m.group(2))) if m else None, (Decimal(0), Decimal(0)),
            "refused: the message says Spend=0, Budget=0")
    t.is_eq(r.header("x-should-retry"), "false", "refused: x-should-retry false")
    t.is_eq(env.upstream.requests(), [], "refused: nothing reached the upstream")
    row = env.customer_row(user)
    t.ok(row is not None and row["budget_id"] == TIER,
         "refused: the customer exists, on the default tier", repr(row))
    t.is_eq((row or {}).get("reserved"), Decimal(0), "refused: nothing reserved")
    t.is_eq(env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s"
                    % H.sql_quote(user))[0][0], "0", "refused: no hold row")


class Session:
    """A second database session, its statements sent one by one (the
    mariadb client, unbuffered), to hold a row lock while a call runs."""

    def __init__(self, env):
        self.p = subprocess.Popen([env.db.client, "--no-defaults", "-S", env.db.socket, "-uroot",
                                   "--unbuffered", "-N", "-B", "tollgate"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)

    def run(self, sql, mark):
        """Send sql, then wait for it to be done (it prints mark)."""
        self.p.stdin.write(("%s; SELECT '%s';\n" % (sql, mark)).encode())
        self.p.stdin.flush()
        line = self.p.stdout.readline().decode("utf-8", "replace").strip()
        if line != mark:
            raise RuntimeError("second session: %r" % line)

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)


def lock_waits(env):
    return int(env.sql("SELECT COUNT(*) FROM information_schema.innodb_trx "
                       "WHERE trx_state = 'LOCK WAIT'")[0][0])


def raced_call(t, env, srv, user, locked_by, label):
    """A chat for user while a second session keeps the statement
    locked_by uncommitted; it commits once the call waits for its lock."""
    s = Session(env)
    got = {}
    try:
        s.run("BEGIN; " + locked_by, "locked")
        th = threading.Thread(target=lambda: got.update(r=env.chat(user=user, fake=USAGE,
                                                                   server=srv)))
        th.start()
        waited = H.wait_for(lambda: lock_waits(env) > 0, timeout=20, interval=0.02)
        s.run("COMMIT", "committed")
        th.join(60)
    finally:
        s.close()
    t.ok(waited, "%s: the call waited for the other session's lock" % label)
    return got.get("r")


def admit_races(t, env, tier):
    # (a) Created by another request between tg_admit's read and insert.
    user = "hp-race-created"
    r = raced_call(t, env, tier, user,
                   "INSERT INTO customers (user_id, budget_id, created_at, updated_at) "
                   "VALUES (%s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
                   % (H.sql_quote(user), H.sql_quote(TIER)), "created meanwhile")
    env.check_error(r, 429, "budget_exceeded", None,
                    what="created meanwhile: refused on the max_budget 0 tier")
    row = env.customer_row(user) or {}
    holds = env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s" % H.sql_quote(user))
    t.is_eq((row.get("spend"), row.get("reserved"), holds[0][0]), (Decimal(0), Decimal(0), "0"),
            "created meanwhile: nothing charged, reserved or held")

    # (b) Deleted while tg_admit takes its hold.
    user = "hp-race-deleted"
    t.is_eq(env.customer_new(user_id=user, max_budget=10).status, 200, "customer/new (deleted)")
    r = raced_call(t, env, env.server, user,
                   "DELETE FROM customers WHERE user_id = %s" % H.sql_quote(user),
                   "deleted meanwhile")
    t.is_eq(r.status if r else None, 200, "deleted meanwhile: served (a new customer)",
            r and r.text[:300])
    row = env.customer_row(user)
    holds = env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s" % H.sql_quote(user))
    t.ok(row is not None and row["spend"] == env.ledger_sum(user) and row["spend"] > 0 and
         row["reserved"] == Decimal(0) and holds[0][0] == "0",
         "deleted meanwhile: the customer exists again, spend == its ledger sum, nothing held",
         repr(row), holds)


def long_way(t, env):
    user = "hp-blocked"
    env.customer_new(user_id=user, max_budget=1, blocked=True)
    r = env.chat(user=user, fake=USAGE)
    env.check_error(r, 403, "permission_error",
                    "User blocked from making LLM API Calls. User=%s" % user,
                    what="blocked")
    user = "hp-reset"
    env.customer_new(user_id=user, max_budget=1, budget_duration="1d")
    t.is_eq(env.chat(user=user, fake=USAGE).status, 200, "reset: first call")
    env.sql("UPDATE customers SET spend = spend + 0.5, spend_reset_at = '2000-01-01 00:00:00'"
            " WHERE user_id = %s" % H.sql_quote(user))
    r = env.chat(user=user, fake=USAGE)
    t.is_eq(r.status, 200, "reset: a call after the period ended", r.text[:300])
    row = env.customer_row(user) or {}
    t.is_eq(row.get("spend"), cost(10, 20), "reset: spend is the new period's call alone")
    reset_at = env.sql("SELECT spend_reset_at > UTC_TIMESTAMP() FROM customers WHERE user_id = %s"
                       % H.sql_quote(user))
    t.is_eq(reset_at[0][0], "1", "reset: the next period ends in the future")


def without_execute(t, env):
    """A database user whose grant predates sql/007 (no EXECUTE): the
    programs take the long way instead of failing."""
    env.sql("CREATE USER 'hp_noexec'@'localhost' IDENTIFIED BY 'pw'")
    env.sql("GRANT SELECT, INSERT, UPDATE, DELETE ON tollgate.* TO 'hp_noexec'@'localhost'")
    url = env.db.url.replace("mysql://root@", "mysql://hp_noexec:pw@", 1)
    srv = env.start_lighttpd(env.write_config("noexec", env.config()), name="noexec",
                             max_procs=1, database_url=url)
    user = "hp-noexec"
    t.is_eq(env.customer_new(user_id=user, max_budget=1).status, 200,
            "no EXECUTE: a customer with a max_budget")
    r = env.chat(user=user, fake=USAGE, server=srv)
    t.is_eq(r.status, 200, "no EXECUTE: the call is served", r.text[:300])
    t.is_eq(env.ledger_sum(user), cost(10, 20), "no EXECUTE: charged")
    books(t, env, user, "no EXECUTE")
    r = env.chat(fake=USAGE, server=srv)
    t.is_eq(r.status, 200, "no EXECUTE: a call without a customer", r.text[:300])


def without_procedures(t, env):
    for name in ("tg_admit", "tg_settle", "tg_admit_v11", "tg_settle_v11"):
        env.sql("DROP PROCEDURE %s" % name)
    user = "hp-old-schema"
    env.customer_new(user_id=user, max_budget=1)
    for i in range(3):
        r = env.chat(user=user, fake=USAGE)
        t.is_eq(r.status, 200, "no procedures: call %d served" % (i + 1), r.text[:300])
    t.is_eq(env.ledger_sum(user), 3 * cost(10, 20), "no procedures: every call charged")
    books(t, env, user, "no procedures")
    r = env.chat(fake=USAGE)
    t.is_eq(r.status, 200, "no procedures: a call without a customer")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.ok(row is not None and row["spend"] == cost(10, 20),
         "no procedures: its ledger row", repr(row))


def main(t, env):
    quiet = {"tollgate_settings": {"reclaim_interval": 3600}}
    env.start_lighttpd(env.write_config("hot", env.config(extra=quiet)), max_procs=1)
    tier = env.start_lighttpd(
        env.write_config("tier", env.config(litellm_settings={"max_end_user_budget_id": TIER})),
        name="tier", max_procs=1)
    t.is_eq(env.budget_new(budget_id=TIER, max_budget=0).status, 200, "a default tier")
    round_trips(t, env)
    no_customer_no_hold(t, env)
    refusal(t, env, tier)
    long_way(t, env)
    admit_races(t, env, tier)
    without_execute(t, env)
    without_procedures(t, env)


H.run(main)
