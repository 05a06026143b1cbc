#!/usr/bin/env python3
"""messages: Anthropic's Messages API through the meter, end to end.

POST /v1/messages (Claude Code's and the Anthropic SDKs' API) to anthropic/
deployments on the fake upstream, which speaks the Messages API and
requires x-api-key and anthropic-version:

1. The seed's flow, served by the messages program (etc/lighttpd.conf.in
   routes /v1/messages to it): a customer named by x-litellm-customer-id (then
   x-litellm-end-user-id, then metadata.user_id) is created and charged
   exactly the fake's usage, plain and streamed, with a virtual key sent
   as x-api-key or as a Bearer token; the upstream gets the deployment's
   key as x-api-key, anthropic-version 2023-06-01, the client's
   anthropic-beta, and the body with only "model" changed; the ledger row
   has call_type anthropic_messages and the message's id.
2. Every price dimension, against costs worked out by hand at Claude
   Sonnet 4.5's shipped prices: cache reads, cache writes for 5 minutes
   and for 1 hour (usage.cache_creation), web searches, the long-context
   tier above 200k prompt tokens; a stream's message_delta counts replace
   the message_start's, never add to them (three cumulative deltas).
3. The hold at the exact boundary of a budget: the body's bytes (and the
   tools' overhead) at the dearest input-side rate (a 1-hour cache write)
   plus max_tokens at the output rate, plus max_uses web searches:
   admitted at max_budget = hold, refused 1e-10 USD below, with 429
   rate_limit_error in Anthropic's envelope, x-should-retry: false, and
   nothing sent upstream.
4. Errors in Anthropic's envelope: bad input (no max_tokens, no messages),
   a wrong key, a key's models; the upstream's own 400/429 relayed; a 529
   retried on another deployment (charged once).
5. Cut streams: a connection dropped mid-block, a stream without
   message_stop, an error event: failure rows charged what was relayed,
   never more than the hold; the client gets an error event, never a
   message_stop.
6. count_tokens: relayed to the anthropic/ deployment, uncharged; a model
   without one is 400.
7. 50 parallel streamed calls against a budget: never exceeded, spend =
   the ledger's sum, nothing left reserved.
8. /spend/logs?request_id= with the message's id (msg_...).
9. rpm_limit counts /v1/messages beside chat (429 rate_limit_error in
   Anthropic's envelope); the webhook's spend_tracked carries the call's
   cost and call_type anthropic_messages.
"""

import json
import os
import sys
import threading
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal  # noqa: E402

UNIT = Decimal("1e-10")
# Claude Sonnet 4.5 in etc/model_prices.json (LiteLLM's map), USD per token.
IN = Decimal("3e-06")
OUT = Decimal("1.5e-05")
READ = Decimal("3e-07")
WRITE_5M = Decimal("3.75e-06")
WRITE_1H = Decimal("6e-06")
IN_200K = Decimal("6e-06")
OUT_200K = Decimal("2.25e-05")
READ_200K = Decimal("6e-07")
SEARCH = Decimal("0.01")
TOOLS_OVERHEAD = 1024
UPSTREAM_MODEL = "claude-sonnet-4-5-20250929"


def sonnet(name, api_base):
    return {"model_name": name,
            "litellm_params": {"model": "anthropic/" + UPSTREAM_MODEL, "api_base": api_base,
                               "api_key": H.UPSTREAM_KEY},
            "model_info": {"base_model": "claude-sonnet-4-5"}}


def body(user=None, model="claude", fake=None, stream=False, max_tokens=100, extra=None,
         text="hello"):
    b = {"model": model, "max_tokens": max_tokens,
         "messages": [{"role": "user", "content": text}]}
    if user is not None:
        b["metadata"] = {"user_id": user}
    if fake is not None:
        b["fake"] = fake
    if stream:
        b["stream"] = True
    b.update(extra or {})
    return b


def post(env, b, headers=None, key=H._DEFAULT_KEY, path="/v1/messages"):
    if b.get("stream"):
        return env.stream_chat(path=path, body=b, headers=headers, key=key)
    return env.request("POST", path, body=b, headers=headers, key=key)


def call_id(r):
    return r.header("x-litellm-call-id") or ""


def hold(b, tools=False, searches=0):
    """The hold of body b (as sent: json.dumps) on claude-sonnet-4-5."""
    prompt = len(json.dumps(b).encode()) + (TOOLS_OVERHEAD if tools else 0)
    return prompt * WRITE_1H + b["max_tokens"] * OUT + searches * SEARCH


