#!/usr/bin/env python3
"""holds: the output bound, charges above the hold, truncated streams and
holds whose process died (SPEC 4.3, 4.4, 4.5).

1. Streams without usage (the upstream ignores max_tokens 1 and streams
   four chunks), 24 at once, for a customer whose max_budget is 5 times the
   estimate: each is charged at most its output bound, spend never passes
   max_budget (before the fix, the streamed bytes were charged uncapped:
   1.8x the budget).
2. Usage above the hold (the upstream reports 1000 completion tokens for
   max_tokens 10): one call is charged exactly max_budget and says
   over_hold with the uncapped cost; 20 at once keep spend <= max_budget.
3. A stream the upstream ends cleanly but early (no finish_reason, no
   [DONE]): the client gets an SSE error event and no [DONE]; the row is a
   failure with the estimated charge.  With "n": 2, one ended choice is not
   a whole stream.
4. A chat worker killed (SIGKILL) while its call is at the upstream: once
   the hold's deadline passes it is charged at its amount in an
   "unsettled" row with the reason; nothing stays reserved.
5. A settlement spooled while MariaDB was down, whose hold expired (and
   was charged as unsettled) before the spool was replayed: the replay
   replaces the unsettled charge with the real one, once.
6. "n": 2 doubles the output bound of the estimate: a budget between the
   one-choice and the two-choice estimate refuses the call; more than 128
   choices is a 422.
7. A customer whose budget has no period but whose spend_reset_at lies in
   the past (left from an earlier budget): a charge above the hold is still
   capped at max_budget (the cap must not take spend for reset).
8. A whole answer without usage is charged its prompt bound and the bytes
   of its text; one whose message content is null (a tool call's) is
   answered and charged, not a crashed program (before the fix it was).
"""

import collections
import json
import os
import shutil
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import parallel  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

HOLD_TIMEOUT = 3  # the deployment's timeout: a hold lasts 3 + 1 s


def settings(env):
    return {"hold_grace": 1, "reclaim_interval": 1,
            "spool_dir": os.path.join(env.tmp, "spool")}


def check_books(t, env, user, max_budget, label):
    row = env.customer_row(user)
    if not t.ok(row is not None, "%s: customer row exists" % label):
        return
    total = env.ledger_sum(user)
    t.ok(row["spend"] <= max_budget, "%s: spend %s <= max_budget %s"
         % (label, row["spend"], max_budget))
    t.is_eq(row["spend"], total, "%s: spend == sum of the ledger rows" % label)
    t.is_eq(row["reserved"], Decimal(0), "%s: nothing reserved" % label)
    left = env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s"
                   % H.sql_quote(user))
    t.is_eq(left[0][0], "0", "%s: no hold rows left" % label)


def stream_no_usage(t, env, srv):
    user = "holds-stream-no-usage"
    fake = {"chunks": 4, "no_usage": True, "stream_interval": 0.05}
    body = {"model": "fake-gpt", "user": user, "max_tokens": 1, "stream": True,
            "messages": [{"role": "user", "content": "hi"}], "fake": fake}
    raw = json.dumps(body).encode()
    est = cost(len(raw), 1)
    max_budget = est * 5
    r = env.customer_new(user_id=user, max_budget=str(max_budget), server=srv)
    t.is_eq(r.status, 200, "stream/no usage: customer with max_budget 5 x estimate")
    results = parallel(24, [lambda: env.stream_chat(body=raw, server=srv)] * 24)
    statuses = collections.Counter(getattr(x, "status", repr(x)) for x in results)
    t.diag("stream/no usage: 24 streams, statuses %s, estimate %s, max_budget %s"
           % (dict(statuses), est, max_budget))
    t.ok(statuses.get(200, 0) >= 1 and set(statuses) <= {200, 429},
         "stream/no usage: streams admitted or refused with 429", repr(dict(statuses)))
    ok_streams = [x for x in results if getattr(x, "status", 0) == 200]
    t.ok(all(x.events and x.events[-1]["done"] for x in ok_streams),
         "stream/no usage: every admitted stream ends with [DONE]")
    rows = env.ledger_rows(user)
    t.is_eq(len(rows), len(ok_streams), "stream/no usage: one row per admitted stream")
    t.ok(all(int(x["completion_tokens"]) <= 1 for x in rows),
         "stream/no usage: completion tokens charged <= the output bound 1",
         repr([x["completion_tokens"] for x in rows]))
    t.ok(all(isinstance(x["metadata"], dict) and x["metadata"].get("usage_estimated")
             for x in rows), "stream/no usage: rows say usage_estimated")
    t.ok(all(x["spend"] <= est for x in rows),
         "stream/no usage: no stream charged above its estimate")
    check_books(t, env, user, max_budget, "stream/no usage")


