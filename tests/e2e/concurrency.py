#!/usr/bin/env python3
"""concurrency: hard budgets and exact spend under parallel load (SPEC 4.3, 3).

1. 50 parallel calls for one customer whose budget admits 20 of them (each
   request's admission estimate equals its actual cost), on every LLM route
   (chat, responses, Anthropic's messages, embeddings, completions; SPEC
   11): spend never exceeds max_budget, the others get 429 budget_exceeded
   (rate_limit_error in Anthropic's envelope on /v1/messages), spend ==
   SUM(spend_logs.spend), nothing stays reserved.
2. 200 parallel chats over 20 new customers (created by their first
   requests, concurrently): no lost update, each customer's spend equals
   its ledger sum and the expected total, no 5xx.

In the ledger's spool and lease modes (TG_LEDGER_MODE, issue 22:
concurrency_spool.py, concurrency_lease.py) the books are read once the
batches have landed (Env.settle).  In the lease mode a process admits
against the slice of the budget it leased, and a slice another process
holds is not there for it: at most (not exactly) floor(max_budget /
estimate) calls are admitted, and the test says so.
"""

import collections
import json
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import parallel  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402


PATHS = {"chat": "/chat/completions", "responses": "/v1/responses",
         "messages": "/v1/messages", "embeddings": "/v1/embeddings",
         "completions": "/v1/completions"}
ROUTES = ("chat", "responses", "messages", "embeddings", "completions")


def exact_body(route, user, bound, fake):
    """A body of route's API whose admission estimate equals its cost (the
    fake reports the bounds as its usage), and that cost."""
    if route == "chat":
        body, n = H.exact_chat_body("fake-gpt", user, bound, fake=fake)
        return body, cost(n, bound)
    if route == "embeddings":
        # The bound is the input's bytes; no output.
        text = "exact embedding input"
        obj = {"model": "fake-gpt", "input": text, "user": user,
               "fake": dict(fake, usage={"prompt_tokens": len(text)})}
        return json.dumps(obj).encode("utf-8"), cost(len(text), 0)
    n = 0
    for _ in range(20):
        if route == "responses":
            obj = {"model": "fake-gpt", "input": "hi", "max_output_tokens": bound,
                   "user": user,
                   "fake": dict(fake, usage={"input_tokens": n, "output_tokens": bound})}
        elif route == "messages":
            # An anthropic/ model (main()) without cache prices: the hold
            # is every byte at the input price.
            obj = {"model": "fake-claude", "max_tokens": bound, "metadata": {"user_id": user},
                   "messages": [{"role": "user", "content": "hi"}],
                   "fake": dict(fake, usage={"input_tokens": n, "output_tokens": bound})}
        else:
            obj = {"model": "fake-gpt", "prompt": "hi", "max_tokens": bound, "user": user,
                   "fake": dict(fake, usage={"prompt_tokens": n, "completion_tokens": bound})}
        body = json.dumps(obj).encode("utf-8")
        if len(body) == n:
            return body, cost(n, bound)
        n = len(body)
    raise RuntimeError("exact_body did not converge")


def budget_race(t, env, srv, route="chat"):
    user = "race-" + route
    max_tokens = 100
    allowed = 20
    body, est = exact_body(route, user, max_tokens, {"delay": 0.15})
    n = len(body)
    max_budget = est * allowed + est / 2
    what = "budget race %s: " % route
    r = env.customer_new(user_id=user, max_budget=str(max_budget), server=srv)
    if not t.is_eq(r.status, 200, "customer/new %s with max_budget %s" % (user, max_budget)):
        return
    env.upstream.reset()

    results = parallel(50, [lambda: env.request("POST", PATHS[route], body=body,
                                                server=srv, timeout=120)] * 50)
    transport = [r for r in results if isinstance(r, Exception)]
    resps = [r for r in results if not isinstance(r, Exception)]
    statuses = collections.Counter(r.status for r in resps)
    admitted = statuses.get(200, 0)
    refused = statuses.get(429, 0)
    env.settle_ok(what + "books")
    row = env.customer_row(user) or {}
    spend = row.get("spend")
    ledger = env.ledger_sum(user)
    ok_rows = int(env.sql("SELECT COUNT(*) FROM spend_logs WHERE end_user = %s AND status = "
                          "'success'" % H.sql_quote(user))[0][0])
    to_upstream = sum(1 for q in env.upstream.requests()
                      if user in ((q.get("json") or {}).get("user"),
                                  ((q.get("json") or {}).get("metadata") or {}).get("user_id")))

    t.diag(what + "estimate per call %s (body %d bytes, max_tokens %d)" % (est, n, max_tokens))
    t.diag(what + "admitted %d, refused %d, other %s" % (
        admitted, refused, dict((k, v) for k, v in statuses.items() if k not in (200, 429))))
    t.diag(what + "spend %s, max_budget %s, ledger sum %s, reserved %s" % (
        spend, max_budget, ledger, row.get("reserved")))

    t.is_eq(transport, [], what + "no transport errors")
    t.is_eq(admitted + refused, 50, what + "every answer is 200 or 429", "statuses %s" % statuses)
    t.cmp_ok(spend, "<=", max_budget, what + "spend never exceeds max_budget")
    t.is_eq(spend, ledger, what + "spend == SUM(spend_logs.spend)")
    t.is_eq(row.get("reserved"), Decimal(0), what + "reserved back to 0")
    if H.ledger_mode() == "lease":
        t.diag(what + "lease mode: the slices other processes hold may refuse a call the "
               "budget had room for; at most (not exactly) %d admitted" % allowed)
        t.ok(0 < admitted <= allowed, what + "at most floor(max_budget / estimate) admitted, "
             "and some", "admitted %d, floor %d" % (admitted, allowed))
    else:
        t.is_eq(admitted, allowed, what + "exactly floor(max_budget / estimate) admitted")
    t.is_eq(spend, est * admitted, what + "spend = admitted x cost")
    t.is_eq(ok_rows, admitted, what + "one success ledger row per admitted call")
    t.is_eq(to_upstream, admitted, what + "refused calls never reached the upstream")
    refusal = "rate_limit_error" if route == "messages" else "budget_exceeded"
    bad = [r for r in resps if r.status == 429 and not (
        r.error.get("type") == refusal and r.header("x-should-retry") == "false")]
    t.is_eq(len(bad), 0, what + "every 429 is %s with x-should-retry: false" % refusal,
            *[repr(r) for r in bad[:3]])
    costs = set(dec(r.header("x-litellm-response-cost")) for r in resps if r.status == 200)
    t.is_eq(costs, {est} if admitted else set(), what + "each admitted call cost the estimate")