def ceil10(x):
    """x rounded up to 1e-10 USD, as the ledger rounds a charge."""
    return (x / UNIT).to_integral_value(rounding="ROUND_CEILING") * UNIT


def anth_error(r):
    js = r.json if isinstance(r.json, dict) else {}
    return js.get("error") if js.get("type") == "error" else None


def types(r):
    return [(e["json"] or {}).get("type") for e in r.events]


def seed_flow(t, env):
    key = env.request("POST", "/key/generate", body={"models": ["claude"]}).json["key"]
    token = env.sql("SELECT token FROM api_keys ORDER BY created_at DESC LIMIT 1")[0][0]
    env.upstream.reset()
    b = body(fake={"usage": {"input_tokens": 12, "output_tokens": 34}})
    r = post(env, b, key=None, headers={"x-api-key": key, "x-litellm-customer-id": "m-seed",
                                        "anthropic-beta": "prompt-caching-2024-07-31"})
    t.is_eq(r.status, 200, "a key as x-api-key: 200", r.text[:300])
    env.check_served_by(env.server, r, "messages", "/v1/messages")
    want = 12 * IN + 34 * OUT
    t.is_eq((env.customer_row("m-seed") or {}).get("spend"), want,
            "the customer named by x-litellm-customer-id is created and charged 12 in, 34 out")
    t.is_eq(Decimal(r.header("x-litellm-response-cost") or "0"), want,
            "x-litellm-response-cost is the charge")
    led = env.ledger_row(call_id(r)) or {}
    t.is_eq(env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                    % H.sql_quote(call_id(r))), [["anthropic_messages"]],
            "the row's call_type is anthropic_messages")
    t.is_eq((led.get("api_key"), led.get("prompt_tokens"), led.get("completion_tokens")),
            (token, "12", "34"), "the row: the key's token, 12 and 34 tokens")
    t.is_eq((led.get("metadata") or {}).get("response_id"), (r.json or {}).get("id"),
            "the row records the message's id")
    reqs = [q for q in env.upstream.requests() if q["method"] == "POST"]
    t.is_eq(len(reqs), 1, "one call upstream")
    q = reqs[0] if reqs else {"headers": {}, "json": {}, "path": ""}
    t.is_eq(q["path"], "/v1/messages", "upstream: POST {api_base}/v1/messages")
    t.is_eq((q["headers"].get("x-api-key"), q["headers"].get("anthropic-version"),
             q["headers"].get("anthropic-beta"), q["headers"].get("authorization")),
            (H.UPSTREAM_KEY, "2023-06-01", "prompt-caching-2024-07-31", None),
            "upstream headers: the deployment's x-api-key, anthropic-version, the client's "
            "anthropic-beta, no Authorization")
    sent = dict(b)
    sent["model"] = UPSTREAM_MODEL
    t.is_eq(q["json"], sent, "the body goes up with only model changed")

    # Streamed, the key as a Bearer token (Claude Code), the customer by
    # metadata.user_id, ?beta=true.
    b = body(user="m-meta", stream=True,
             fake={"usage": {"input_tokens": 7, "output_tokens": 9}, "chunks": 3})
    r = post(env, b, key=key, path="/v1/messages?beta=true")
    t.is_eq(r.status, 200, "streamed with a Bearer key and ?beta=true: 200")
    t.is_eq(types(r)[0], "message_start", "the stream begins with message_start")
    t.is_eq(types(r)[-1], "message_stop", "and ends with message_stop", repr(types(r)))
    t.is_eq((env.customer_row("m-meta") or {}).get("spend"), 7 * IN + 9 * OUT,
            "metadata.user_id names the customer; charged 7 in, 9 out")
    # The order: the header, then x-litellm-end-user-id, then metadata.
    r = post(env, body(user="m-meta-2"), headers={"x-litellm-end-user-id": "m-enduser"})
    t.is_eq((r.status, env.customer_row("m-meta-2"), (env.customer_row("m-enduser") or {})
             .get("spend")), (200, None, 10 * IN + 20 * OUT),
            "x-litellm-end-user-id comes before metadata.user_id")
    spend = env.sql("SELECT spend FROM api_keys WHERE token = %s" % H.sql_quote(token))
    t.is_eq(H.dec(spend[0][0]), 12 * IN + 34 * OUT + 7 * IN + 9 * OUT,
            "the key is charged for both of its calls")


