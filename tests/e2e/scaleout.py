#!/usr/bin/env python3
"""scaleout: two web nodes on one MariaDB (SPEC 4.3, 10; DESIGN "Scale").

Node A is lighttpd, node B Apache with mod_fcgid (a second lighttpd when
apache2 is not installed, as a diag line says), each on its own port and
with its own FastCGI processes and spool, both on the harness's MariaDB.

1. 200 concurrent calls for one customer, alternating between the nodes,
   near its max_budget: each call's admission estimate equals its cost
   (exact_chat_body), and max_budget = 120.5 x that cost, so exactly 120
   must be admitted, whatever the interleaving (a settled call frees
   nothing, as it costs its hold).  Checked: exactly 120 answered 200 and
   80 429 budget_exceeded, nothing else; spend <= max_budget; spend ==
   the ledger sum == 120 x the cost; every admitted call has its success
   row (lost 0) and there is no other row (doubled 0); the refused calls
   never reached the upstream; nothing is left reserved.  The figures are
   printed.
2. Blocked on one node is seen by the other at once: /customer/block on A,
   then every chat process of B refuses (403) and B's /customer/info says
   blocked; /customer/unblock on B, then A serves again.

race() is also what tests/e2e/galera.py runs on a Galera cluster.  In the
ledger's spool and lease modes (TG_LEDGER_MODE, issue 22) it reads the
books once the batches have landed (Env.settle), and in the lease mode,
where a slice of the budget leased by one process is not there for the
others, it asks for at most (not exactly) 120 admitted calls.
"""

import collections
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost  # noqa: E402

CALLS = 200
ALLOWED = 120
PROCS = 6  # chat processes per web node
RETRY_RE = re.compile(r"transaction (?:retried (\d+) times|given up after (\d+) retries) "
                      r"\(deadlock (\d+),")


def retry_lines(servers):
    """What the programs logged about retried transactions (lib/db.c: one
    line per transaction that needed retries), per server: a list of
    (retries, of which deadlocks, given up) in log order."""
    found = {}
    for srv in servers:
        found[srv.name] = []
        for line in srv.logs().splitlines():
            m = RETRY_RE.search(line)
            if m:
                found[srv.name].append((int(m.group(1) or m.group(2)), int(m.group(3)),
                                        bool(m.group(2))))
    return found


def retries_since(servers, before):
    """(deadlock retries, retried transactions, the most retries of one,
    transactions given up) logged since retry_lines() gave before."""
    new = []
    for name, lines in retry_lines(servers).items():
        new += lines[len(before.get(name, [])):]
    return (sum(d for _, d, _ in new), len(new), max([n for n, _, _ in new] or [0]),
            sum(1 for _, _, g in new if g))


