#!/usr/bin/env python3
"""seed_flow: the flows of seeds/customers.md end to end (SPEC 4, 8, 8.1).

Chat with `user` creates and charges the customer exactly; /customer/info
returns the SPEC 8.1 object; customer id resolution order; chats without a
customer; response headers; max_budget "0" refuses; pricing tiers and the
default tier are enforced; blocked customers get 403; health endpoints;
the demo config's mock models; the flow's endpoints each served by their
own program.
"""

import hashlib
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
KEY_HASH = hashlib.sha256(H.MASTER_KEY.encode()).hexdigest()
CUSTOMER_KEYS = {"user_id", "blocked", "alias", "spend", "allowed_model_region",
                 "default_model", "budget_id", "litellm_budget_table"}
BUDGET_KEYS = {"budget_id", "max_budget", "soft_budget", "max_parallel_requests",
               "tpm_limit", "rpm_limit", "model_max_budget", "budget_duration",
               "budget_reset_at"}
EXCEEDED_RE = re.compile(r"^ExceededBudget: End User=(.*) over budget\. Spend=(\S+), Budget=(\S+)$")


def check_invariant(t, env, user_id, what):
    row = env.customer_row(user_id)
    if not t.ok(row is not None, "%s: customer row exists" % what):
        return
    t.is_eq(row["spend"], env.ledger_sum(user_id), "%s: spend == SUM(spend_logs.spend)" % what)
    t.is_eq(row["reserved"], Decimal(0), "%s: nothing left reserved" % what)


def own_programs(t, env):
    """The endpoints of the flow each reach a process of their own program
    (etc/lighttpd.conf.in): the first request of each on a fresh server is
    the first of the process that serves it, which logs "config loaded"
    under the request's id.  Sent to any other program, each would be a
    404 (tests/e2e/plain_cgi.py)."""
    srv = env.server
    r = env.budget_new(budget_id="own-tier", max_budget=1)
    t.is_eq(r.status, 200, "/budget/new: 200", r.text[:200])
    env.check_served_by(srv, r, "budget_new", "/budget/new")
    r = env.customer_new(user_id="own-1", budget_id="own-tier")
    t.is_eq(r.status, 200, "/customer/new: 200", r.text[:200])
    env.check_served_by(srv, r, "customer_new", "/customer/new")
    r = env.chat(user="own-1")
    t.is_eq(r.status, 200, "/chat/completions: 200", r.text[:200])
    env.check_served_by(srv, r, "chat_completions", "/chat/completions")
    r = env.customer_info("own-1")
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, "own-1"), "/customer/info: 200",
            r.text[:200])
    env.check_served_by(srv, r, "customer_info", "/customer/info")
    # The rest of each resource stays with its program.
    r = env.request("POST", "/customer/update", body={"user_id": "own-1", "alias": "own"})
    t.is_eq(r.status, 200, "/customer/update: 200", r.text[:200])
    env.check_served_by(srv, r, "customer", "/customer/update")
    r = env.request("POST", "/budget/update", body={"budget_id": "own-tier", "max_budget": 2})
    t.is_eq(r.status, 200, "/budget/update: 200", r.text[:200])
    env.check_served_by(srv, r, "budget", "/budget/update")


def health(t, env):
    for path in ("/health/liveliness", "/health/liveness"):
        r = env.request("GET", path, key=None)
        t.is_eq(r.status, 200, "GET %s without a key: 200" % path)
        t.is_eq(r.json, "I'm alive!", "GET %s says I'm alive!" % path)
    r = env.request("GET", "/health/readiness", key=None)
    t.is_eq(r.status, 200, "readiness: 200")
    t.is_eq((r.json or {}).get("status"), "healthy", "readiness: status healthy")
    t.is_eq((r.json or {}).get("db"), "connected", "readiness: db connected")
    t.like(r.header("content-type", ""), r"^application/json", "readiness: JSON content type")