def dimensions(t, env):
    cases = [
        ("every part of the prompt",
         {"input_tokens": 100, "cache_read_input_tokens": 200,
          "cache_creation_5m": 300, "cache_creation_1h": 400, "output_tokens": 50},
         100 * IN + 200 * READ + 300 * WRITE_5M + 400 * WRITE_1H + 50 * OUT,
         (1000, 50), {"cache_read_input_tokens": 200, "cache_creation_5m_input_tokens": 300,
                      "cache_creation_1h_input_tokens": 400}),
        ("cache writes without the split: the 5-minute price",
         {"input_tokens": 10, "cache_creation_input_tokens": 1000, "output_tokens": 1},
         10 * IN + 1000 * WRITE_5M + 1 * OUT, (1010, 1),
         {"cache_creation_5m_input_tokens": 1000}),
        ("web searches at 0.01 each",
         {"input_tokens": 10, "output_tokens": 20, "web_search_requests": 3},
         10 * IN + 20 * OUT + 3 * SEARCH, (10, 20), {"web_search_calls": 3}),
        ("200,000 prompt tokens: not above the tier",
         {"input_tokens": 150000, "cache_read_input_tokens": 50000, "output_tokens": 10},
         150000 * IN + 50000 * READ + 10 * OUT, (200000, 10), {}),
        ("200,001: every token at the long-context rates",
         {"input_tokens": 150001, "cache_read_input_tokens": 50000, "output_tokens": 10},
         150001 * IN_200K + 50000 * READ_200K + 10 * OUT_200K, (200001, 10), {}),
    ]
    for i, (what, u, want, tokens, meta) in enumerate(cases):
        for stream in (False, True):
            user = "m-dim-%d-%d" % (i, stream)
            fake = {"usage": u}
            if stream:
                fake["delta_usage_steps"] = 3
            r = post(env, body(user=user, stream=stream, fake=fake))
            t.is_eq(r.status, 200, "%s%s: 200" % (what, ", streamed" if stream else ""))
            t.is_eq((env.customer_row(user) or {}).get("spend"), ceil10(want),
                    "%s%s: charged %s" % (what, " (3 cumulative deltas)" if stream else "",
                                          ceil10(want)))
            led = env.ledger_row(call_id(r)) or {}
            t.is_eq((int(led.get("prompt_tokens") or -1), int(led.get("completion_tokens") or -1)),
                    tokens,
                    "%s: the row's prompt counts every input token" % what)
            m = led.get("metadata") or {}
            t.is_eq({k: m.get(k) for k in meta}, meta, "%s: the row's counts by class" % what)


def boundary(t, env):
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
             {"name": "get_weather", "description": "w",
              "input_schema": {"type": "object", "properties": {}}}]
    for what, extra, searches in (("plain", {}, 0),
                                  ("with tools and 2 web searches", {"tools": tools}, 2)):
        for below in (True, False):
            user = "m-edge-%s-%d" % (what[:5], below)
            b = body(user=user, max_tokens=1000, extra=extra)
            h = hold(b, tools=bool(extra), searches=searches)
            env.customer_new(user_id=user, max_budget=format(h - UNIT if below else h, "f"))
            env.upstream.reset()
            r = post(env, b)
            if below:
                err = anth_error(r) or {}
                t.is_eq((r.status, err.get("type")), (429, "rate_limit_error"),
                        "%s: 1e-10 below the hold %s is refused, 429 rate_limit_error" % (what, h),
                        r.text[:300])
                t.ok("over budget" in err.get("message", "") and "Budget=" in err.get("message", ""),
                     "%s: the message names the budget" % what, err.get("message"))
                t.is_eq(r.header("x-should-retry"), "false", "%s: x-should-retry: false" % what)
                t.is_eq(len(env.upstream.requests()), 0, "%s: nothing sent upstream" % what)
            else:
                t.is_eq(r.status, 200, "%s: admitted at max_budget = hold %s" % (what, h),
                        r.text[:300])


