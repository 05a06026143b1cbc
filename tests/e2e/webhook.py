#!/usr/bin/env python3
"""webhook: the event webhook of SPEC 9 against a real local receiver.

1. The seed's spend_tracked payload, field by field, for a non-streamed
   and a streamed call (spend = the call's charge, exactly; token = the
   sha256 of the key; the seed's 13 fields); no event for a call without a
   customer; X-Tollgate-Event-Id and an HMAC-SHA256 signature that
   verifies with the secret.
2. Budget alerts under 50 concurrent calls over two worker processes for
   one customer: threshold_crossed at 85% and 95%, budget_crossed and
   soft_budget_crossed, each exactly once; one spend_tracked per charged
   call, summing to the customer's spend.  A raised max_budget is alerted
   on afresh; a stream cut short is charged and so tracked.
3. A receiver answering 500: the event stays pending (readiness counts
   it), is retried with the same event id and delivered once the receiver
   answers 200.  A receiver that is down: delivered by tollgate-deliver
   --once when it is back, with no traffic.
4. A receiver that hangs for 10 s, and one that answers 200 only after
   0.4 s: 30 sequential chats are no slower at the median than with a
   healthy receiver (by less than a quarter of the receiver's delay:
   the delay is not on their way) and none fails.
5. A chat worker killed (SIGKILL) while it delivers (between the commit
   and the receiver's answer): the event is delivered later, same id.
   Two tollgate-deliver draining one backlog at once send each event once.
6. tollgate-deliver as a loop drains the outbox and ends on SIGTERM; with
   a short webhook_retry_for a failing event is marked dead and counted in
   readiness; --requeue-dead delivers it; delivered events are pruned
   after webhook_retention.
7. "slack" in alerting: budget alerts only, as {"text": ...}.
8. A settlement spooled while MariaDB was down carries its event: the
   replay writes it with the charge, and it is delivered.
"""

import hashlib
import hmac
import os
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec, parallel  # noqa: E402

SECRET = "whsec-test-secret"
SEED_FIELDS = ["spend", "max_budget", "token", "customer_id", "user_id", "team_id",
               "user_email", "key_alias", "projected_exceeded_date", "projected_spend",
               "event", "event_group", "event_message"]
# spend_tracked adds, after the seed's, the charged call's type (SPEC 11).
TRACKED_FIELDS = SEED_FIELDS + ["call_type"]
KEY_HASH = hashlib.sha256(H.MASTER_KEY.encode()).hexdigest()