def race(t, env, servers, tag, user, calls=CALLS, allowed=ALLOWED, delay=0.05):
    """calls concurrent chats for a new customer, spread round-robin over
    servers, of which exactly `allowed` fit its max_budget.  TAP names
    start with tag.  Returns the figures (a dict)."""
    max_tokens = 100
    body, n = H.exact_chat_body("fake-gpt", user, max_tokens, fake={"delay": delay})
    est = cost(n, max_tokens)
    max_budget = est * allowed + est / 2
    r = env.customer_new(user_id=user, max_budget=str(max_budget), server=servers[0])
    if not t.is_eq(r.status, 200, "%s: customer/new %s with max_budget %s" % (tag, user, max_budget)):
        return {}
    before = retry_lines(servers)
    up_before = sum(1 for q in env.upstream.requests() if (q.get("json") or {}).get("user") == user)

    def job(i):
        srv = servers[i % len(servers)]

        def call():
            t1 = time.monotonic()
            try:
                return srv.name, H.http_request(srv.port, "POST", "/chat/completions",
                                                body=body, timeout=120)
            except Exception as e:  # a transport error: when and where
                return srv.name, e, time.monotonic() - t1
        return call
    t0 = time.monotonic()
    results = H.parallel(calls, [job(i) for i in range(calls)])
    elapsed = time.monotonic() - t0

    transport = [r for r in results if isinstance(r[1], Exception)]
    answered = [r for r in results if not isinstance(r[1], Exception)]
    slowest = {}
    for name, r in answered:
        slowest[name] = max(slowest.get(name, 0.0), r.elapsed)
    statuses = collections.Counter(r.status for _, r in answered)
    by_node = collections.Counter(name for name, r in answered if r.status == 200)
    admitted_ids = {r.header("x-litellm-call-id") for _, r in answered if r.status == 200}
    admitted = statuses.get(200, 0)
    env.settle_ok("%s: books" % tag)
    row = env.customer_row(user) or {}
    spend = row.get("spend")
    ledger = env.ledger_sum(user)
    rows = env.sql("SELECT request_id, status, spend FROM spend_logs WHERE end_user = %s"
                   % H.sql_quote(user))
    ids = collections.Counter(rid for rid, _, _ in rows)
    success = {rid for rid, status, _ in rows if status == "success"}
    lost = len(admitted_ids - success)
    doubled = len(set(ids) - admitted_ids) + sum(k - 1 for k in ids.values() if k > 1)
    holds = int(env.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s"
                        % H.sql_quote(user))[0][0])
    upstream = sum(1 for q in env.upstream.requests()
                   if (q.get("json") or {}).get("user") == user) - up_before
    retries = retries_since(servers, before)
    figures = {"calls": calls, "admitted": admitted, "spend": spend, "max_budget": max_budget,
               "ledger": ledger, "lost": lost, "doubled": doubled,
               "deadlock_retries": retries[0], "retried_txns": retries[1],
               "given_up": retries[3], "elapsed": elapsed}

    t.diag("%s: %d calls over %s in %.1f s: statuses %s, admitted per node %s" % (
        tag, calls, ", ".join(s.name for s in servers), elapsed, dict(statuses), dict(by_node)))
    t.diag("%s figures: calls %d, admitted %d (exactly %d fit), spend %s vs max_budget %s, "
           "ledger sum %s, lost %d, doubled %d, deadlock retries %d (in %d transactions, "
           "at most %d retries in one, %d given up)" % (
               tag, calls, admitted, allowed, spend, max_budget, ledger, lost, doubled,
               retries[0], retries[1], retries[2], retries[3]))
    t.diag("%s: slowest answer per node %s" % (
        tag, ", ".join("%s %.2f s" % kv for kv in sorted(slowest.items()))))
    # The first error goes into the name too: a CI summary lists names only.
    first = (" (%d, first: %s after %.2f s: %s %s)" % (
        len(transport), transport[0][0], transport[0][2], type(transport[0][1]).__name__,
        str(transport[0][1])[:80])) if transport else ""
    t.is_eq(len(transport), 0, "%s: no transport errors%s" % (tag, first),
            *["%s after %.2f s: %s %s" % (name, after, type(e).__name__, e)
              for name, e, after in transport[:10]])
    t.is_eq(set(statuses) - {200, 429}, set(), "%s: every answer is 200 or 429" % tag,
            *[r.text[:300] for _, r in answered if r.status not in (200, 429)][:3])
    if H.ledger_mode() == "lease":
        t.diag("%s: lease mode: the slices other processes hold may refuse a call the budget "
               "had room for; at most (not exactly) %d admitted" % (tag, allowed))
        t.ok(0 < admitted <= allowed, "%s: at most floor(max_budget / cost) = %d admitted, "
             "and some" % (tag, allowed), "admitted %d" % admitted)
    else:
        t.is_eq(admitted, allowed, "%s: exactly floor(max_budget / cost) = %d admitted"
                % (tag, allowed))
    t.cmp_ok(spend, "<=", max_budget, "%s: spend never exceeds max_budget" % tag)
    t.is_eq(spend, ledger, "%s: spend == SUM(spend_logs.spend)" % tag)
    t.is_eq(spend, est * admitted, "%s: spend = admitted x cost" % tag)
    t.is_eq(lost, 0, "%s: every admitted call has its success row (lost)" % tag)
    t.is_eq(doubled, 0, "%s: no ledger row beyond the admitted calls (doubled)" % tag)
    t.is_eq((row.get("reserved"), holds), (Decimal(0), 0), "%s: nothing left reserved" % tag)
    t.is_eq(upstream, admitted, "%s: refused calls never reached the upstream" % tag)
    t.ok(len(by_node) == len(servers), "%s: every node admitted calls" % tag, dict(by_node))
    bad = [r for _, r in answered if r.status == 429 and not (
        r.error.get("type") == "budget_exceeded" and r.header("x-should-retry") == "false")]
    t.is_eq(len(bad), 0, "%s: every 429 is budget_exceeded with x-should-retry: false" % tag,
            *[repr(r) for r in bad[:3]])
    return figures