def first_chat(t, env):
    up = env.upstream
    up.reset()
    r = env.chat(user="ishaan3", content="what time is it",
                 fake={"usage": {"prompt_tokens": 13, "completion_tokens": 17}})
    t.is_eq(r.status, 200, "first chat for a new customer: 200")
    expected = cost(13, 17)
    t.is_eq(dec(r.header("x-litellm-response-cost")), expected,
            "x-litellm-response-cost = 13 x in + 17 x out")
    call_id = r.header("x-litellm-call-id")
    t.like(call_id, UUID_RE, "x-litellm-call-id is a UUID")
    t.like(r.header("content-type", ""), r"^application/json", "chat: JSON content type")
    body = r.json or {}
    t.like(body.get("id", ""), r"^chatcmpl-fake-", "the upstream's body is relayed")
    t.is_eq(body.get("usage"), {"prompt_tokens": 13, "completion_tokens": 17, "total_tokens": 30},
            "the upstream's usage is relayed unchanged")

    reqs = up.requests()
    t.is_eq(len(reqs), 1, "the upstream got one request")
    if reqs:
        q = reqs[0]
        t.is_eq(q["path"], "/v1/chat/completions", "upstream path = api_base + /chat/completions")
        t.is_eq(q["headers"].get("authorization"), "Bearer " + H.UPSTREAM_KEY,
                "upstream gets the deployment's api_key, not the client's")
        js = q["json"] or {}
        t.is_eq(js.get("model"), "fake-gpt", "upstream body: model = the upstream name")
        t.is_eq(js.get("user"), "ishaan3", "upstream body: user passed through")
        t.is_eq(js.get("messages"), [{"role": "user", "content": "what time is it"}],
                "upstream body: messages unchanged")
        t.ok("fake" in js, "upstream body: unknown fields passed through")

    row = env.ledger_row(call_id or "")
    if t.ok(row is not None, "spend_logs row whose request_id = x-litellm-call-id"):
        t.is_eq(row["end_user"], "ishaan3", "ledger: end_user")
        t.is_eq(row["status"], "success", "ledger: status success")
        t.is_eq(row["spend"], expected, "ledger: spend exact")
        t.is_eq((row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]),
                ("13", "17", "30"), "ledger: token counts")
        t.is_eq(row["model"], "fake-gpt", "ledger: model = the client's model name")
        t.is_eq(row["api_key"], KEY_HASH, "ledger: api_key = sha256 hex of the key used")

    r = env.customer_info("ishaan3")
    t.is_eq(r.status, 200, "customer/info: 200")
    info = r.json if isinstance(r.json, dict) else {}
    t.ok(CUSTOMER_KEYS <= set(info), "customer/info: SPEC 8.1 keys",
         "missing: %s" % sorted(CUSTOMER_KEYS - set(info)))
    t.is_eq(info.get("user_id"), "ishaan3", "customer/info: user_id")
    t.ok(info.get("blocked") is False, "customer/info: blocked is JSON false",
         "got %r" % (info.get("blocked"),))
    for k in ("alias", "allowed_model_region", "default_model", "budget_id",
              "litellm_budget_table"):
        t.ok(k in info and info[k] is None, "customer/info: %s is null" % k,
             "got %r" % (info.get(k),))
    t.ok(isinstance(info.get("spend"), (int, Decimal)) and not isinstance(info.get("spend"), bool),
         "customer/info: spend is a JSON number", "got %r" % (info.get("spend"),))
    t.is_eq(dec(info.get("spend")), expected, "customer/info: spend = the cost of the call")
    if "reserved" in info:
        t.is_eq(dec(info["reserved"]), Decimal(0), "customer/info: reserved 0 when idle")
    r2 = env.customer_info("ishaan3", path="/end_user/info")
    t.is_eq((r2.status, (r2.json or {}).get("user_id")), (200, "ishaan3"),
            "/end_user/info is /customer/info")

    r = env.chat(user="ishaan3", fake={"usage": {"prompt_tokens": 100, "completion_tokens": 50}},
                 path="/v1/chat/completions")
    t.is_eq(r.status, 200, "second chat (via /v1/chat/completions): 200")
    expected += cost(100, 50)
    r = env.customer_info("ishaan3")
    t.is_eq(dec((r.json or {}).get("spend")), expected, "second chat adds to the spend")
    check_invariant(t, env, "ishaan3", "after two chats")


