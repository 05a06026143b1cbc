#!/usr/bin/env python3
"""model_budgets: a budget's model_max_budget, enforced as hard as
max_budget (issue 19: LiteLLM stores it and enforces nothing).

model_max_budget is LiteLLM's shape, {"<model>": {"budget_limit": <USD>,
"time_period": "<duration>"}}, on a customer's budget (its own or its
tier), on a virtual key's, or on a budget row.  Each account whose budget
caps the call's model holds the call on a model_spend row of its own for
that model, in the same admission as the account itself.

1. A customer capped on fake-gpt only: 50 calls at once, half on fake-gpt,
   half on fake-gpt-2.  Every fake-gpt-2 call is served; fake-gpt calls
   are served until the cap and refused after it with the reason; the
   model's spend never passes the cap and equals the sum of the
   customer's fake-gpt rows; nothing stays reserved; /customer/info shows
   it as model_spend.
2. A tier (/budget/new) with a cap, and a customer of it: the same
   enforcement through the tier (the one-round-trip admission takes the
   long way for it).
3. A virtual key capped on fake-gpt (no period): 30 calls at once; the
   key's model spend never passes the cap and equals the sum of the key's
   fake-gpt rows; refused in LiteLLM's words; /key/info shows it.
4. A period ("2s"): a customer at its cap is refused, and admitted again
   once the period has passed, its model spend starting from 0.
5. A chat worker killed while its call is at the upstream: the reclaim
   charges the hold to the model's row too, and releases it there.  And a
   settlement spooled while MariaDB was down whose hold was reclaimed
   meanwhile: the replay corrects the model's row to the real charge.
6. Bad input: a cap that is not an object, a budget_limit that is not a
   number or is negative, an unknown time_period: 422 naming the model, on
   /customer/new, /budget/new and /key/generate; nothing created.
7. /customer/delete forgets the customer's model rows: a customer created
   again under the id starts from 0.
"""

import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import parallel  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

HOLD_TIMEOUT = 3  # the deployments' timeout: a hold lasts 3 + 1 s
USAGE = {"prompt_tokens": 10, "completion_tokens": 20}
CALL_COST = cost(10, 20)  # what each call is charged: 0.00005


def caps(model, limit, period=None):
    cap = {"budget_limit": float(limit)}
    if period is not None:
        cap["time_period"] = period
    return {model: cap}


def model_row(env, kind, account, model):
    rows = env.sql("SELECT spend, reserved, budget_limit, time_period FROM model_spend"
                   " WHERE kind = %s AND account_id = %s AND model = %s"
                   % (H.sql_quote(kind), H.sql_quote(account), H.sql_quote(model)))
    if not rows:
        return None
    r = rows[0]
    return {"spend": dec(r[0]), "reserved": dec(r[1]), "budget_limit": dec(r[2]),
            "time_period": r[3]}


def rows_sum(env, column, account, model):
    rows = env.sql("SELECT COALESCE(SUM(spend), 0), COUNT(*) FROM spend_logs"
                   " WHERE %s = %s AND model = %s"
                   % (column, H.sql_quote(account), H.sql_quote(model)))
    return dec(rows[0][0]), int(rows[0][1])


def body(user, model):
    return H.Env.chat_body(user=user, model=model, fake={"usage": USAGE},
                           extra={"max_tokens": 20})


def check_model_books(t, env, label, kind, account, column, model, limit):
    row = model_row(env, kind, account, model) or {}
    total, n = rows_sum(env, column, account, model)
    t.diag("%s: model spend %s, reserved %s, cap %s, rows %d summing %s"
           % (label, row.get("spend"), row.get("reserved"), limit, n, total))
    t.cmp_ok(row.get("spend"), "<=", limit, "%s: the model's spend <= its cap" % label)
    t.is_eq(row.get("spend"), total, "%s: the model's spend = the sum of its rows" % label)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing stays reserved on it" % label)
    return row