def errors(t, env):
    cases = [
        ("no max_tokens", {"model": "claude", "messages": [{"role": "user", "content": "x"}]},
         None, 400, "invalid_request_error", "max_tokens"),
        ("no messages", {"model": "claude", "max_tokens": 5}, None, 400,
         "invalid_request_error", "messages"),
        ("max_tokens 0", body(max_tokens=0), None, 400, "invalid_request_error", "max_tokens"),
        ("a wrong key", body(), "sk-wrong", 401, "authentication_error", ""),
        ("an unknown model", body(model="nope"), None, 400, "invalid_request_error", "nope"),
    ]
    env.upstream.reset()
    for what, b, key, status, typ, word in cases:
        r = post(env, b, key=key if key else H._DEFAULT_KEY)
        err = anth_error(r) or {}
        t.is_eq((r.status, err.get("type")), (status, typ),
                "%s: %d %s in Anthropic's envelope" % (what, status, typ), r.text[:300])
        t.ok(word in err.get("message", ""), "%s: the message says %r" % (what, word),
             err.get("message"))
    t.is_eq(len(env.upstream.requests()), 0, "bad input: nothing sent upstream")
    key = env.request("POST", "/key/generate", body={"models": ["other"]}).json["key"]
    r = post(env, body(), key=key)
    t.is_eq((r.status, (anth_error(r) or {}).get("type")), (401, "authentication_error"),
            "a key without the model: 401 authentication_error")
    # The upstream's own errors, as it said them.
    for st, typ in ((400, "invalid_request_error"), (429, "rate_limit_error")):
        r = post(env, body(user="m-uperr", fake={"status": st}))
        t.is_eq((r.status, (anth_error(r) or {}).get("type")), (st, typ),
                "the upstream's %d is relayed in its envelope" % st, r.text[:300])
    t.is_eq(env.customer_row("m-uperr")["spend"], Decimal(0), "an upstream error costs nothing")
    # 529 on one deployment: another serves, charged once.
    env.upstream.reset()
    n, ok, spend = 0, [], Decimal(0)
    while n < 40 and (n < 4 or not any(p.startswith("/_status/529/")
                                       for p in [q["path"] for q in env.upstream.requests()])):
        r = post(env, body(user="m-fo", model="fo"))
        ok.append(r.status)
        n += 1
        spend += 10 * IN + 20 * OUT
    t.is_eq(set(ok), {200}, "529 on one deployment: %d calls, each served by the other" % n)
    t.ok(any(q["path"].startswith("/_status/529/") for q in env.upstream.requests()),
         "the overloaded deployment was tried")
    t.is_eq(env.customer_row("m-fo")["spend"], spend, "each call charged once")


def cut_streams(t, env):
    for what, fake in (("a connection dropped mid-block", {"error_after": 3, "chunks": 4}),
                       ("a stream without message_stop", {"end_after": 4, "chunks": 4}),
                       ("an error event", {"error_event_after": 3, "chunks": 4})):
        user = "m-cut-%s" % what.split()[1]
        b = body(user=user, stream=True, fake=fake, max_tokens=500)
        r = post(env, b)
        ts = types(r)
        t.ok("message_stop" not in ts, "%s: the client never sees message_stop" % what,
             repr(ts))
        t.is_eq(ts[-1] if ts else None, "error", "%s: it ends with an error event" % what,
                repr(ts))
        led = env.ledger_row(call_id(r)) or {}
        t.is_eq(led.get("status"), "failure", "%s: a failure row" % what)
        spent = (env.customer_row(user) or {}).get("spend")
        t.ok(spent is not None and Decimal(0) < spent <= ceil10(hold(b)),
             "%s: charged what was relayed (%s), at most the hold" % (what, spent))
        t.is_eq(env.customer_row(user)["reserved"], Decimal(0), "%s: nothing reserved" % what)


def count_tokens(t, env):
    env.upstream.reset()
    b = {"model": "claude", "messages": [{"role": "user", "content": "count me"}],
         "fake": {"usage": {"input_tokens": 17}}}
    r = env.request("POST", "/v1/messages/count_tokens", body=b,
                    headers={"x-litellm-customer-id": "m-count"})
    t.is_eq((r.status, r.json), (200, {"input_tokens": 17}), "count_tokens: the upstream's count",
            r.text[:200])
    q = env.upstream.requests()
    t.is_eq([x["path"] for x in q], ["/v1/messages/count_tokens"],
            "count_tokens goes to the anthropic/ deployment")
    t.is_eq(q[0]["json"]["model"] if q else None, UPSTREAM_MODEL, "with its model name")
    t.is_eq((env.customer_row("m-count"), env.sql(
        "SELECT COUNT(*) FROM spend_logs WHERE call_type = 'anthropic_messages' AND "
        "request_id = %s" % H.sql_quote(call_id(r)))[0][0]), (None, "0"),
            "count_tokens is not charged: no customer, no row")
    r = env.request("POST", "/v1/messages/count_tokens",
                    body={"model": "mock-claude", "messages": [{"role": "user", "content": "x"}]})
    t.is_eq((r.status, (anth_error(r) or {}).get("type")), (400, "invalid_request_error"),
            "count_tokens on a model without an anthropic/ deployment: 400", r.text[:200])