def resolution_order(t, env):
    full_headers = {"x-litellm-customer-id": "hdr-customer", "x-litellm-end-user-id": "hdr-end-user"}
    cases = [
        ("x-litellm-customer-id wins", full_headers, "body-user", "meta-user", "hdr-customer"),
        ("then x-litellm-end-user-id", {"x-litellm-end-user-id": "hdr-end-user"}, "body-user",
         "meta-user", "hdr-end-user"),
        ("then body user", {}, "body-user", "meta-user", "body-user"),
        ("then metadata.user_id", {}, None, "meta-user", "meta-user"),
        ("blank header skipped", {"x-litellm-customer-id": "   "}, "body-user2", None, "body-user2"),
        ("empty user skipped", {}, "", "meta-user2", "meta-user2"),
        ("numeric user becomes its decimal string", {}, 12345, None, "12345"),
    ]
    for name, headers, user, meta, want in cases:
        extra = {}
        if meta is not None:
            extra["metadata"] = {"user_id": meta}
        r = env.chat(user=user, headers=headers, extra=extra)
        if not t.is_eq(r.status, 200, "id resolution (%s): 200" % name):
            continue
        row = env.ledger_row(r.header("x-litellm-call-id") or "")
        t.is_eq(row and row["end_user"], want, "id resolution: %s" % name)
        t.ok(env.customer_row(want) is not None, "id resolution (%s): customer %s created" % (name, want))


def no_customer(t, env):
    before = env.sql("SELECT COUNT(*) FROM customers")[0][0]
    r = env.chat(user=None, fake={"usage": {"prompt_tokens": 5, "completion_tokens": 6}})
    t.is_eq(r.status, 200, "chat without a customer id: 200")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(row is not None, "chat without a customer id: ledger row written"):
        t.is_eq(row["end_user"], "", "chat without a customer id: end_user ''")
        t.is_eq(row["spend"], cost(5, 6), "chat without a customer id: spend recorded")
    t.is_eq(dec(r.header("x-litellm-response-cost")), cost(5, 6),
            "chat without a customer id: cost header")
    t.is_eq(env.sql("SELECT COUNT(*) FROM customers")[0][0], before,
            "chat without a customer id creates no customer")


def zero_budget(t, env):
    r = env.customer_new(user_id="my-customer-id", max_budget="0")
    t.is_eq(r.status, 200, "customer/new with max_budget \"0\" (numeric string): 200")
    info = r.json if isinstance(r.json, dict) else {}
    t.is_eq(info.get("user_id"), "my-customer-id", "customer/new returns the customer object")
    bt = info.get("litellm_budget_table") or {}
    t.ok(BUDGET_KEYS <= set(bt), "customer/new: litellm_budget_table has the SPEC 8.1 keys",
         "got %r" % (bt,))
    t.is_eq(dec(bt.get("max_budget")), Decimal(0), "customer/new: max_budget 0 stored")

    env.upstream.reset()
    r = env.chat(user="my-customer-id", model="fake-gpt",
                 content="What's the weather like in Boston today?")
    env.check_error(r, 429, "budget_exceeded", message=EXCEEDED_RE, param=None,
                    what="max_budget 0 refuses")
    m = EXCEEDED_RE.match(r.error.get("message") or "")
    if m:
        t.is_eq(m.group(1), "my-customer-id", "budget message names the customer")
        t.is_eq((Decimal(m.group(2)), Decimal(m.group(3))), (Decimal(0), Decimal(0)),
                "budget message: Spend=0, Budget=0")
    t.is_eq(r.header("x-should-retry"), "false", "429 budget_exceeded carries x-should-retry: false")
    t.is_eq(env.upstream.requests(), [], "a refused request never reaches the upstream")
    row = env.customer_row("my-customer-id")
    t.is_eq((row["spend"], row["reserved"]) if row else None, (Decimal(0), Decimal(0)),
            "refused: nothing charged, nothing reserved")


