#!/usr/bin/env python3
"""overshoot: spend never passes max_budget, even when the upstream does not
keep to the output bound the admission estimate used (SPEC 4.3, issue 6).

Each case is a function in CASES, run on its own fresh customer; it sends
parallel calls whose estimate is exact (the fake reports prompt_tokens =
body bytes) and checks, for that customer: spend <= max_budget, spend ==
SUM(spend_logs.spend), reserved == 0, and what the upstream received.

1. string_max_tokens_forwarded_as_integer: "max_tokens": "1" is reserved
   as 1 token; an upstream that ignores a non-integer bound writes 20
   (the fake's "ignore_string_bound").  tollgate must forward the integer
   1, so each call costs exactly its estimate; 50 parallel calls, plain
   and streamed, with max_budget 3.25 estimates: exactly 3 admitted.
"""

import collections
import json
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import parallel  # noqa: E402
from harness import Decimal, cost  # noqa: E402

CALLS = 50


def exact_body(user, bound_field, bound, fake, extra=None):
    """A chat body whose fake usage reports prompt_tokens = its own byte
    length, so its estimate at an honoured bound of 1 is its exact cost.
    Returns (bytes, prompt_tokens)."""
    n = 0
    for _ in range(20):
        obj = {"model": "fake-gpt", "user": user,
               "messages": [{"role": "user", "content": "one token please"}],
               bound_field: bound}
        obj.update(extra or {})
        obj["fake"] = dict(fake, usage={"prompt_tokens": n})
        body = json.dumps(obj).encode("utf-8")
        if len(body) == n:
            return body, n
        n = len(body)
    raise RuntimeError("exact_body did not converge")


def check_customer(t, env, label, user, max_budget):
    """The invariants of every case, for one customer."""
    row = env.customer_row(user) or {}
    spend, ledger = row.get("spend"), env.ledger_sum(user)
    t.diag("%s: spend %s, max_budget %s, ledger sum %s, reserved %s" % (
        label, spend, max_budget, ledger, row.get("reserved")))
    t.cmp_ok(spend, "<=", max_budget, "%s: spend <= max_budget" % label)
    t.is_eq(spend, ledger, "%s: spend == SUM(spend_logs.spend)" % label)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: reserved back to 0" % label)


def string_max_tokens_forwarded_as_integer(t, env, srv, stream):
    label = "string max_tokens%s" % (" (stream)" if stream else "")
    user = "overshoot-string-bound" + ("-stream" if stream else "")
    body, n = exact_body(user, "max_tokens", "1", {"ignore_string_bound": True},
                         extra={"stream": True} if stream else None)
    est = cost(n, 1)
    allowed = 3
    # Less than the 19 extra tokens of the 3 admitted calls above 3 x est.
    max_budget = est * allowed + est / 4
    r = env.customer_new(user_id=user, max_budget=str(max_budget), server=srv)
    if not t.is_eq(r.status, 200, "%s: customer/new with max_budget %s" % (label, max_budget)):
        return
    env.upstream.reset()

    def call():
        if stream:
            return env.stream_chat(body=json.loads(body), server=srv, timeout=120)
        return env.request("POST", "/chat/completions", body=body, server=srv, timeout=120)

    results = parallel(CALLS, [call] * CALLS)
    transport = [r for r in results if isinstance(r, Exception)]
    resps = [r for r in results if not isinstance(r, Exception)]
    statuses = collections.Counter(r.status for r in resps)
    admitted = statuses.get(200, 0)
    received = [q.get("json") or {} for q in env.upstream.requests()
                if (q.get("json") or {}).get("user") == user]
    rows = env.ledger_rows(user)
    t.diag("%s: %d calls, estimate %s each (body %d bytes), admitted %d, refused %d, "
           "other %s" % (label, CALLS, est, n, admitted, statuses.get(429, 0),
                         {k: v for k, v in statuses.items() if k not in (200, 429)}))
    t.is_eq(transport, [], "%s: no transport errors" % label)
    t.is_eq(admitted + statuses.get(429, 0), CALLS, "%s: every answer is 200 or 429" % label,
            "statuses %s" % dict(statuses))
    check_customer(t, env, label, user, max_budget)
    t.is_eq(admitted, allowed, "%s: exactly floor(max_budget / estimate) admitted" % label)
    t.is_eq(len(received), admitted, "%s: the upstream got only the admitted calls" % label)
    kinds = collections.Counter(type(q.get("max_tokens")).__name__ + ":" + repr(q.get("max_tokens"))
                                for q in received)
    t.is_eq(dict(kinds), {"int:1": admitted} if admitted else {},
            "%s: the upstream received max_tokens as the integer 1" % label)
    t.is_eq([(r["status"], int(r["completion_tokens"]), r["spend"]) for r in rows],
            [("success", 1, est)] * admitted,
            "%s: each admitted call wrote 1 completion token, charged its estimate" % label)


# The cases, each on a fresh customer; another overshoot is one more entry.
CASES = [
    ("string max_tokens, non-streamed",
     lambda t, env, srv: string_max_tokens_forwarded_as_integer(t, env, srv, stream=False)),
    ("string max_tokens, streamed",
     lambda t, env, srv: string_max_tokens_forwarded_as_integer(t, env, srv, stream=True)),
]


def main(t, env):
    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=8)
    for name, case in CASES:
        t.diag("case: %s" % name)
        case(t, env, srv)


if __name__ == "__main__":
    H.run(main)