def race(t, env):
    user = "m-race"
    b = body(user=user, stream=True, max_tokens=50,
             fake={"usage": {"input_tokens": 40, "output_tokens": 30}, "stream_interval": 0.01})
    h = hold(b)
    cost = 40 * IN + 30 * OUT
    budget = h + cost * 19  # room for about 20 of the 50
    env.customer_new(user_id=user, max_budget=format(budget, "f"))
    results = []
    lock = threading.Lock()

    def one():
        r = post(env, b)
        with lock:
            results.append(r.status)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    row = env.customer_row(user)
    ok = results.count(200)
    t.is_eq(ok + results.count(429), 50, "50 parallel streams: each admitted or refused (429)",
            repr(sorted(set(results))))
    t.ok(row["spend"] <= budget, "spend %s never above max_budget %s (%d admitted)"
         % (row["spend"], budget, ok))
    t.is_eq(row["spend"], env.ledger_sum(user), "spend = the ledger's sum")
    t.is_eq(row["spend"], ok * cost, "each admitted stream charged its usage")
    t.is_eq(row["reserved"], Decimal(0), "nothing left reserved")


def limits_and_webhook(t, env, rec):
    """rpm_limit counts /v1/messages with the other routes (429 in
    Anthropic's envelope, retry-after); the webhook's spend_tracked has
    the call's cost and call_type."""
    env.budget_new(budget_id="m-rpm", rpm_limit=2)
    env.customer_new(user_id="m-rl", budget_id="m-rpm")
    r = env.request("POST", "/v1/chat/completions",
                    body=env.chat_body(user="m-rl", model="fake-gpt"))
    t.is_eq(r.status, 200, "rpm 2: a chat call")
    r = post(env, body(user="m-rl"))
    t.is_eq(r.status, 200, "rpm 2: a messages call")
    r = post(env, body(user="m-rl"))
    err = anth_error(r) or {}
    t.is_eq((r.status, err.get("type")), (429, "rate_limit_error"),
            "rpm 2: the third call of the minute, on /v1/messages, is 429 rate_limit_error "
            "in Anthropic's envelope", r.text[:300])
    t.ok("Limit type: requests" in err.get("message", "") and r.header("retry-after"),
         "it names the limit and says when to retry", r.text[:300], r.header("retry-after"))
    r = post(env, body(user="m-wh", fake={"usage": {"input_tokens": 9, "output_tokens": 6}}))
    t.is_eq(r.status, 200, "a call for the webhook")

    def arrived():
        got = [e for e, _ in rec.events() if e.get("event") == "spend_tracked"
               and e.get("customer_id") == "m-wh"]
        return got or None
    got = (H.wait_for(arrived, timeout=30) or [{}])[0]
    t.is_eq(Decimal(str(got.get("spend", "-1"))), 9 * IN + 6 * OUT,
            "the webhook's spend_tracked carries the call's cost")
    t.is_eq(got.get("call_type"), "anthropic_messages",
            "and its call_type, anthropic_messages", repr(got)[:300])


def spend_logs(t, env):
    r = post(env, body(user="m-logs"))
    mid = (r.json or {}).get("id", "")
    logs = env.request("GET", "/spend/logs?" + urllib.parse.urlencode({"request_id": mid}))
    got = logs.json if isinstance(logs.json, list) else []
    t.is_eq([(x.get("request_id"), x.get("call_type")) for x in got],
            [(call_id(r), "anthropic_messages")],
            "/spend/logs?request_id=<msg_ id> finds the call")


def main(t, env):
    rec = H.Receiver().up()
    models = [sonnet("claude", env.upstream.base), env.model("fake-gpt"),
              sonnet("fo", env.upstream.base + "/_status/529"),
              sonnet("fo", env.upstream.base),
              {"model_name": "mock-claude",
               "litellm_params": {"model": "mock/claude-sonnet-4-5"},
               "model_info": {"base_model": "claude-sonnet-4-5"}}]
    cfg = env.config(models=models, litellm_settings={"num_retries": 1},
                     general_settings={"alerting": ["webhook"]})
    env.start_lighttpd(env.write_config("main", cfg), extra_env={"WEBHOOK_URL": rec.url})
    seed_flow(t, env)
    dimensions(t, env)
    boundary(t, env)
    errors(t, env)
    cut_streams(t, env)
    count_tokens(t, env)
    race(t, env)
    spend_logs(t, env)
    limits_and_webhook(t, env, rec)
    rec.down()


H.run(main)