def tiers(t, env):
    # The seed: a $4 tier, a customer on it, a call that works.
    r = env.budget_new(budget_id="my-free-tier", max_budget=4)
    t.is_eq(r.status, 200, "budget/new my-free-tier: 200")
    t.is_eq((r.json or {}).get("budget_id"), "my-free-tier", "budget/new returns the budget row")
    t.is_eq(dec((r.json or {}).get("max_budget")), Decimal(4), "budget/new: max_budget 4")
    r = env.customer_new(user_id="tier-customer", budget_id="my-free-tier")
    t.is_eq(r.status, 200, "customer/new with budget_id: 200")
    info = r.json if isinstance(r.json, dict) else {}
    t.is_eq(info.get("budget_id"), "my-free-tier", "customer/new: budget_id set")
    t.is_eq(dec((info.get("litellm_budget_table") or {}).get("max_budget")), Decimal(4),
            "customer/new: litellm_budget_table is the tier")
    r = env.chat(user="tier-customer", model="fake-gpt-2")
    t.is_eq(r.status, 200, "a customer on my-free-tier can chat")

    # A tier that allows exactly three calls whose estimate equals their cost.
    body, n = H.exact_chat_body("fake-gpt", "tier3-a", max_tokens=50)
    est = cost(n, 50)
    r = env.budget_new(budget_id="three-calls", max_budget=str(3 * est))
    t.is_eq(r.status, 200, "budget/new three-calls (max_budget %s): 200" % (3 * est))
    for user in ("tier3-a", "tier3-b"):
        r = env.customer_new(user_id=user, budget_id="three-calls")
        t.is_eq(r.status, 200, "customer/new %s on three-calls: 200" % user)
    statuses = []
    last = None
    for _ in range(6):
        last = env.request("POST", "/chat/completions", body=body)
        statuses.append(last.status)
        if last.status != 200:
            break
    t.is_eq(statuses, [200, 200, 200, 429], "tier enforced: three calls, then 429")
    env.check_error(last, 429, "budget_exceeded", message=EXCEEDED_RE, what="over the tier")
    t.is_eq(last.header("x-should-retry"), "false", "over the tier: x-should-retry false")
    m = EXCEEDED_RE.match(last.error.get("message") or "")
    if m:
        t.is_eq((Decimal(m.group(2)), Decimal(m.group(3))), (3 * est, 3 * est),
                "over the tier: message shows Spend and Budget exactly")
    row = env.customer_row("tier3-a")
    t.is_eq(row and row["spend"], 3 * est, "tier: spend = three calls")
    t.cmp_ok(row and row["spend"], "<=", 3 * est, "tier: spend never exceeds max_budget")
    check_invariant(t, env, "tier3-a", "tier")
    body_b, n_b = H.exact_chat_body("fake-gpt", "tier3-b", max_tokens=50)
    r = env.request("POST", "/chat/completions", body=body_b)
    t.is_eq(r.status, 200, "the tier's limit is per customer: another customer on it still chats")
    r = env.customer_info("tier3-a")
    bt = (r.json or {}).get("litellm_budget_table") or {}
    t.is_eq((bt.get("budget_id"), dec(bt.get("max_budget"))), ("three-calls", 3 * est),
            "customer/info shows the tier in litellm_budget_table")


def blocked(t, env):
    r = env.customer_new(user_id="blocked-1", blocked=True)
    t.is_eq(r.status, 200, "customer/new blocked: 200")
    t.ok((r.json or {}).get("blocked") is True, "customer/new: blocked true")
    env.upstream.reset()
    r = env.chat(user="blocked-1")
    env.check_error(r, 403, "permission_error",
                    message="User blocked from making LLM API Calls. User=blocked-1",
                    what="blocked customer")
    t.is_eq(env.upstream.requests(), [], "blocked: the upstream got nothing")
    row = env.customer_row("blocked-1")
    t.is_eq(row and row["spend"], Decimal(0), "blocked: nothing charged")


def default_tier(t, env):
    body, n = H.exact_chat_body("fake-gpt", "dt-new-1", max_tokens=40)
    est = cost(n, 40)
    r = env.budget_new(budget_id="default-tier", max_budget=str(2 * est))
    t.is_eq(r.status, 200, "budget/new default-tier: 200")
    cfg = env.write_config("default-tier", env.config(
        litellm_settings={"max_end_user_budget_id": "default-tier"}))
    srv = env.start_lighttpd(cfg, name="default-tier", max_procs=2)
    statuses = []
    for _ in range(4):
        r = env.request("POST", "/chat/completions", body=body, server=srv)
        statuses.append(r.status)
        if r.status != 200:
            break
    t.is_eq(statuses, [200, 200, 429], "default tier applies to a new customer: two calls, then 429")
    if statuses and statuses[-1] == 429:
        env.check_error(r, 429, "budget_exceeded", message=EXCEEDED_RE, what="default tier")
    r = env.customer_info("dt-new-1", server=srv)
    info = r.json if isinstance(r.json, dict) else {}
    t.is_eq(info.get("budget_id"), "default-tier", "the new customer got the default tier")
    t.is_eq(dec(info.get("spend")), 2 * est, "default tier: spend = two calls")
    check_invariant(t, env, "dt-new-1", "default tier")