def customer_cap(t, env, srv):
    user = "mb-customer"
    limit = Decimal("0.001")  # 20 calls' worth, fewer holds' worth
    r = env.customer_new(user_id=user, model_max_budget=caps("fake-gpt", limit, "1d"),
                         server=srv)
    t.is_eq(r.status, 200, "customer: created with a cap on fake-gpt", r.text[:200])
    jobs = []
    for i in range(50):
        model = "fake-gpt" if i % 2 == 0 else "fake-gpt-2"
        jobs.append(lambda m=model: (m, env.request("POST", "/chat/completions",
                                                    body=body(user, m), server=srv,
                                                    timeout=60)))
    results = parallel(25, jobs)
    errors = [x for x in results if isinstance(x, Exception)]
    t.is_eq(errors, [], "customer: every call answered")
    by = {"fake-gpt": [], "fake-gpt-2": []}
    for x in results:
        if not isinstance(x, Exception):
            by[x[0]].append(x[1])
    other = [r.status for r in by["fake-gpt-2"]]
    t.is_eq(other, [200] * 25, "customer: every fake-gpt-2 call served (no cap on it)")
    served = [r for r in by["fake-gpt"] if r.status == 200]
    refused = [r for r in by["fake-gpt"] if r.status != 200]
    t.diag("customer: fake-gpt served %d, refused %d" % (len(served), len(refused)))
    t.ok(0 < len(served) < 25, "customer: fake-gpt served up to its cap, then refused")
    t.ok(all(r.status in (400, 429) for r in refused), "customer: refusals are 4xx",
         [r.status for r in refused][:5])
    if refused:
        msg = json.loads(refused[0].text)["error"]["message"]
        t.ok("End User=mb-customer over budget for model=fake-gpt" in msg,
             "customer: the refusal names the customer and the model", msg)
    row = check_model_books(t, env, "customer", "customer", user, "end_user", "fake-gpt",
                            limit)
    t.is_eq(row.get("time_period"), "1d", "customer: the row's period is the cap's")
    # The account as a whole was charged for both models.
    cust = env.customer_row(user)
    t.is_eq(cust["spend"], env.ledger_sum(user), "customer: its spend = its rows")
    t.is_eq(cust["reserved"], Decimal(0), "customer: nothing reserved")
    info = env.customer_info(user, server=srv)
    got = json.loads(info.text).get("model_spend") if info.status == 200 else None
    t.is_eq(got and dec(got.get("fake-gpt")), row.get("spend"),
            "customer: /customer/info shows the model's spend", info.text[:300])
    # At the cap, the other model is still served.
    r = env.request("POST", "/chat/completions", body=body(user, "fake-gpt-2"), server=srv)
    t.is_eq(r.status, 200, "customer: at the cap, fake-gpt-2 is still served")


def tier_cap(t, env, srv):
    tier = "mb-tier"
    limit = Decimal("0.0003")
    r = env.budget_new(budget_id=tier, model_max_budget=caps("fake-gpt", limit), server=srv)
    t.is_eq(r.status, 200, "tier: /budget/new with a cap", r.text[:200])
    user = "mb-tiered"
    r = env.customer_new(user_id=user, budget_id=tier, server=srv)
    t.is_eq(r.status, 200, "tier: a customer of it")
    results = parallel(10, [lambda: env.request("POST", "/chat/completions",
                                                body=body(user, "fake-gpt"), server=srv,
                                                timeout=60)] * 20)
    served = [x for x in results if not isinstance(x, Exception) and x.status == 200]
    t.ok(0 < len(served) < 20, "tier: served up to the tier's cap (%d of 20)" % len(served))
    check_model_books(t, env, "tier", "customer", user, "end_user", "fake-gpt", limit)


def key_cap(t, env, srv):
    limit = Decimal("0.0005")
    r = env.request("POST", "/key/generate", server=srv,
                    body={"key_alias": "mb-key", "model_max_budget": caps("fake-gpt", limit)})
    if not t.is_eq(r.status, 200, "key: generated with a cap", r.text[:200]):
        return
    key = json.loads(r.text)["key"]
    token = json.loads(r.text)["token"]
    results = parallel(15, [lambda i=i: env.request(
        "POST", "/chat/completions", body=body("mb-key-user-%d" % (i % 3), "fake-gpt"),
        server=srv, key=key, timeout=60) for i in range(30)])
    ok = [x for x in results if not isinstance(x, Exception) and x.status == 200]
    refused = [x for x in results if not isinstance(x, Exception) and x.status != 200]
    t.ok(0 < len(ok) < 30, "key: served up to its cap (%d of 30)" % len(ok))
    if refused:
        msg = json.loads(refused[0].text)["error"]["message"]
        t.ok(msg.startswith("LiteLLM Virtual Key: %s, key_alias: mb-key, exceeded budget "
                            "for model=fake-gpt" % token),
             "key: refused in LiteLLM's words", msg)
    check_model_books(t, env, "key", "key", token, "api_key", "fake-gpt", limit)
    q = env.request("GET", "/key/info?key=" + token, server=srv)
    info = json.loads(q.text).get("info", {}) if q.status == 200 else {}
    row = model_row(env, "key", token, "fake-gpt") or {}
    t.is_eq(dec((info.get("model_spend") or {}).get("fake-gpt")), row.get("spend"),
            "key: /key/info shows the model's spend", q.text[:300])
    # Each customer of the key got its rows too (the key's cap is its own).
    for i in range(3):
        u = "mb-key-user-%d" % i
        t.is_eq(env.customer_row(u)["spend"], env.ledger_sum(u),
                "key: customer %s's spend = its rows" % u)


