#!/usr/bin/env python3
"""failover: several deployments per model_name (SPEC 7.3, 4.4).

A model_name with a deployment that fails (connection refused, 500, 429,
timeout) and one that works, num_retries 2: every request succeeds, is
charged once, and its ledger row names the deployment that answered
(model_id = its litellm_params.model, api_base).  Requests are spread
over the deployments (shuffle).  With num_retries 0, a failing deployment
is not retried: a dead-only model answers 502 api_connection_error with no
charge and a failure row.
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost  # noqa: E402

N = 8


def dep(env, name, upstream_model, api_base, **params):
    return env.model(name, upstream_model=upstream_model, api_base=api_base, **params)


TRIED_BAD = [0, 0]  # requests that tried the failing deployment first, all requests


def run_group(t, env, model, user, bad_marker, good_id, good_base, what, stream=False, n=N):
    """n requests for model; all must succeed on the good deployment."""
    r = env.customer_new(user_id=user, max_budget=5)
    t.is_eq(r.status, 200, "customer/new %s" % user)
    env.upstream.reset()
    statuses, rows, elapsed = [], [], []
    for i in range(n):
        fake = {"usage": {"prompt_tokens": 10 + i, "completion_tokens": 5}}
        if stream:
            r = env.stream_chat(user=user, model=model, fake=fake)
            ok = r.status == 200 and bool(r.events) and r.events[-1]["done"]
        else:
            r = env.chat(user=user, model=model, fake=fake)
            ok = r.status == 200
        statuses.append(r.status if ok else (r.status, r.text[:200]))
        elapsed.append(r.elapsed)
        rows.append(env.ledger_row(r.header("x-litellm-call-id") or ""))
    t.is_eq(statuses, [200] * n, "%s: every request succeeds" % what)
    good = [x for x in rows if x and x["status"] == "success"]
    t.is_eq(len(good), n, "%s: a success row per request" % what)
    t.is_eq(sorted({(x["model_id"], x["api_base"]) for x in good}), [(good_id, good_base)],
            "%s: the ledger rows name the deployment that answered (model_id, api_base)" % what)
    want = sum((cost(10 + i, 5) for i in range(n)), Decimal(0))
    row = env.customer_row(user) or {}
    t.is_eq(row.get("spend"), want, "%s: each request charged once" % what)
    t.is_eq(row.get("spend"), env.ledger_sum(user), "%s: spend == ledger sum" % what)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing left reserved" % what)
    ledger = env.ledger_rows(user)
    t.is_eq(len(ledger), n, "%s: one ledger row per request, none per failed attempt" % what,
            "rows: %r" % [(x["status"], x["model_id"], x["spend"]) for x in ledger])
    if bad_marker is not None:
        reqs = env.upstream.requests()
        bad = [q for q in reqs if bad_marker in q["path"]]
        t.diag("%s: %d of %d requests tried the failing deployment first" % (what, len(bad), n))
        TRIED_BAD[0] += len(bad)
        TRIED_BAD[1] += n
        t.is_eq(len(reqs) - len(bad), n, "%s: the working deployment answered each request once"
                % what)
    return elapsed


def main(t, env):
    dead = "http://127.0.0.1:%d/v1" % H.refused_port()
    dead2 = "http://127.0.0.1:%d/v1" % H.refused_port()
    good = env.upstream.base + "/v1"
    base = env.upstream.base
    models = [
        dep(env, "fo-refused", "dead-upstream", dead),
        dep(env, "fo-refused", "live-upstream", good),
        dep(env, "fo-500", "bad-upstream", base + "/_status/500/v1"),
        dep(env, "fo-500", "good-upstream", good),
        dep(env, "fo-429", "busy-upstream", base + "/_status/429/v1"),
        dep(env, "fo-429", "free-upstream", good),
        dep(env, "fo-slow", "slow-upstream", base + "/_delay/4/v1", timeout=1),
        dep(env, "fo-slow", "fast-upstream", good),
        dep(env, "fo-all-dead", "dead-a", dead),
        dep(env, "fo-all-dead", "dead-b", dead2),
        dep(env, "fo-400", "reject-upstream", base + "/_status/400/v1"),
        dep(env, "fo-400", "other-upstream", good),
    ]
    cfg = env.write_config("main", env.config(models=models, litellm_settings={"num_retries": 2}))
    env.start_lighttpd(cfg, max_procs=2)

    run_group(t, env, "fo-refused", "fo-refused-u", None, "openai/live-upstream", good,
              "connection refused, then another deployment")
    run_group(t, env, "fo-500", "fo-500-u", "/_status/500/", "openai/good-upstream", good,
              "500, then another deployment")
    run_group(t, env, "fo-429", "fo-429-u", "/_status/429/", "openai/free-upstream", good,
              "429, then another deployment")
    run_group(t, env, "fo-500", "fo-500-s", "/_status/500/", "openai/good-upstream", good,
              "streamed: 500, then another deployment", stream=True)
    el = run_group(t, env, "fo-slow", "fo-slow-u", "/_delay/4/", "openai/fast-upstream", good,
                   "timeout, then another deployment", n=4)
    t.cmp_ok(max(el), "<", 3.5, "timeout then another deployment: bounded by the 1 s timeout")
    t.ok(0 < TRIED_BAD[0] < TRIED_BAD[1],
         "requests are spread over the deployments (shuffle): %d of %d tried the failing one "
         "first" % tuple(TRIED_BAD))

    # A 400 is the client's fault: not retried elsewhere.
    r = env.customer_new(user_id="fo-400-u", max_budget=5)
    env.upstream.reset()
    statuses = []
    for _ in range(N):
        r = env.chat(user="fo-400-u", model="fo-400")
        statuses.append(r.status)
    reqs = env.upstream.requests()
    t.is_eq(len(reqs), N, "400: never retried on another deployment (one upstream call each)")
    t.is_eq(statuses.count(400), len([q for q in reqs if "/_status/400/" in q["path"]]),
            "400: relayed to the client whenever the rejecting deployment was picked",
            "statuses %r" % statuses)
    t.is_eq(set(statuses) - {200, 400}, set(), "400: nothing but 200 and 400")

    # Every deployment dead: 502 once the retries are spent, no charge.
    r = env.customer_new(user_id="fo-dead-u", max_budget=5)
    r = env.chat(user="fo-dead-u", model="fo-all-dead")
    env.check_error(r, 502, "api_connection_error", what="all deployments dead")
    lr = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(lr and (lr["status"], lr["spend"]), ("failure", Decimal(0)),
            "all deployments dead: one failure row, spend 0")
    t.is_eq(len(env.ledger_rows("fo-dead-u")), 1, "all deployments dead: a single ledger row")
    row = env.customer_row("fo-dead-u") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (Decimal(0), Decimal(0)),
            "all deployments dead: no charge, nothing reserved")

    # num_retries 0: no second try.
    models0 = [dep(env, "only-dead", "dead-only", dead),
               dep(env, "half-dead", "dead-half", dead),
               dep(env, "half-dead", "live-half", good)]
    cfg0 = env.write_config("no-retries", env.config(models=models0,
                                                     litellm_settings={"num_retries": 0}))
    srv0 = env.start_lighttpd(cfg0, name="no-retries", max_procs=1)
    r = env.customer_new(user_id="fo-nr-u", max_budget=5, server=srv0)
    env.upstream.reset()
    r = env.chat(user="fo-nr-u", model="only-dead", server=srv0)
    env.check_error(r, 502, "api_connection_error", what="num_retries 0, dead deployment")
    lr = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(lr is not None, "num_retries 0, dead: a ledger row"):
        t.is_eq((lr["status"], lr["spend"], lr["model_id"]), ("failure", Decimal(0),
                                                             "openai/dead-only"),
                "num_retries 0, dead: failure row naming the deployment, spend 0")
        t.is_eq(lr["api_base"], dead, "num_retries 0, dead: the failure row's api_base is the "
                "deployment's")
    row = env.customer_row("fo-nr-u") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (Decimal(0), Decimal(0)),
            "num_retries 0, dead: no charge, nothing reserved")
    statuses = [env.chat(user="fo-nr-u", model="half-dead", server=srv0).status
                for _ in range(16)]
    t.is_eq(set(statuses), {200, 502},
            "num_retries 0, one of two deployments dead: no retry, so some requests fail "
            "and some succeed (shuffle)", "statuses %r" % statuses)
    row = env.customer_row("fo-nr-u") or {}
    t.is_eq(row.get("spend"), env.ledger_sum("fo-nr-u"), "num_retries 0: spend == ledger sum")
    t.is_eq(row.get("spend"), cost(10, 20) * statuses.count(200),
            "num_retries 0: only the successes are charged")


if __name__ == "__main__":
    H.run(main)