def demo_config(t, env):
    if not os.path.exists(H.DEMO_CONFIG):
        t.fail("etc/config.demo.yaml exists")
        return
    srv = env.start_lighttpd(H.DEMO_CONFIG, name="demo", max_procs=1)
    prices = {"azure-gpt-3.5": (Decimal("0.0000005"), Decimal("0.0000015")),
              "gpt-3.5-turbo": (Decimal("0.0000005"), Decimal("0.0000015")),
              "mistral": (Decimal("0.00000006"), Decimal("0.00000018"))}
    total = Decimal(0)
    for model, (pin, pout) in prices.items():
        r = env.chat(user="demo-user", model=model, content="what time is it", server=srv)
        if not t.is_eq(r.status, 200, "demo config: %s answers" % model):
            t.diag(r.text[:500])
            continue
        usage = (r.json or {}).get("usage") or {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        t.ok(isinstance(pt, int) and isinstance(ct, int) and pt > 0 and ct > 0,
             "demo %s: mock usage counted" % model, "usage %r" % (usage,))
        if isinstance(pt, int) and isinstance(ct, int):
            want = cost(pt, ct, pin, pout)
            t.is_eq(dec(r.header("x-litellm-response-cost")), want,
                    "demo %s: priced like its base_model" % model)
            total += want
        if model == "gpt-3.5-turbo":
            msg = (((r.json or {}).get("choices") or [{}])[0].get("message") or {}).get("content")
            t.like(msg or "", "mock answer", "demo gpt-3.5-turbo: mock_response")
    r = env.customer_info("demo-user", server=srv)
    t.is_eq(dec((r.json or {}).get("spend")), total, "demo: customer spend = sum of the calls")

    # The seed's bodies exactly as its page writes them, "# 👈" notes and
    # trailing comma included: pasted as they are, they must work.
    r = env.request("POST", "/budget/new", server=srv,
                    body='{\n"budget_id": "seed-free-tier",\n"max_budget": 4\n}\n')
    t.is_eq(r.status, 200, "seed: /budget/new body as written")
    r = env.request("POST", "/customer/new", server=srv,
                    body='{\n"user_id" : "seed-zero",\n'
                         '"max_budget": "0", # \U0001f448 CAN BE FLOAT\n}')
    t.is_eq(r.status, 200, "seed: /customer/new body with its '# 👈' note")
    r = env.request("POST", "/chat/completions", server=srv,
                    body='{\n"model": "mistral",\n"messages": [\n{\n"role": "user",\n'
                         '"content": "What\'s the weather like in Boston today?"\n}\n],\n'
                         '"user": "seed-zero"\n}\n')
    t.is_eq(r.status, 429, "seed: max_budget \"0\" refuses the next chat")
    r = env.request("POST", "/customer/new", server=srv,
                    body='{\n"user_id": "seed-tier",\n'
                         '"budget_id": "seed-free-tier" # \U0001f448 KEY CHANGE\n}\n')
    t.is_eq(r.status, 200, "seed: /customer/new with budget_id and its note")
    t.is_eq(((r.json or {}).get("litellm_budget_table") or {}).get("budget_id"),
            "seed-free-tier", "seed: the customer is on the tier")
    r = env.request("POST", "/chat/completions", server=srv,
                    body='{\n"model": "azure-gpt-3.5",\n"user": "seed-hash", '
                         '# \U0001f448 CUSTOMER ID\n"messages": [\n{\n"role": "user",\n'
                         '"content": "what time is it"\n}\n]\n}')
    t.is_eq(r.status, 200, "seed: chat body with its '# 👈 CUSTOMER ID' note")
    r = env.request("POST", "/customer/new", server=srv,
                    body='{"user_id": "seed-bad" # note "alias": "x"}')
    t.is_eq(r.status, 400, "a '#' note never hides a broken body")


def main(t, env):
    cfg = env.write_config("main", env.config())
    env.start_lighttpd(cfg)
    own_programs(t, env)
    health(t, env)
    first_chat(t, env)
    resolution_order(t, env)
    no_customer(t, env)
    zero_budget(t, env)
    tiers(t, env)
    blocked(t, env)
    default_tier(t, env)
    demo_config(t, env)


if __name__ == "__main__":
    H.run(main)
