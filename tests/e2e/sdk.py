#!/usr/bin/env python3
"""sdk: tollgate through the official `openai` npm package (pinned in
tests/sdk/package.json and package-lock.json).

The servers are started here; tests/sdk/sdk-test.cjs does the calls with
the SDK (base URL and key from the environment) and reports what it saw as
JSON; the checks and the TAP are here:
  * a non-streamed and a streamed completion with `user`: the customer's
    spend grows by the computed cost of each (read from /customer/info
    before and after by the node side), the ledger rows match;
  * a streamed completion with include_usage: usage.cost is the charge;
  * client.models.list() lists the configured model names;
  * a customer over budget: the SDK raises its 429 error (APIError /
    RateLimitError, type budget_exceeded) after exactly one request, since
    tollgate sends x-should-retry: false and the SDK (maxRetries 2) obeys;
    the upstream saw nothing and nothing was charged.

node_modules: tests/sdk/node_modules in the source tree (script/test runs
`npm ci` there), else TG_SDK_NODE_MODULES, else the build tree's
tests/sdk/node_modules, installed there with `npm ci` when missing.
"""

import json
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

SDK_SRC = os.path.join(H.SRCDIR, "tests", "sdk")
SCRIPT = os.path.join(SDK_SRC, "sdk-test.cjs")
PINNED = "5.23.2"


def find_node():
    for name in ("node", "nodejs"):
        p = shutil.which(name)
        if p:
            return p
    raise H.SetupError("node not found (install nodejs and npm; script/test does)")


def node_modules():
    """A node_modules holding the pinned openai package."""
    return H.npm_modules(SDK_SRC, "openai", "TG_SDK_NODE_MODULES")


def main(t, env):
    node = find_node()
    mods = node_modules()
    with open(os.path.join(mods, "openai", "package.json")) as f:
        version = json.load(f).get("version")
    t.is_eq(version, PINNED, "the pinned openai package is installed (%s)" % mods)

    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=2)
    user, over = "sdk-user", "sdk-over"
    r = env.customer_new(user_id=user, max_budget=10)
    t.is_eq(r.status, 200, "customer/new %s" % user)
    r = env.customer_new(user_id=over, max_budget=0)
    t.is_eq(r.status, 200, "customer/new %s (max_budget 0)" % over)
    env.upstream.reset()

    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.tmp,
               "NODE_PATH": mods, "TG_BASE_URL": "http://127.0.0.1:%d" % srv.port,
               "TG_API_KEY": H.MASTER_KEY, "TG_USER": user, "TG_OVER_USER": over,
               "TG_MODEL": "fake-gpt"}
    p = subprocess.run([node, SCRIPT], env=run_env, cwd=env.tmp, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    out_text = p.stdout.decode("utf-8", "replace")
    try:
        res = json.loads(out_text.strip().splitlines()[-1], parse_float=Decimal)
    except (ValueError, IndexError):
        res = None
    if not t.ok(p.returncode == 0 and isinstance(res, dict), "node ran sdk-test.cjs",
                "exit %d" % p.returncode, "stdout: %s" % out_text[-2000:],
                "stderr: %s" % p.stderr.decode("utf-8", "replace")[-2000:]):
        return
    t.is_eq(res.get("errors"), [], "the SDK calls raised nothing unexpected")

    # non-streamed
    ns = res.get("nonstream") or {}
    want1 = cost(17, 23)
    t.is_eq(ns.get("object"), "chat.completion", "SDK: non-streamed completion parsed")
    t.is_eq(ns.get("content"), "Hello from the fake upstream.", "SDK: content")
    t.is_eq(dec(ns.get("after")) - dec(ns.get("before") or 0) if ns.get("after") else None, want1,
            "SDK: non-streamed: spend grows by the computed cost")
    t.is_eq(dec(ns.get("cost_header")), want1, "SDK: x-litellm-response-cost readable")
    row = env.ledger_row(ns.get("call_id") or "")
    t.is_eq(row and (row["end_user"], row["status"], row["spend"]), (user, "success", want1),
            "SDK: non-streamed: ledger row for the call id")

    # streamed
    st = res.get("stream") or {}
    want2 = cost(19, 29)
    t.is_eq(st.get("text"), "tok1 tok2 tok3", "SDK: streamed text")
    t.is_eq(st.get("usage_chunks"), 0, "SDK: no usage chunk when not asked")
    t.like(st.get("content_type") or "", r"^text/event-stream", "SDK: stream content type")
    t.is_eq(dec(st.get("after")) - dec(st.get("before")) if st.get("after") and st.get("before")
            else None, want2, "SDK: streamed: spend grows by the computed cost")
    row = env.ledger_row(st.get("call_id") or "")
    t.is_eq(row and (row["end_user"], row["status"], row["spend"]), (user, "success", want2),
            "SDK: streamed: ledger row for the call id")

    su = (res.get("stream_usage") or {}).get("usage") or {}
    t.is_eq((su.get("prompt_tokens"), su.get("completion_tokens")), (7, 5),
            "SDK: include_usage: the usage chunk is delivered")
    t.is_eq(dec(su.get("cost")) if su.get("cost") is not None else None, cost(7, 5),
            "SDK: include_usage: usage.cost = the charge")
    crow = env.customer_row(user) or {}
    t.is_eq(crow.get("spend"), want1 + want2 + cost(7, 5), "SDK: customer spend = the three calls")
    t.is_eq(crow.get("spend"), env.ledger_sum(user), "SDK: spend == ledger sum")

    # models
    models = res.get("models") or []
    t.is_eq(sorted(m.get("id") for m in models), ["fake-gpt", "fake-gpt-2"],
            "SDK: client.models.list() lists the model names")
    t.ok(all(m.get("object") == "model" and m.get("owned_by") == "openai" for m in models),
         "SDK: models have object model, owned_by openai", "got %r" % (models,))

    # over budget
    ob = res.get("over_budget") or {}
    t.diag("over budget, as the SDK saw it: %s" % json.dumps(ob, default=str))
    t.ok(ob.get("raised") is True, "SDK: over budget: the call raises")
    t.ok(ob.get("is_api_error") is True and ob.get("status") == 429,
         "SDK: over budget: APIError with status 429", "got %r" % (ob,))
    t.ok(ob.get("is_rate_limit_error") is True, "SDK: over budget: RateLimitError (%s)"
         % ob.get("name"))
    t.is_eq((ob.get("error") or {}).get("type"), "budget_exceeded",
            "SDK: over budget: error.type budget_exceeded")
    t.like((ob.get("error") or {}).get("message") or "", r"^ExceededBudget: End User=sdk-over ",
           "SDK: over budget: error.message")
    t.is_eq(ob.get("should_retry"), "false", "SDK: over budget: x-should-retry false seen")
    t.is_eq(ob.get("requests"), 1, "SDK: over budget: exactly one request (maxRetries 2 not used)")
    t.is_eq([q for q in env.upstream.requests() if (q.get("json") or {}).get("user") == over], [],
            "SDK: over budget: the upstream saw nothing")
    t.is_eq((dec(ob.get("before")), dec(ob.get("after"))), (Decimal(0), Decimal(0)),
            "SDK: over budget: spend stays 0")
    t.is_eq([(x["status"], x["spend"]) for x in env.ledger_rows(over)], [],
            "SDK: over budget: no spend_logs row for the customer (refused before any call, "
            "no retry)")


if __name__ == "__main__":
    H.run(main)