def hdr(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def settings(extra=None):
    s = {"webhook_timeout": 1, "webhook_retry_base": 1, "reclaim_interval": 1}
    s.update(extra or {})
    return s


def config(env, alerting=("webhook",), tollgate=None, general=None):
    gs = {"alerting": list(alerting), "webhook_secret": SECRET}
    gs.update(general or {})
    return env.config(general_settings=gs, extra={"tollgate_settings": settings(tollgate)})


def events_for(rec, user, kind=None, path="/hook"):
    return [e for e, _h in rec.events(path)
            if e.get("customer_id") == user and (kind is None or e.get("event") == kind)]


def outbox(env, where="1=1"):
    return env.sql("SELECT event_id, event, status, attempts, customer_id FROM webhook_outbox"
                   " WHERE %s ORDER BY id" % where)


def deliver(env, cfg_path, *args, extra_env=None, timeout=60):
    e = dict(os.environ)
    e.update({"TOLLGATE_CONFIG": cfg_path, "DATABASE_URL": env.db.url,
              "TOLLGATE_PRICE_FILE": H.PRICE_FILE})
    e.update(extra_env or {})
    return subprocess.run([H.DELIVER] + list(args), env=e, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)


def deliver_until(env, cfg_path, rec, user, timeout):
    """Run tollgate-deliver --once until user's events are delivered."""
    def done():
        p = deliver(env, cfg_path, "--once", extra_env={"WEBHOOK_URL": rec.url})
        if p.returncode != 0:
            return None
        rows = outbox(env, "customer_id = %s" % H.sql_quote(user))
        return rows if rows and all(r[2] == "delivered" for r in rows) else None
    return H.wait_for(done, timeout=timeout, interval=0.5)


def drain(env, cfg_path, rec):
    """Deliver everything pending (the receiver answering 200)."""
    rec.mode = "ok"

    def empty():
        deliver(env, cfg_path, "--once", extra_env={"WEBHOOK_URL": rec.url})
        return env.sql("SELECT COUNT(*) FROM webhook_outbox WHERE status = 'pending'"
                       )[0][0] == "0"
    return H.wait_for(empty, timeout=30, interval=0.5)


def fresh_workers(env, srv):
    """Kill the chat workers (lighttpd starts new ones): the old ones may
    be holding off delivering after an earlier part's failures."""
    srv.expect_child_deaths = True
    for pid in srv.program_pids("chat_completions"):
        os.kill(pid, signal.SIGKILL)
    H.wait_for(lambda: env.chat().status == 200, timeout=10)


def seed_payload(t, env, rec, srv):
    """Part 1."""
    r = env.chat(user="krrish12")
    t.is_eq(r.status, 200, "seed chat for krrish12")
    got = H.wait_for(lambda: events_for(rec, "krrish12"), timeout=10)
    t.is_eq(len(got), 1, "one spend_tracked event for the call")
    if not got:
        return
    ev = got[0]
    t.is_eq(list(ev.keys()), TRACKED_FIELDS,
            "the seed's fields, in the seed's order, then call_type")
    t.is_eq(ev.get("call_type"), "acompletion", "call_type: the chat route's, acompletion")
    charge = dec(r.header("x-litellm-response-cost"))
    t.is_eq(dec(ev["spend"]), charge, "spend is the call's cost, exactly (%s)" % charge)
    t.is_eq(dec(ev["spend"]), cost(10, 20), "spend = 10 x in + 20 x out")
    t.is_eq(ev["max_budget"], None, "max_budget null for a customer without one")
    t.is_eq(ev["token"], KEY_HASH, "token is the sha256 of the key used")
    t.is_eq(ev["customer_id"], "krrish12", "customer_id")
    for f in ("user_id", "team_id", "user_email", "key_alias",
              "projected_exceeded_date", "projected_spend"):
        t.is_eq(ev[f], None, "%s is null" % f)
    t.is_eq(ev["event"], "spend_tracked", "event")
    t.is_eq(ev["event_group"], "customer", "event_group")
    t.is_eq(ev["event_message"],
            "Customer spend tracked. Customer=krrish12, spend=%s" % r.header(
                "x-litellm-response-cost"),
            "event_message")
    req = rec.got("/hook")[-1]
    eid = hdr(req["headers"], "X-Tollgate-Event-Id")
    t.ok(eid is not None and len(eid) == 36, "X-Tollgate-Event-Id is a uuid: %s" % eid)
    t.is_eq(hdr(req["headers"], "Content-Type"), "application/json", "JSON body")
    sig = hdr(req["headers"], "X-Tollgate-Signature")
    want = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    t.is_eq(sig, want, "X-Tollgate-Signature is the HMAC-SHA256 of the raw body")
    bad = "sha256=" + hmac.new(b"other", req["body"], hashlib.sha256).hexdigest()
    t.ok(sig != bad, "the signature depends on the secret")
    rows = outbox(env, "event_id = %s" % H.sql_quote(eid))
    t.ok(rows and rows[0][2] == "delivered", "the outbox row is delivered: %r" % rows)

    # Streamed.
    s = env.stream_chat(user="krrish12", extra={"stream_options": {"include_usage": True}})
    t.is_eq(s.status, 200, "streamed chat for krrish12")

    def two():
        return len(events_for(rec, "krrish12")) >= 2 and events_for(rec, "krrish12")
    got = H.wait_for(two, timeout=10)
    if not got:
        # A delivery round slower than 100 ms (a sanitizer build on a
        # loaded machine) makes a process pause delivering for 5 s
        # (lib/app.c, OUTBOX_SLOW_US): then the event goes after the next
        # call that writes one, on any process.  Such a call, once the
        # pause is over.
        t.diag("the streamed call's event was not sent within 10 s: its process was "
               "pausing after a slow delivery; one more call, 5 s on")
        time.sleep(5.5)
        env.chat(user="krrish12-next")
        got = H.wait_for(two, timeout=10)
    t.is_eq(len(got or []), 2, "a second spend_tracked for the streamed call")
    if got and len(got) == 2:
        rid = s.header("x-litellm-call-id")
        row = env.ledger_row(rid) if rid else None
        t.ok(row is not None and dec(got[1]["spend"]) == row["spend"],
             "streamed spend equals its ledger row: %r vs %r" % (
                 got[1]["spend"], row and row["spend"]))
        t.is_eq(list(got[1].keys()), TRACKED_FIELDS, "streamed: the seed's fields, call_type")
    info = env.customer_info("krrish12").json
    total = sum(dec(e["spend"]) for e in events_for(rec, "krrish12"))
    t.is_eq(total, dec(info["spend"]), "the events' spend adds up to the customer's")

    # No customer: no event.
    before = len(rec.got())
    r = env.chat()
    t.is_eq(r.status, 200, "chat without a customer")
    time.sleep(0.5)
    t.is_eq(len(rec.got()), before, "no event for a call without a customer id")
    t.is_eq(len(outbox(env, "customer_id IS NULL OR customer_id = ''")), 0,
            "and no outbox row")


def budget_alerts(t, env, rec, srv, cfg_path):
    """Part 2."""
    user = "tier-racer"
    body, prompt = H.exact_chat_body("fake-gpt", user, 5)
    one = cost(prompt, 5)
    max_budget = one * 40
    r = env.customer_new(user_id=user, max_budget=str(max_budget), soft_budget=str(one * 20))
    t.is_eq(r.status, 200, "customer with max_budget 40 calls, soft_budget 20")
    rs = parallel(50, [lambda: env.request("POST", "/chat/completions", body=body)
                       for _ in range(50)])
    codes = [getattr(x, "status", repr(x)) for x in rs]
    ok = codes.count(200)
    t.is_eq(ok, 40, "exactly 40 of 50 admitted (%r)" % sorted(set(codes), key=str))
    t.is_eq(codes.count(429), 10, "10 refused for budget")
    t.ok(all(c in (200, 429) for c in codes), "no other answer")
    pids = srv.program_pids("chat_completions")
    t.ok(len(pids) >= 2, "two chat worker processes: %r" % pids)

    def settled():
        # What the processes leave (a round slowed by a loaded machine
        # pauses their delivery), tollgate-deliver sends.
        deliver(env, cfg_path, "--once", extra_env={"WEBHOOK_URL": rec.url})
        kinds = [e["event"] for e in events_for(rec, user)]
        return kinds if kinds.count("spend_tracked") >= ok else None
    H.wait_for(settled, timeout=30, interval=0.5)
    # Stragglers (a refused call's event) need a moment more.
    time.sleep(1.0)
    evs = events_for(rec, user)
    kinds = [e["event"] for e in evs]
    t.is_eq(kinds.count("spend_tracked"), ok, "one spend_tracked per charged call")
    thr = [e for e in evs if e["event"] == "threshold_crossed"]
    t.is_eq(len(thr), 2, "threshold_crossed exactly twice (85%% and 95%%): %r" %
            [e["event_message"] for e in thr])
    msgs = sorted(e["event_message"] for e in thr)
    t.ok(len(msgs) == 2 and "85%" in msgs[0] and "95%" in msgs[1],
         "one at 85%% and one at 95%%: %r" % msgs)
    for e in thr:
        pct = 85 if "85%" in e["event_message"] else 95
        t.ok(dec(e["spend"]) * 100 >= max_budget * pct,
             "threshold %d%%: the period's spend %s reached it" % (pct, e["spend"]))
        t.is_eq(dec(e["max_budget"]), max_budget, "threshold event names max_budget")
    t.is_eq(kinds.count("budget_crossed"), 1, "budget_crossed exactly once")
    t.is_eq(kinds.count("soft_budget_crossed"), 1, "soft_budget_crossed exactly once")
    spend = env.customer_row(user)["spend"]
    t.is_eq(spend, max_budget, "spend reached max_budget exactly")
    t.is_eq(sum(dec(e["spend"]) for e in evs if e["event"] == "spend_tracked"), spend,
            "spend_tracked events sum to the customer's spend")
    dup = env.sql("SELECT COUNT(*) FROM webhook_outbox WHERE customer_id = %s AND event"
                  " <> 'spend_tracked'" % H.sql_quote(user))
    t.is_eq(dup[0][0], "4", "four budget alerts in the outbox, no more")
    # A later refusal in the same period raises nothing new.
    r = env.request("POST", "/chat/completions", body=body)
    t.is_eq(r.status, 429, "over budget: refused again")
    time.sleep(0.5)
    t.is_eq([e["event"] for e in events_for(rec, user)].count("budget_crossed"), 1,
            "no second budget_crossed in the period")

    # A raised limit (no budget period here) is alerted on afresh.
    r = env.request("POST", "/customer/update",
                    body={"user_id": user, "max_budget": str(max_budget + one * 2)})
    t.is_eq(r.status, 200, "max_budget raised by two calls")
    for _ in range(2):
        t.is_eq(env.request("POST", "/chat/completions", body=body).status, 200,
                "a call within the raised budget")
    H.wait_for(lambda: (deliver(env, cfg_path, "--once", extra_env={"WEBHOOK_URL": rec.url}),
                        [e["event"] for e in events_for(rec, user)].count(
                            "budget_crossed") >= 2)[1], timeout=20, interval=0.5)
    crossed = [e for e in events_for(rec, user) if e["event"] == "budget_crossed"]
    t.is_eq(len(crossed), 2, "budget_crossed again at the raised max_budget")
    t.ok(len(crossed) == 2 and dec(crossed[1]["max_budget"]) == max_budget + one * 2,
         "and it names the new max_budget")

    # A stream the upstream cuts short is a failure row, charged what it
    # relayed: a charge, so a spend_tracked.
    s = env.stream_chat(user="cut-stream",
                        fake={"chunks": 4, "end_after": 2, "no_usage": True})
    rid = s.header("x-litellm-call-id")
    row = env.ledger_row(rid) if rid else None
    t.ok(row is not None and row["status"] == "failure" and row["spend"] > 0,
         "a stream cut short: a failure row with a charge (%r)" % (row and row["spend"]))
    got = H.wait_for(lambda: (deliver(env, cfg_path, "--once",
                                      extra_env={"WEBHOOK_URL": rec.url}),
                              events_for(rec, "cut-stream"))[1], timeout=20, interval=0.5)
    t.ok(got and row and dec(got[0]["spend"]) == row["spend"],
         "its spend_tracked carries the charge")


def retries(t, env, rec, srv, cfg_path):
    """Part 3."""
    user = "retry-500"
    rec.mode = "fail"
    r = env.chat(user=user)
    t.is_eq(r.status, 200, "chat answered while the receiver fails")

    # This event's first attempt: inline after the call, or (a loaded
    # machine pauses inline delivery) by tollgate-deliver.  Another
    # event's failed attempt does not count.
    def attempted():
        hit = [x for x in rec.got("/hook") if x["mode"] == "fail" and b'"retry-500"' in x["body"]]
        if not hit:
            deliver(env, cfg_path, "--once", extra_env={"WEBHOOK_URL": rec.url})
        return hit
    H.wait_for(attempted, timeout=20, interval=0.5)
    # The sender counts the attempt once the receiver has answered.
    rows = H.wait_for(lambda: [r for r in outbox(env, "customer_id = %s" % H.sql_quote(user))
                               if int(r[3]) >= 1], timeout=10) or \
        outbox(env, "customer_id = %s" % H.sql_quote(user))
    t.ok(len(rows) == 1 and rows[0][2] == "pending" and int(rows[0][3]) >= 1,
         "after a 500 the event is pending with an attempt counted: %r" % rows)
    ready = env.request("GET", "/health/readiness", key=None).json or {}
    t.ok((ready.get("webhook_pending") or 0) >= 1,
         "readiness counts pending events: %r" % ready)
    eid = rows[0][0] if rows else None
    rec.mode = "ok"
    # Delivered on later traffic once its retry is due (the processes do
    # not retry a failing receiver for a few seconds).
    def delivered():
        env.chat()
        return [e for e, h in rec.events("/hook") if e.get("customer_id") == user]
    got = H.wait_for(delivered, timeout=30, interval=0.5)
    t.is_eq(len(got), 1, "delivered once the receiver answers 200")
    ids = [hdr(x["headers"], "X-Tollgate-Event-Id") for x in rec.got("/hook")
           if b'"retry-500"' in x["body"]]
    t.ok(len(ids) >= 2 and set(ids) == {eid},
         "every attempt carried the same event id (%d attempts)" % len(ids))
    rows = outbox(env, "customer_id = %s" % H.sql_quote(user))
    t.ok(rows and rows[0][2] == "delivered", "and the row is delivered: %r" % rows)

    # Down: nothing listens.  Delivered by tollgate-deliver, no traffic.
    user = "retry-down"
    rec.down()
    r = env.chat(user=user)
    t.is_eq(r.status, 200, "chat answered while the receiver is down")
    time.sleep(1.2)  # the first retry comes due
    rows = outbox(env, "customer_id = %s" % H.sql_quote(user))
    t.ok(len(rows) == 1 and rows[0][2] == "pending", "pending while down: %r" % rows)
    eid = rows[0][0] if rows else None
    rec.up()
    t.ok(deliver_until(env, cfg_path, rec, user, timeout=15),
         "tollgate-deliver --once delivered it")
    got = [h for e, h in rec.events("/hook") if e.get("customer_id") == user]
    t.is_eq([hdr(h, "X-Tollgate-Event-Id") for h in got], [eid],
            "the down receiver got the event once it was back, same id")


def hanging(t, env, rec, srv, cfg_path):
    """Part 4."""
    def p50(label):
        times, codes = [], []
        for i in range(30):
            r = env.chat(user="lat-%s" % label)
            times.append(r.elapsed)
            codes.append(r.status)
        return statistics.median(times), max(times), codes
    drain(env, cfg_path, rec)
    fresh_workers(env, srv)
    rec.mode = "ok"
    env.chat(user="lat-warm")
    healthy, _, c1 = p50("healthy")
    for mode, hang_s in (("hang", 10.0), ("hang", 0.4)):
        rec.mode = mode
        rec.hang_s = hang_s
        before = len(rec.got("/hook"))
        hung, worst, c2 = p50("hang-%g" % hang_s)
        hit = len(rec.got("/hook")) - before
        rec.mode = "ok"
        what = ("hanging (%g s)" % hang_s) if hang_s > 1 else ("slow (200 after %g s)" % hang_s)
        t.diag("chat p50: healthy receiver %.2f ms, %s receiver %.2f ms (x%.2f), "
               "slowest %.0f ms, %d deliveries tried" % (
                   healthy * 1000, what, hung * 1000, hung / healthy if healthy else 0,
                   worst * 1000, hit))
        t.ok(hit >= 1, "%s: the receiver was tried" % what)
        t.ok(all(c == 200 for c in c1 + c2), "%s: no chat failed: %r" % (
            what, sorted(set(c1 + c2))))
        # The receiver's delay is not on the chats' way: had a chat
        # waited for it, the median would be at least that delay above
        # the healthy one.  A quarter of it is the bound: a loaded
        # machine moves a median of a few ms by several times itself
        # (measured: 7.5 ms healthy, 18.4 ms beside a 0.4 s receiver,
        # with two test suites running at once), never by 100 ms.
        t.ok(hung - healthy < hang_s / 4,
             "%s: p50 %.2f ms, less than a quarter of the receiver's delay above "
             "healthy (%.2f ms)" % (what, hung * 1000, healthy * 1000))
        drain(env, cfg_path, rec)
        fresh_workers(env, srv)


def killed_worker(t, env, rec, srv, cfg_path):
    """Part 5."""
    srv.expect_child_deaths = True
    rows = None
    for attempt in range(3):
        user = "killed-mid-delivery-%d" % attempt
        # Nothing older in the way, and workers not holding off.
        drain(env, cfg_path, rec)
        fresh_workers(env, srv)
        rec.mode = "hang"
        rec.hang_s = 3.0
        before = len(rec.got("/hook"))
        r = env.chat(user=user)
        t.is_eq(r.status, 200, "chat answered")
        H.wait_for(lambda: any(b'"%s"' % user.encode() in x["body"]
                               for x in rec.got("/hook")[before:]),
                   timeout=5, interval=0.005)
        for pid in srv.program_pids("chat_completions"):
            os.kill(pid, signal.SIGKILL)
        rec.mode = "ok"
        rows = env.sql("SELECT event_id, status, attempts, claim IS NOT NULL FROM"
                       " webhook_outbox WHERE customer_id = %s" % H.sql_quote(user))
        if rows and rows[0][1] == "pending" and rows[0][2] == "0" and rows[0][3] == "1":
            break
        t.diag("the kill missed the attempt (%r); again" % (rows,))
    t.ok(rows and rows[0][1] == "pending" and rows[0][2] == "0" and rows[0][3] == "1",
         "killed during the attempt: the event is pending, claimed, no attempt "
         "recorded: %r" % (rows,))
    eid = rows[0][0] if rows else None
    # The claim of the killed attempt runs out (timeout + 5 s), then the
    # event is sent again.
    t.ok(deliver_until(env, cfg_path, rec, user, timeout=20),
         "delivered by tollgate-deliver after the claim ran out")
    got = [(e, h) for e, h in rec.events("/hook") if e.get("customer_id") == user]
    t.is_eq([hdr(h, "X-Tollgate-Event-Id") for _, h in got], [eid],
            "delivered once, with the id of the killed attempt")
    t.ok(H.wait_for(lambda: env.chat().status == 200, timeout=10),
         "the workers are back")

    # Two senders on one backlog, a slow receiver: each event sent once.
    rec.down()
    users = ["two-senders-%d" % i for i in range(6)]
    for u in users:
        env.chat(user=u)
    time.sleep(1.2)
    rec.up()
    rec.mode = "hang"
    rec.hang_s = 0.3
    procs = [subprocess.Popen([H.DELIVER, "--once", "--quiet"],
                              env=dict(os.environ, TOLLGATE_CONFIG=cfg_path,
                                       DATABASE_URL=env.db.url,
                                       TOLLGATE_PRICE_FILE=H.PRICE_FILE,
                                       WEBHOOK_URL=rec.url))
             for _ in range(2)]
    for p in procs:
        p.wait(timeout=60)
    rec.mode = "ok"
    ids = [hdr(x["headers"], "X-Tollgate-Event-Id") for x in rec.got("/hook")
           if any(b'"%s"' % u.encode() in x["body"] for u in users)]
    t.is_eq(len(ids), len(users), "two concurrent senders: %d posts for %d events"
            % (len(ids), len(users)))
    t.is_eq(len(set(ids)), len(users), "each event sent exactly once")


def deliver_tool(t, env, rec, srv, cfg_path):
    """Part 6."""
    rec.down()
    for i in range(3):
        t.is_eq(env.chat(user="loop-%d" % i).status, 200, "chat %d while down" % i)
    rec.up()
    e = dict(os.environ)
    e.update({"TOLLGATE_CONFIG": cfg_path, "DATABASE_URL": env.db.url,
              "TOLLGATE_PRICE_FILE": H.PRICE_FILE, "WEBHOOK_URL": rec.url})
    proc = subprocess.Popen([H.DELIVER, "--interval", "1"], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        got = H.wait_for(lambda: len({ev["customer_id"] for ev, _ in rec.events("/hook")
                                      if ev["customer_id"].startswith("loop-")}) == 3,
                         timeout=20, interval=0.2)
        t.ok(got, "the tollgate-deliver loop drained the events, no traffic")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
    t.is_eq(rc, 0, "the loop ends on SIGTERM with status 0")

    # Dead after webhook_retry_for, counted, requeued.
    dead_cfg = env.write_config("dead", config(env, tollgate={"webhook_retry_for": 1,
                                                              "webhook_retention": 1}))
    rec.mode = "fail"
    t.is_eq(env.chat(user="doomed").status, 200, "chat while the receiver fails")
    time.sleep(1.5)

    def dead():
        deliver(env, dead_cfg, "--once", extra_env={"WEBHOOK_URL": rec.url})
        rows = outbox(env, "customer_id = 'doomed'")
        return rows if rows and rows[0][2] == "dead" else None
    rows = H.wait_for(dead, timeout=15, interval=0.5)
    t.ok(rows, "an event failing past webhook_retry_for is marked dead: %r" % (rows,))
    ready = env.request("GET", "/health/readiness", key=None).json or {}
    t.is_eq(ready.get("webhook_dead"), 1, "readiness counts it: %r" % ready)
    rec.mode = "ok"
    p = deliver(env, dead_cfg, "--once", "--requeue-dead", extra_env={"WEBHOOK_URL": rec.url})
    t.ok(b"requeued 1 dead events" in p.stdout and b"delivered 1" in p.stdout,
         "--requeue-dead delivers it: %r" % p.stdout)
    ready = env.request("GET", "/health/readiness", key=None).json or {}
    t.is_eq(ready.get("webhook_dead"), 0, "no dead event left")
    delivered = int(env.sql("SELECT COUNT(*) FROM webhook_outbox WHERE status = "
                            "'delivered'")[0][0])
    t.ok(delivered > 0, "delivered events are kept for a while (%d)" % delivered)
    time.sleep(1.5)
    deliver(env, dead_cfg, "--once", extra_env={"WEBHOOK_URL": rec.url})
    left = int(env.sql("SELECT COUNT(*) FROM webhook_outbox WHERE status = "
                       "'delivered'")[0][0])
    t.ok(left < delivered, "delivered events older than webhook_retention are pruned "
         "(%d -> %d)" % (delivered, left))


def slack(t, env, rec):
    """Part 7."""
    cfg = env.write_config("slack", config(env, alerting=("slack",)))
    srv = env.start_lighttpd(cfg, name="slack", max_procs=1,
                             extra_env={"SLACK_WEBHOOK_URL": rec.url.replace("/hook", "/slack")})
    user = "slacker"
    body, prompt = H.exact_chat_body("fake-gpt", user, 5)
    one = cost(prompt, 5)
    t.is_eq(env.customer_new(user_id=user, max_budget=str(one * 2), server=srv).status, 200,
            "customer with max_budget of two calls")
    for _ in range(2):
        t.is_eq(env.request("POST", "/chat/completions", body=body, server=srv).status, 200,
                "chat")
    got = H.wait_for(lambda: rec.events("/slack"), timeout=10)
    texts = [e.get("text", "") for e, _ in (got or [])]
    t.ok(texts and all(list(e.keys()) == ["text"] for e, _ in got),
         "Slack gets {\"text\": ...} bodies: %r" % texts)
    t.ok(any("Customer budget crossed. Customer=slacker" in x for x in texts),
         "budget_crossed reaches Slack")
    t.ok(not any("spend tracked" in x for x in texts), "no spend_tracked to Slack")
    t.ok(all(hdr(h, "X-Tollgate-Signature") is None for _, h in got),
         "Slack bodies are not signed with the webhook secret")


def spooled(t, env, rec, srv):
    """Part 8."""
    import threading
    user = "spooled-event"
    rec.mode = "ok"
    env.chat(user=user)  # the customer exists
    out = {}
    body = env.chat_body(user=user, fake={"delay": 1.0})
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=body, timeout=30)))
    th.start()
    H.wait_for(lambda: sum(1 for q in env.upstream.requests()
                           if q.get("json", {}).get("user") == user) >= 2, timeout=10)
    env.db.stop()  # the answer arrives while the database is down
    th.join(30)
    r = out.get("r")
    t.is_eq(r and r.status, 200, "spooled: the client got its answer with MariaDB down")
    t.is_eq(len(H.spool_files(os.path.join(srv.vardir, "spool"))), 1,
            "spooled: one settlement waits in the spool")
    env.db.start()
    rid = r and r.header("x-litellm-call-id")

    def arrived():
        env.chat()  # a response, after which the spool is replayed
        return [e for e, _ in rec.events("/hook")
                if e.get("customer_id") == user] if len(events_for(rec, user)) >= 2 else None
    got = H.wait_for(arrived, timeout=30, interval=0.5)
    t.ok(got and len(got) == 2, "spooled: its spend_tracked arrived after the replay")
    row = env.ledger_row(rid) if rid else None
    t.ok(got and row and dec(got[-1]["spend"]) == row["spend"],
         "spooled: the event's spend is the replayed charge")


def main(t, env):
    rec = H.Receiver().up()
    try:
        cfg_path = env.write_config("main", config(env))
        srv = env.start_lighttpd(cfg_path, max_procs=2, extra_env={"WEBHOOK_URL": rec.url})
        seed_payload(t, env, rec, srv)
        budget_alerts(t, env, rec, srv, cfg_path)
        retries(t, env, rec, srv, cfg_path)
        hanging(t, env, rec, srv, cfg_path)
        killed_worker(t, env, rec, srv, cfg_path)
        deliver_tool(t, env, rec, srv, cfg_path)
        spooled(t, env, rec, srv)
        slack(t, env, rec)
    finally:
        rec.down()


H.run(main)