def period_reset(t, env, srv):
    # Two calls must fall in one 2 s period; on a loaded machine they may
    # not, and then the case starts again with a new customer.
    for attempt in range(4):
        user = "mb-period-%d" % attempt
        raw = json.dumps(body(user, "fake-gpt")).encode()
        hold = cost(len(raw), 20)  # the body's bytes and max_tokens 20
        # One call's hold fits; after its charge (CALL_COST), a second's
        # does not.
        limit = hold + CALL_COST / 2
        env.customer_new(user_id=user, model_max_budget=caps("fake-gpt", limit, "2s"),
                         server=srv)
        # Start right after a period boundary, so that two calls fit in it.
        while int(time.time()) % 2 != 0:
            time.sleep(0.05)
        began = int(time.time()) // 2
        first = env.request("POST", "/chat/completions", body=raw, server=srv)
        second = env.request("POST", "/chat/completions", body=raw, server=srv)
        if int(time.time()) // 2 == began:
            break
        t.diag("period: the two calls did not fall in one period (attempt %d)" % attempt)
    t.is_eq((first.status, second.status != 200), (200, True),
            "period: served once, then refused within the period",
            "%d %d %s" % (first.status, second.status, second.text[:200]))
    time.sleep(2.2)
    third = env.request("POST", "/chat/completions", body=raw, server=srv)
    t.is_eq(third.status, 200, "period: served again in the next period", third.text[:200])
    row = model_row(env, "customer", user, "fake-gpt") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (CALL_COST, Decimal(0)),
            "period: the model's spend started again from 0 (one call in it)")


def killed_worker(t, env):
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": {"hold_grace": 1, "reclaim_interval": 1}})
    srv = env.start_lighttpd(env.write_config("kill", cfg), name="kill", max_procs=1)
    srv.expect_child_deaths = True
    user = "mb-killed"
    env.customer_new(user_id=user, model_max_budget=caps("fake-gpt", "1"), server=srv)
    env.upstream.reset()
    b = body(user, "fake-gpt")
    b["fake"]["delay"] = 2
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=b, server=srv, timeout=30)))
    th.start()
    reached = H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                                     for q in env.upstream.requests()), timeout=10)
    t.ok(reached, "killed: the call reached the upstream")
    held = env.sql("SELECT amount, model_accounts FROM reservations WHERE user_id = %s"
                   % H.sql_quote(user))
    t.is_eq([int(x[1]) for x in held], [1], "killed: the hold is on the customer's model row")
    amount = dec(held[0][0]) if held else None
    row = model_row(env, "customer", user, "fake-gpt") or {}
    t.is_eq(row.get("reserved"), amount, "killed: held on the model's row too")
    for pid in srv.program_pids("chat_completions"):
        os.kill(pid, signal.SIGKILL)
    th.join(30)

    def reclaimed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.ledger_rows(user)
    rows = H.wait_for(reclaimed, timeout=HOLD_TIMEOUT + 15, interval=0.5)
    t.is_eq([x["status"] for x in rows], ["unsettled"], "killed: one unsettled row")
    row = model_row(env, "customer", user, "fake-gpt") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (amount, Decimal(0)),
            "killed: the model's row charged the hold and released it")
    meta = rows[0]["metadata"] if rows else {}
    t.ok(isinstance(meta, dict) and "model_period_end" in meta,
         "killed: the row records the model's period", repr(meta))
    srv.stop()