def many_customers(t, env, srv):
    n_customers, n_calls = 20, 200
    expected = collections.defaultdict(Decimal)
    jobs = []
    for i in range(n_calls):
        user = "crowd-%02d" % (i % n_customers)
        pt, ct = i + 1, (i * 7) % 50 + 1
        expected[user] += cost(pt, ct)
        body = {"model": "fake-gpt" if i % 2 else "fake-gpt-2", "user": user,
                "messages": [{"role": "user", "content": "call %d" % i}],
                "fake": {"usage": {"prompt_tokens": pt, "completion_tokens": ct}}}
        jobs.append(lambda body=body: env.request("POST", "/chat/completions", body=body,
                                                  server=srv, timeout=120))
    results = parallel(40, jobs)
    transport = [r for r in results if isinstance(r, Exception)]
    resps = [r for r in results if not isinstance(r, Exception)]
    statuses = collections.Counter(r.status for r in resps)
    t.diag("crowd: statuses %s" % dict(statuses))
    t.is_eq(transport, [], "crowd: no transport errors")
    t.is_eq(statuses.get(200, 0), n_calls, "crowd: all %d calls answered 200" % n_calls,
            *[repr(r) for r in resps if r.status != 200][:5])
    t.is_eq(sum(v for k, v in statuses.items() if k >= 500), 0, "crowd: no 5xx")
    ids = [r.header("x-litellm-call-id") for r in resps]
    t.is_eq(len(set(ids)), len(ids), "crowd: call ids are unique")

    env.settle_ok("crowd: books")
    rows = env.sql("SELECT c.user_id, c.spend, c.reserved, "
                   "(SELECT COALESCE(SUM(l.spend), 0) FROM spend_logs l WHERE l.end_user = c.user_id), "
                   "(SELECT COUNT(*) FROM spend_logs l WHERE l.end_user = c.user_id) "
                   "FROM customers c WHERE c.user_id LIKE 'crowd-%'")
    got = {r[0]: (dec(r[1]), dec(r[2]), dec(r[3]), int(r[4])) for r in rows}
    t.is_eq(sorted(got), sorted(expected), "crowd: all %d customers created once" % n_customers)
    lost = [u for u in expected if u not in got or got[u][0] != expected[u]]
    t.is_eq(lost, [], "crowd: no lost update (each spend == expected sum)",
            *["%s: spend %s, expected %s" % (u, got.get(u, (None,))[0], expected[u]) for u in lost[:5]])
    drift = [u for u in got if got[u][0] != got[u][2]]
    t.is_eq(drift, [], "crowd: each customer's spend == its ledger sum")
    held = [u for u in got if got[u][1] != 0]
    t.is_eq(held, [], "crowd: nothing left reserved")
    t.is_eq(sum(v[3] for v in got.values()), n_calls, "crowd: one ledger row per call")
    total = sum((v[0] for v in got.values()), Decimal(0))
    t.diag("crowd: total spend %s, ledger sum %s, expected %s" % (
        total, sum((v[2] for v in got.values()), Decimal(0)), sum(expected.values(), Decimal(0))))


def main(t, env):
    # fake-claude is an anthropic/ model, for /v1/messages (a deployment
    # of fake-gpt would serve chat too, translated).
    cfg = env.write_config("main", env.config(models=[
        env.model("fake-gpt"), env.model("fake-gpt-2"),
        env.model("fake-claude", api_base=env.upstream.base, model="anthropic/fake-claude")]))
    srv = env.start_lighttpd(cfg, max_procs=8)
    for route in ROUTES:
        budget_race(t, env, srv, route)
    many_customers(t, env, srv)


if __name__ == "__main__":
    H.run(main)