def over_hold(t, env, srv):
    user = "holds-over-single"
    body, n = H.exact_chat_body("fake-gpt", user, 10)
    obj = json.loads(body)
    obj["fake"]["usage"]["completion_tokens"] = 1000  # ignores the bound
    body = json.dumps(obj).encode()
    est = cost(len(body), 10)  # the prompt bound is the body's length
    real = cost(n, 1000)  # what the fake reports
    r = env.customer_new(user_id=user, max_budget=str(est), server=srv)
    t.is_eq(r.status, 200, "over hold: customer with max_budget = one estimate")
    r = env.request("POST", "/chat/completions", body=body, server=srv)
    t.is_eq(r.status, 200, "over hold: the call is answered")
    t.is_eq(dec(r.header("x-litellm-response-cost")), est,
            "over hold: charged the budget's room (%s), not the reported cost %s"
            % (est, real))
    rows = env.ledger_rows(user)
    meta = rows[0]["metadata"] if rows else None
    t.ok(isinstance(meta, dict) and meta.get("over_hold") is True,
         "over hold: metadata over_hold true", repr(meta))
    t.is_eq(dec(meta.get("uncapped_cost")) if isinstance(meta, dict) else None, real,
            "over hold: metadata uncapped_cost is the reported cost")
    check_books(t, env, user, est, "over hold")
    r = env.request("POST", "/chat/completions", body=body, server=srv)
    t.is_eq(r.status, 429, "over hold: the next call is refused (budget spent)")

    user = "holds-over-parallel"
    body, n = H.exact_chat_body("fake-gpt", user, 10, fake={"delay": 0.3})
    obj = json.loads(body)
    obj["fake"]["usage"]["completion_tokens"] = 1000
    body = json.dumps(obj).encode()
    est = cost(len(body), 10)
    max_budget = est * 6 + est / 2
    env.customer_new(user_id=user, max_budget=str(max_budget), server=srv)
    results = parallel(20, [lambda: env.request("POST", "/chat/completions", body=body,
                                                server=srv, timeout=60)] * 20)
    statuses = collections.Counter(getattr(x, "status", repr(x)) for x in results)
    row = env.customer_row(user)
    t.diag("over hold: 20 parallel calls, statuses %s, spend %s, max_budget %s"
           % (dict(statuses), row and row["spend"], max_budget))
    t.ok(set(statuses) <= {200, 429} and statuses.get(200, 0) >= 1,
         "over hold: parallel calls answered or refused with 429", repr(dict(statuses)))
    check_books(t, env, user, max_budget, "over hold, parallel")


def truncated_stream(t, env, srv):
    user = "holds-truncated"
    s = env.stream_chat(user=user, server=srv,
                        fake={"chunks": 4, "end_after": 2, "no_usage": True})
    t.is_eq(s.status, 200, "truncated: the stream began")
    t.ok(not any(e["done"] for e in s.events), "truncated: no [DONE]",
         repr([e["data"] for e in s.events]))
    last = s.events[-1]["json"] if s.events else None
    t.ok(isinstance(last, dict) and isinstance(last.get("error"), dict)
         and last["error"].get("type") == "api_connection_error",
         "truncated: the last event is an error envelope", repr(last))
    rows = env.ledger_rows(user)
    t.is_eq([x["status"] for x in rows], ["failure"], "truncated: one failure row")
    t.ok(rows and rows[0]["spend"] > 0, "truncated: the relayed part is charged",
         repr(rows))
    row = env.customer_row(user)
    t.is_eq(row and row["spend"], rows[0]["spend"] if rows else None,
            "truncated: customer spend == the row")

    # Two choices: the first ends (finish_reason), the second is cut off
    # after its role chunk.  One finished choice is not a whole stream.
    user = "holds-truncated-n2"
    s = env.stream_chat(user=user, server=srv, extra={"n": 2},
                        fake={"chunks": 3, "end_after": 6, "no_usage": True})
    t.ok(s.status == 200 and not any(e["done"] for e in s.events),
         "truncated, n=2: no [DONE] after only the first choice ended",
         repr([e["data"] for e in s.events]))
    last = s.events[-1]["json"] if s.events else None
    t.ok(isinstance(last, dict) and isinstance(last.get("error"), dict),
         "truncated, n=2: the last event is an error envelope", repr(last))
    t.is_eq([x["status"] for x in env.ledger_rows(user)], ["failure"],
            "truncated, n=2: one failure row")
    user = "holds-whole-n2"
    s = env.stream_chat(user=user, server=srv, extra={"n": 2}, fake={"chunks": 3})
    t.ok(s.status == 200 and s.events and s.events[-1]["done"],
         "whole, n=2: both choices ended: [DONE]", repr([e["data"] for e in s.events]))
    t.is_eq([x["status"] for x in env.ledger_rows(user)], ["success"],
            "whole, n=2: one success row")