def spooled_after_reclaim(t, env):
    """A capped customer's settlement spooled while MariaDB was down, whose
    hold expired (charged as unsettled, to the model's row too) before the
    spool was replayed: the replay corrects the model's row to the real
    charge, once."""
    spool = os.path.join(env.tmp, "spool")
    aside = os.path.join(env.tmp, "spool-aside")
    os.makedirs(aside, exist_ok=True)
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": {"hold_grace": 1, "reclaim_interval": 1,
                                                  "spool_dir": spool}})
    srv = env.start_lighttpd(env.write_config("spool", cfg), name="spool", max_procs=2)
    user = "mb-spooled"
    env.customer_new(user_id=user, model_max_budget=caps("fake-gpt", "1", "1d"), server=srv)
    b = body(user, "fake-gpt")
    b["fake"]["delay"] = 1.5
    raw = json.dumps(b).encode()
    hold = cost(len(raw), 20)
    env.upstream.reset()
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=raw, server=srv, timeout=30)))
    th.start()
    H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                           for q in env.upstream.requests()), timeout=10)
    env.db.stop()  # the answer arrives while the database is down
    th.join(30)
    r = out.get("r")
    t.is_eq(r and r.status, 200, "spooled: answered with the database down")
    files = H.spool_files(spool)
    t.is_eq(len(files), 1, "spooled: one settlement in the spool")
    for f in files:
        os.rename(f, os.path.join(aside, os.path.basename(f)))
    env.db.start()

    def charged():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.ledger_rows(user)
    rows = H.wait_for(charged, timeout=HOLD_TIMEOUT + 15, interval=0.5)
    t.is_eq([(x["status"], x["spend"]) for x in rows], [("unsettled", hold)],
            "spooled: meanwhile the expired hold is charged as unsettled")
    row = model_row(env, "customer", user, "fake-gpt") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (hold, Decimal(0)),
            "spooled: ... to the model's row too")
    for f in files:
        os.rename(os.path.join(aside, os.path.basename(f)), f)

    def replayed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        rows = env.ledger_rows(user)
        return rows if rows and rows[0]["status"] != "unsettled" else None
    rows = H.wait_for(replayed, timeout=15, interval=0.5) or env.ledger_rows(user)
    t.is_eq([(x["status"], x["spend"]) for x in rows], [("success", CALL_COST)],
            "spooled: the replay replaced it with the real charge")
    check_model_books(t, env, "spooled", "customer", user, "end_user", "fake-gpt",
                      Decimal(1))
    replay_again = env.request("GET", "/health/readiness", server=srv, key=None)
    t.is_eq(replay_again.status, 200, "spooled: readiness after the replay")
    row = model_row(env, "customer", user, "fake-gpt") or {}
    t.is_eq(row.get("spend"), CALL_COST, "spooled: corrected once, to the real charge")
    t.ok(not H.spool_files(spool), "spooled: spool empty")
    srv.stop()


def bad_input(t, env, srv):
    cases = [
        ("not an object", {"fake-gpt": 5}),
        ("budget_limit a string", {"fake-gpt": {"budget_limit": "x"}}),
        ("budget_limit negative", {"fake-gpt": {"budget_limit": -1}}),
        ("budget_limit missing", {"fake-gpt": {"time_period": "1d"}}),
        ("unknown time_period", {"fake-gpt": {"budget_limit": 1, "time_period": "fortnight"}}),
    ]
    for i, (what, mmb) in enumerate(cases):
        uid = "mb-bad-%d" % i
        for path, fields in (("/customer/new", {"user_id": uid}),
                             ("/budget/new", {"budget_id": uid}),
                             ("/key/generate", {"key_alias": uid})):
            r = env.request("POST", path, body=dict(fields, model_max_budget=mmb), server=srv)
            err = json.loads(r.text).get("error", {}) if r.text.startswith("{") else {}
            t.ok(r.status == 422 and "fake-gpt" in str(err.get("message"))
                 and err.get("param") == "model_max_budget",
                 "bad input: %s on %s is 422 naming the model" % (what, path),
                 "%d %s" % (r.status, r.text[:200]))
        t.is_eq(env.customer_row(uid), None, "bad input: %s: no customer created" % what)


def delete_forgets(t, env, srv):
    user = "mb-deleted"
    env.customer_new(user_id=user, model_max_budget=caps("fake-gpt", "1"), server=srv)
    env.request("POST", "/chat/completions", body=body(user, "fake-gpt"), server=srv)
    t.ok(model_row(env, "customer", user, "fake-gpt") is not None,
         "delete: the customer has a model row")
    r = env.request("POST", "/customer/delete", body={"user_ids": [user]}, server=srv)
    t.is_eq(r.status, 200, "delete: /customer/delete")
    t.is_eq(model_row(env, "customer", user, "fake-gpt"), None,
            "delete: its model row is gone with it")


def main(t, env):
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT),
                             env.model("fake-gpt-2")])
    srv = env.start_lighttpd(env.write_config("main", cfg), max_procs=6)
    for name, case in (("a customer's cap", customer_cap), ("a tier's cap", tier_cap),
                       ("a key's cap", key_cap), ("a period", period_reset),
                       ("bad input", bad_input), ("delete", delete_forgets)):
        t.diag("case: %s" % name)
        case(t, env, srv)
    srv.stop()
    t.diag("case: a killed worker")
    killed_worker(t, env)
    t.diag("case: a spooled settlement whose hold was reclaimed")
    spooled_after_reclaim(t, env)


if __name__ == "__main__":
    H.run(main)