def blocked_across(t, env, a, b, tag, procs=PROCS):
    """/customer/block on a is seen by b's next calls, /customer/unblock on
    b by a's; as many calls as a node has chat processes, so that none of
    them answers from a stale view."""
    user = "%s-blocked" % tag
    r = env.customer_new(user_id=user, server=a)
    t.is_eq(r.status, 200, "%s: customer/new on %s" % (tag, a.name))
    r = env.chat(user=user, server=b)
    t.is_eq(r.status, 200, "%s: %s serves the customer" % (tag, b.name))
    r = env.request("POST", "/customer/block", body={"user_ids": [user]}, server=a)
    t.is_eq((r.status, (r.json or {}).get("blocked_users")), (200, [user]),
            "%s: /customer/block on %s" % (tag, a.name), r.text[:200])
    got = [env.chat(user=user, server=b) for _ in range(procs * 2)]
    t.is_eq([x.status for x in got], [403] * len(got),
            "%s: at once, every call on %s is refused 403" % (tag, b.name))
    env.check_error(got[0], 403, "permission_error",
                    message="User blocked from making LLM API Calls. User=%s" % user,
                    what="%s: blocked on %s" % (tag, b.name))
    r = env.customer_info(user, server=b)
    t.ok(r.status == 200 and (r.json or {}).get("blocked") is True,
         "%s: %s's /customer/info says blocked" % (tag, b.name), r.text[:200])
    r = env.request("POST", "/customer/unblock", body={"user_ids": [user]}, server=b)
    t.is_eq((r.status, (r.json or {}).get("unblocked_users")), (200, [user]),
            "%s: /customer/unblock on %s" % (tag, b.name), r.text[:200])
    got = [env.chat(user=user, server=a) for _ in range(procs * 2)]
    t.is_eq([x.status for x in got], [200] * len(got),
            "%s: at once, every call on %s is served again" % (tag, a.name))
    row = env.customer_row(user) or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (env.ledger_sum(user), Decimal(0)),
            "%s: the blocked customer's spend == its ledger sum, nothing reserved" % tag)


def main(t, env):
    cfg = env.write_config("main", env.config())
    a = env.start_lighttpd(cfg, name="lighttpd", max_procs=PROCS)
    missing = H.apache_missing("apache-fcgid")
    if missing:
        t.diag("scale-out: Apache cannot run here (%s): the second node is a lighttpd too"
               % missing)
        b = env.start_lighttpd(cfg, name="lighttpd-2", max_procs=PROCS)
    else:
        b = env.start_apache(cfg, shape="apache-fcgid", name="apache-fcgid", max_procs=PROCS)
    t.ok(a.port != b.port, "scale-out: two web nodes on ports %d and %d, one MariaDB"
         % (a.port, b.port))
    race(t, env, [a, b], "scale-out", "scale-out-customer")
    blocked_across(t, env, a, b, "scale-out")


if __name__ == "__main__":
    H.run(main)