def killed_worker(t, env):
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": settings(env)})
    srv = env.start_lighttpd(env.write_config("kill", cfg), name="kill", max_procs=1)
    srv.expect_child_deaths = True
    user = "holds-killed"
    body, n = H.exact_chat_body("fake-gpt", user, 50, fake={"delay": 2})
    est = cost(n, 50)
    env.customer_new(user_id=user, max_budget="1", server=srv)
    env.upstream.reset()
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=body, server=srv, timeout=30)))
    th.start()
    reached = H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                                     for q in env.upstream.requests()), timeout=10)
    t.ok(reached, "killed: the call reached the upstream")
    pids = srv.program_pids("chat_completions")
    t.ok(pids, "killed: found the chat worker", repr(srv.children()))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    th.join(30)
    t.ok(out.get("r") is not None and out["r"].status >= 500,
         "killed: the client got a server error",
         repr(out.get("r")))
    held = env.sql("SELECT amount FROM reservations WHERE user_id = %s" % H.sql_quote(user))
    t.is_eq([dec(x[0]) for x in held], [est], "killed: the hold is still there, at the estimate")

    def reclaimed():
        # Any program reclaims after its answers, once a second here.
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.ledger_rows(user)
    rows = H.wait_for(reclaimed, timeout=HOLD_TIMEOUT + 15, interval=0.5)
    t.is_eq([x["status"] for x in rows], ["unsettled"], "killed: one unsettled row")
    if rows:
        t.is_eq(rows[0]["spend"], est, "killed: charged at the hold's amount")
        meta = rows[0]["metadata"]
        t.ok(isinstance(meta, dict) and "hold expired" in str(meta.get("reason")),
             "killed: metadata.reason says why", repr(meta))
        t.is_eq(rows[0]["model"], "fake-gpt", "killed: the row names the model")
    check_books(t, env, user, Decimal(1), "killed")


def spool_after_reclaim(t, env, srv):
    user = "holds-spooled-late"
    spool = settings(env)["spool_dir"]
    aside = os.path.join(env.tmp, "spool-aside")
    os.makedirs(aside, exist_ok=True)
    body, n = H.exact_chat_body("fake-gpt", user, 40, fake={"delay": 1.5})
    est = cost(n, 40)
    obj = json.loads(body)
    obj["fake"]["usage"]["completion_tokens"] = 7
    body = json.dumps(obj).encode()
    real = cost(n, 7)
    est = cost(len(body), 40)
    env.customer_new(user_id=user, max_budget="1", server=srv)
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=body, server=srv, timeout=30)))
    th.start()
    H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                           for q in env.upstream.requests()), timeout=10)
    env.db.stop()  # the answer arrives while the database is down
    th.join(30)
    r = out.get("r")
    t.is_eq(r and r.status, 200, "spooled: the client got its answer with the database down")
    t.is_eq(dec(r and r.header("x-litellm-response-cost")), real,
            "spooled: and its real cost")
    files = H.spool_files(spool)
    t.is_eq(len(files), 1, "spooled: one settlement in the spool")
    for f in files:  # this machine's spool is out of reach for a while
        shutil.move(f, os.path.join(aside, os.path.basename(f)))
    env.db.start()

    def charged():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.ledger_rows(user)
    rows = H.wait_for(charged, timeout=HOLD_TIMEOUT + 15, interval=0.5)
    t.is_eq([(x["status"], x["spend"]) for x in rows], [("unsettled", est)],
            "spooled: meanwhile the expired hold is charged as unsettled")
    for f in files:
        shutil.move(os.path.join(aside, os.path.basename(f)), f)

    def replayed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        rows = env.ledger_rows(user)
        return rows if rows and rows[0]["status"] != "unsettled" else None
    rows = H.wait_for(replayed, timeout=15, interval=0.5) or env.ledger_rows(user)
    t.is_eq([(x["status"], x["spend"], int(x["completion_tokens"])) for x in rows],
            [("success", real, 7)], "spooled: the replay replaced it with the real charge")
    t.ok(rows and rows[0]["api_base"], "spooled: the replaced row names the api_base",
         repr(rows))
    check_books(t, env, user, Decimal(1), "spooled")
    t.ok(not H.spool_files(spool), "spooled: spool empty")


def n_choices(t, env, srv):
    user = "holds-n-choices"
    body = {"model": "fake-gpt", "user": user, "max_tokens": 100, "n": 2,
            "messages": [{"role": "user", "content": "hi"}]}
    raw = json.dumps(body).encode()
    one, two = cost(len(raw), 100), cost(len(raw), 200)
    env.customer_new(user_id=user, max_budget=str((one + two) / 2), server=srv)
    r = env.request("POST", "/chat/completions", body=raw, server=srv)
    t.is_eq(r.status, 429, "n=2: refused by a budget that one choice would fit (%s < %s)"
            % ((one + two) / 2, two))
    t.is_eq(env.ledger_rows(user), [], "n=2: nothing charged")
    body["n"] = "1"
    r = env.request("POST", "/chat/completions", body=body, server=srv)
    t.is_eq(r.status, 200, "n=\"1\": admitted by the same budget")
    r = env.request("POST", "/chat/completions", server=srv,
                    body=dict(body, n=129, user=user + "-x"))
    env.check_error(r, 422, "invalid_request_error", param="n", what="n=129")
    t.is_eq(env.customer_row(user + "-x"), None, "n=129: no customer stored")


def over_hold_stale_reset(t, env, srv):
    user = "holds-stale-reset"
    body, n = H.exact_chat_body("fake-gpt", user, 10)
    obj = json.loads(body)
    obj["fake"]["usage"]["completion_tokens"] = 1000
    body = json.dumps(obj).encode()
    est = cost(len(body), 10)
    max_budget = est * 3
    env.customer_new(user_id=user, max_budget=str(max_budget), server=srv)
    # Spend already at two estimates; a reset time left in the past by an
    # earlier budget with a period.
    env.sql("UPDATE customers SET spend = %s, spend_reset_at = '2020-01-01 00:00:00'"
            " WHERE user_id = %s" % (est * 2, H.sql_quote(user)))
    r = env.request("POST", "/chat/completions", body=body, server=srv)
    t.is_eq(r.status, 200, "stale reset: the call is answered")
    t.is_eq(dec(r.header("x-litellm-response-cost")), est,
            "stale reset: charged only the room left (one estimate)")
    row = env.customer_row(user)
    t.is_eq(row and row["spend"], max_budget, "stale reset: spend == max_budget, not past it")


def whole_no_usage(t, env, srv):
    user = "holds-whole-no-usage"
    for content, produced in ((None, 0), ("four", 4)):
        body = {"model": "fake-gpt", "user": user, "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}],
                "fake": {"content": content, "usage": None}}
        raw = json.dumps(body).encode()
        label = "no usage, content %s" % json.dumps(content)
        r = env.request("POST", "/chat/completions", body=raw, server=srv)
        t.is_eq(r.status, 200, "%s: answered" % label)
        t.is_eq(dec(r.header("x-litellm-response-cost")), cost(len(raw), produced),
                "%s: charged the prompt bound and %d output tokens" % (label, produced))
    rows = env.ledger_rows(user)
    t.is_eq([int(x["completion_tokens"]) for x in rows], [0, 4],
            "no usage: the rows' completion tokens are the text's bytes")
    t.ok(all(isinstance(x["metadata"], dict) and x["metadata"].get("usage_estimated")
             for x in rows), "no usage: rows say usage_estimated")


def main(t, env):
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": settings(env)})
    srv = env.start_lighttpd(env.write_config("main", cfg), name="main")
    stream_no_usage(t, env, srv)
    over_hold(t, env, srv)
    truncated_stream(t, env, srv)
    spool_after_reclaim(t, env, srv)
    n_choices(t, env, srv)
    over_hold_stale_reset(t, env, srv)
    whole_no_usage(t, env, srv)
    killed_worker(t, env)


if __name__ == "__main__":
    H.run(main)
