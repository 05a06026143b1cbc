#!/usr/bin/env python3
"""routes: every LLM route through one meter (SPEC 11), end to end.

The same scenarios for /v1/chat/completions, /v1/responses, /v1/embeddings
and /v1/completions, against the fake upstream, which speaks the four APIs:

1. The seed's flow: a new customer (by "user", or by the header Codex
   sends) is created and charged exactly the fake's usage, streamed or
   not; the ledger row has LiteLLM's call_type; x-litellm-response-cost.
2. Each API's worst case, at the exact boundary of a budget: admitted at
   max_budget = estimate, refused 1e-10 USD below it (body bytes, the
   output bound and what multiplies it: n, best_of, prompts, the default
   16 of completions, tokens and text of an embedding input, a Responses
   max_output_tokens, hosted tool calls, a chained response's context).
3. A virtual key's models and spend on every route.
4. Failover over two deployments on every route: charged once.
5. Cut streams: a Responses stream without its terminal event, with
   response.failed, with an error event, incomplete; a completions stream
   without [DONE]: failure rows charged what was relayed, never more than
   the hold; the client gets the API's error event, never an end.
6. The webhook's spend_tracked on every route.
7. /spend/logs?request_id= with the upstream's id (chatcmpl-, resp_,
   cmpl-), as LiteLLM's test_keys.py looks its call up.
8. Stored responses: GET, input_items, cancel, DELETE go to the
   deployment that made the response, uncharged, for the key that made it
   or the master key; anyone else gets 404.
9. Hosted tools: charged per call at the configured or default price; a
   hosted tool without a price is 422 naming it.
10. Bad input on every route: a 4xx in the envelope, nothing held, sent,
    created or written.
11. Chained responses against a budget: a call that continues a stored
    response holds the model's context window (max_input_tokens), so its
    budget holds though the upstream adds input the body does not show;
    usage above the hold is charged within the budget.
12. Rate limits count every route: rpm across the four APIs, tpm the
    tokens settled on any of them.
13. Providers: a model without the route's API (Mistral has no Responses
    API) is 400; Azure's paths and api-version per API; embeddings'
    encoding_format and dimensions reach the upstream untouched.
"""

import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost  # noqa: E402

ROUTES = ("chat", "responses", "embeddings", "completions")
PATH = {"chat": "/v1/chat/completions", "responses": "/v1/responses",
        "embeddings": "/v1/embeddings", "completions": "/v1/completions"}
CALL_TYPE = {"chat": "acompletion", "responses": "aresponses",
             "embeddings": "aembedding", "completions": "atext_completion"}
STREAMS = ("chat", "responses", "completions")
UNIT = Decimal("1e-10")


def usage(route, p, c):
    """The fake's usage option for p prompt and c completion tokens."""
    if route == "responses":
        return {"input_tokens": p, "output_tokens": c}
    if route == "embeddings":
        return {"prompt_tokens": p}
    return {"prompt_tokens": p, "completion_tokens": c}


def body(route, user=None, model="fake-gpt", fake=None, stream=False, bound=None,
         extra=None, text="hello"):
    """A request body of route's API; bound is its output bound field."""
    if route == "chat":
        b = {"model": model, "messages": [{"role": "user", "content": text}]}
        if bound is not None:
            b["max_tokens"] = bound
    elif route == "responses":
        b = {"model": model, "input": text}
        if bound is not None:
            b["max_output_tokens"] = bound
    elif route == "embeddings":
        b = {"model": model, "input": text}
    else:
        b = {"model": model, "prompt": text}
        if bound is not None:
            b["max_tokens"] = bound
    if user is not None:
        b["user"] = user
    if fake is not None:
        b["fake"] = fake
    if stream:
        b["stream"] = True
    b.update(extra or {})
    return b


def call(env, route, b, stream=False, headers=None, key=H._DEFAULT_KEY, server=None):
    if stream:
        return env.stream_chat(path=PATH[route], body=b, headers=headers, key=key,
                               server=server)
    return env.request("POST", PATH[route], body=b, headers=headers, key=key, server=server)


def stream_ended(route, r):
    """Whether a streamed answer ended as its API ends a whole stream."""
    if route == "responses":
        return bool(r.events) and (r.events[-1]["json"] or {}).get("type") in (
            "response.completed", "response.incomplete")
    return bool(r.events) and r.events[-1]["done"]


def last_error(route, r):
    """The error a stream ended with (its API's error event), or None."""
    if not r.events:
        return None
    js = r.events[-1]["json"] or {}
    if route == "responses":
        return js if js.get("type") == "error" else None
    return js.get("error")


def call_id(r):
    return r.header("x-litellm-call-id") or ""


def estimate(route, b, out_bound=None, tools=0, tool_price=Decimal(0)):
    """The hold of body b (as sent: json.dumps) on a model priced IN/OUT."""
    text = json.dumps(b).encode()
    if route == "embeddings":
        inp = b["input"]
        items = inp if isinstance(inp, list) else [inp]
        prompt = 0
        for x in items:
            if isinstance(x, str):
                prompt += len(x.encode())
            elif isinstance(x, list):
                prompt += len(x)
            else:
                prompt += 1
        return prompt * H.IN_PRICE
    return len(text) * H.IN_PRICE + out_bound * H.OUT_PRICE + tools * tool_price


# ---------------------------------------------------------------------------

def seed_flow(t, env):
    n = 0
    for route in ROUTES:
        for stream in ((False, True) if route in STREAMS else (False,)):
            n += 1
            user = "seed-%s-%d" % (route, n)
            p, c = 11 + n, (0 if route == "embeddings" else 5 + n)
            r = call(env, route, body(route, user=user, fake={"usage": usage(route, p, c)},
                                      stream=stream), stream=stream)
            what = "%s%s" % (route, " streamed" if stream else "")
            t.is_eq(r.status, 200, "%s: 200" % what, r.text[:300])
            if stream:
                t.ok(stream_ended(route, r), "%s: the stream ends as the API ends it" % what,
                     r.text[-300:])
            else:
                t.is_eq(r.header("x-litellm-response-cost"), str(cost(p, c).normalize()),
                        "%s: x-litellm-response-cost" % what)
            row = env.customer_row(user)
            t.ok(row is not None, "%s: the customer %s was created" % (what, user))
            t.is_eq((row or {}).get("spend"), cost(p, c),
                    "%s: charged exactly the fake's usage" % what)
            t.is_eq((row or {}).get("reserved"), Decimal(0), "%s: nothing left held" % what)
            led = env.ledger_row(call_id(r)) or {}
            t.is_eq((led.get("status"), led.get("prompt_tokens"), led.get("completion_tokens")),
                    ("success", str(p), str(c)), "%s: the ledger row's usage" % what)
            ct = env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                         % H.sql_quote(call_id(r)))
            t.is_eq(ct, [[CALL_TYPE[route]]], "%s: call_type %s" % (what, CALL_TYPE[route]))
            info = env.customer_info(user)
            t.is_eq((info.json or {}).get("spend"), cost(p, c),
                    "%s: /customer/info shows the spend" % what)
    # The customer of a Codex session comes in a header (its http_headers).
    r = call(env, "responses", body("responses", fake={"usage": usage("responses", 3, 4)},
                                    stream=True), stream=True,
             headers={"x-litellm-customer-id": "codex-user"})
    t.is_eq((r.status, (env.customer_row("codex-user") or {}).get("spend")), (200, cost(3, 4)),
            "responses: the customer named by x-litellm-customer-id is charged")


def boundaries(t, env):
    """Each API's worst case, exactly: admitted at max_budget = the hold,
    refused one unit below."""
    cases = [
        ("chat", body("chat", bound=7), 7, "max_tokens"),
        ("chat", body("chat", bound=7, extra={"n": 3}), 21, "n"),
        ("responses", body("responses", bound=9), 9, "max_output_tokens"),
        ("completions", body("completions"), 16, "default max_tokens 16"),
        ("completions", body("completions", bound=5, extra={"n": 2, "best_of": 3}), 15,
         "best_of"),
        ("completions", body("completions", bound=5, text=["a", "bb"],
                             extra={"n": 2}), 20, "two prompts"),
        ("embeddings", body("embeddings", text=["héllo", "x"]), 0, "strings"),
        ("embeddings", body("embeddings", text=[[1, 2, 3], [4]]), 0, "token arrays"),
        ("embeddings", body("embeddings", text=[5, 6, 7]), 0, "tokens"),
    ]
    for i, (route, b, out, what) in enumerate(cases):
        for j, delta in enumerate((Decimal(0), UNIT)):
            user = "bound-%d-%d" % (i, j)
            # The fake's option is a part of the body: the hold is of it.
            bb = dict(b, user=user, fake={"usage": usage(route, 1, 0)})
            r = env.customer_new(user_id=user, max_budget=str(estimate(route, bb, out) - delta))
            t.is_eq(r.status, 200, "customer %s" % user, r.text[:200])
            r = call(env, route, bb)
            t.is_eq(r.status, 429 if delta else 200, "%s %s: %s" % (
                route, what, "refused 1e-10 USD below the hold" if delta
                else "admitted at max_budget = the hold"), r.text[:300])
            if delta:
                t.is_eq(r.error.get("type"), "budget_exceeded",
                        "%s %s: budget_exceeded" % (route, what))


def keys(t, env):
    r = env.request("POST", "/key/generate", body={"models": ["fake-gpt-2"], "max_budget": 5})
    key, token = (r.json or {}).get("key"), (r.json or {}).get("token")
    t.ok(key is not None, "a key limited to fake-gpt-2", r.text[:200])
    total = Decimal(0)
    for route in ROUTES:
        r = call(env, route, body(route, user="kc-" + route), key=key)
        t.is_eq((r.status, r.error.get("type")), (401, "auth_error"),
                "%s: a model outside the key's models is 401" % route)
        t.ok("key not allowed to access model=fake-gpt" in r.error.get("message", ""),
             "%s: in LiteLLM's words" % route, r.text[:200])
        c = 0 if route == "embeddings" else 3
        r = call(env, route, body(route, user="kc-" + route, model="fake-gpt-2",
                                  fake={"usage": usage(route, 4, c)}), key=key)
        t.is_eq(r.status, 200, "%s: a model of the key's is served" % route, r.text[:200])
        total += cost(4, c)
        led = env.ledger_row(call_id(r)) or {}
        t.is_eq(led.get("api_key"), token, "%s: the row's api_key is the key's token" % route)
        t.is_eq((env.customer_row("kc-" + route) or {}).get("spend"), cost(4, c),
                "%s: the customer is charged too" % route)
    spend = env.sql("SELECT spend FROM api_keys WHERE token = %s" % H.sql_quote(token))
    t.is_eq(H.dec(spend[0][0]) if spend else None, total,
            "the key is charged for its calls on every route")


def failover(t, env, srv_cfg):
    for route in ROUTES:
        user = "fo-" + route
        env.upstream.reset()
        attempts, bad = [], []
        # The deployments are tried in a random order: call until the
        # failing one has come first (each call has an even chance; 40
        # calls without it happen once in 10^12), at least 6 times.
        n = 0
        while n < 40 and (n < 6 or 2 not in attempts):
            c = 0 if route == "embeddings" else 2
            r = call(env, route, body(route, user=user, model="fo",
                                      fake={"usage": usage(route, 5, c)}))
            n += 1
            if r.status != 200:
                bad.append((n, r.status, r.text[:200]))
            led = env.ledger_row(call_id(r)) or {}
            attempts.append((led.get("metadata") or {}).get("attempts"))
        c = 0 if route == "embeddings" else 2
        t.is_eq(bad, [], "%s failover: %d calls, each 200" % (route, n))
        t.is_eq((env.customer_row(user) or {}).get("spend"), n * cost(5, c),
                "%s failover: each call charged once" % route)
        t.ok(2 in attempts, "%s failover: a failed deployment was tried first and another "
             "served (attempts %r)" % (route, attempts))
        paths = {q["path"] for q in env.upstream.requests()}
        t.ok(any(p.startswith("/_status/503/") for p in paths),
             "%s failover: the failing deployment was called" % route, repr(paths))


def cut_streams(t, env):
    cases = [
        ("responses", {"end_after": 3}, "no terminal event", False),
        ("responses", {"error_after": 3}, "connection dropped", False),
        ("responses", {"failed_after": 3}, "response.failed", True),
        ("responses", {"error_event_after": 3}, "an error event", True),
        ("completions", {"end_after": 2}, "no [DONE]", False),
        ("completions", {"error_after": 2}, "connection dropped", False),
    ]
    for i, (route, fake, what, relayed_end) in enumerate(cases):
        user = "cut-%d" % i
        b = body(route, user=user, stream=True, bound=50,
                 fake=dict(fake, chunks=6, usage=usage(route, 40, 30)))
        r = call(env, route, b, stream=True)
        led = env.ledger_row(call_id(r)) or {}
        hold = estimate(route, b, 50)
        t.is_eq(r.status, 200, "%s %s: the stream began" % (route, what))
        t.ok(not stream_ended(route, r), "%s %s: the client is not told it ended" % (route, what),
             r.text[-300:])
        if route == "responses" and fake.get("failed_after") is not None:
            t.is_eq((r.events[-1]["json"] or {}).get("type") if r.events else None,
                    "response.failed", "%s %s: the failed event is relayed" % (route, what))
        else:
            t.ok(last_error(route, r) is not None,
                 "%s %s: it ends with the API's error event" % (route, what), r.text[-300:])
        spend = (env.customer_row(user) or {}).get("spend")
        t.is_eq(led.get("status"), "failure", "%s %s: a failure row" % (route, what))
        t.ok(spend is not None and Decimal(0) < spend <= hold,
             "%s %s: charged what was relayed, above 0 and never above the hold "
             "(%s <= %s)" % (route, what, spend, hold))
        t.is_eq(spend, env.ledger_sum(user), "%s %s: spend == ledger sum" % (route, what))
        t.is_eq((led.get("metadata") or {}).get("usage_estimated"), True,
                "%s %s: the row says the usage is estimated" % (route, what))
    # response.failed with usage: that usage, within the hold.
    b = body("responses", user="cut-fu", stream=True, bound=50,
             fake={"failed_after": 3, "failed_usage": True, "usage": usage("responses", 7, 8)})
    r = call(env, "responses", b, stream=True)
    t.is_eq(((env.customer_row("cut-fu") or {}).get("spend"),
             (env.ledger_row(call_id(r)) or {}).get("status")), (cost(7, 8), "failure"),
            "responses failed with usage: charged the usage it reported, as a failure")
    # response.incomplete is an answer: charged its usage, a success.
    b = body("responses", user="cut-inc", stream=True, bound=50,
             fake={"incomplete": True, "usage": usage("responses", 9, 50)})
    r = call(env, "responses", b, stream=True)
    t.is_eq((stream_ended("responses", r), (env.customer_row("cut-inc") or {}).get("spend"),
             (env.ledger_row(call_id(r)) or {}).get("status")), (True, cost(9, 50), "success"),
            "responses incomplete: relayed, charged its usage, a success")
    # The usage chunk a client asked for carries the cost (completions as chat).
    b = body("completions", user="cut-usage", stream=True, bound=50,
             fake={"usage": usage("completions", 3, 4)},
             extra={"stream_options": {"include_usage": True}})
    r = call(env, "completions", b, stream=True)
    chunk = [e["json"] for e in r.data_events() if (e["json"] or {}).get("usage")]
    t.is_eq(((chunk[-1]["usage"] if chunk else {}).get("cost")), cost(3, 4),
            "completions: the usage chunk the client asked for has the cost")


def webhook(t, env, rec):
    for route in ROUTES:
        user = "wh-" + route
        c = 0 if route == "embeddings" else 6
        r = call(env, route, body(route, user=user, fake={"usage": usage(route, 9, c)}))
        t.is_eq(r.status, 200, "%s: 200" % route)

    def arrived():
        got = [e for e, _ in rec.events() if e.get("event") == "spend_tracked"
               and str(e.get("customer_id", "")).startswith("wh-")]
        return got if len(got) >= len(ROUTES) else None
    got = H.wait_for(arrived, timeout=30) or []
    by = {e["customer_id"]: Decimal(str(e["spend"])) for e in got}
    for route in ROUTES:
        c = 0 if route == "embeddings" else 6
        t.is_eq(by.get("wh-" + route), cost(9, c),
                "%s: spend_tracked with the call's cost" % route)


def spend_logs_by_upstream_id(t, env):
    for route, prefix in (("chat", "chatcmpl-"), ("responses", "resp_"),
                          ("completions", "cmpl-")):
        for stream in (False, True):
            r = call(env, route, body(route, user="sl-" + route, stream=stream), stream=stream)
            if stream:
                ids = [(e["json"] or {}).get("id") or ((e["json"] or {}).get("response") or {})
                       .get("id") for e in r.data_events()]
                up = next((x for x in ids if x), None)
            else:
                up = (r.json or {}).get("id")
            t.ok(up is not None and up.startswith(prefix),
                 "%s%s: the answer's id %r" % (route, " streamed" if stream else "", up))
            q = urllib.parse.urlencode({"request_id": up or "-"})
            got = env.request("GET", "/spend/logs?" + q)
            t.is_eq([x.get("request_id") for x in (got.json or [])], [call_id(r)],
                    "%s%s: /spend/logs?request_id=<its id> finds its row"
                    % (route, " streamed" if stream else ""), got.text[:300])


def stored(t, env):
    ka = env.request("POST", "/key/generate", body={}).json["key"]
    kb = env.request("POST", "/key/generate", body={}).json["key"]
    r = call(env, "responses", body("responses", user="st", text="remember me"), key=ka)
    rid = (r.json or {}).get("id")
    t.ok(rid, "a stored response %r" % rid)
    rows = env.sql("SELECT COUNT(*) FROM spend_logs")[0][0]
    spend = (env.customer_row("st") or {}).get("spend")
    for who, key, want in (("its key", ka, 200), ("the master key", H.MASTER_KEY, 200),
                           ("another key", kb, 404)):
        for method, path in (("GET", "/v1/responses/%s" % rid),
                             ("GET", "/v1/responses/%s/input_items?limit=5" % rid),
                             ("GET", "/responses/%s" % rid)):
            g = env.request(method, path, key=key)
            t.is_eq(g.status, want, "%s %s by %s: %d" % (method, path, who, want), g.text[:200])
            if want == 404:
                t.is_eq(g.error.get("type"), "not_found", "%s: not_found" % who)
    g = env.request("GET", "/v1/responses/%s" % rid, key=ka)
    t.is_eq((g.json or {}).get("id"), rid, "GET returns the upstream's stored response")
    g = env.request("GET", "/v1/responses/%s/input_items?order=asc" % rid, key=ka)
    t.is_eq([c.get("text") for i in (g.json or {}).get("data", []) for c in i.get("content", [])],
            ["remember me"], "input_items returns the stored input (the query passed on)")
    reqs = [q for q in env.upstream.requests() if rid in q["path"]]
    t.ok(reqs and all(q["headers"].get("authorization") == "Bearer " + H.UPSTREAM_KEY
                      for q in reqs), "the upstream is called with the deployment's key")
    t.ok(any(q["query"] == "order=asc" for q in reqs), "the query reaches the upstream")
    g = env.request("POST", "/v1/responses/%s/cancel" % rid, key=kb)
    t.is_eq(g.status, 404, "cancel by another key: 404")
    g = env.request("POST", "/v1/responses/%s/cancel" % rid, key=ka)
    t.is_eq((g.status, (g.json or {}).get("status")), (200, "cancelled"), "cancel by its key")
    g = env.request("DELETE", "/v1/responses/%s" % rid, key=kb)
    t.is_eq(g.status, 404, "DELETE by another key: 404")
    g = env.request("DELETE", "/v1/responses/%s" % rid, key=ka)
    t.is_eq((g.status, (g.json or {}).get("deleted")), (200, True), "DELETE by its key")
    g = env.request("GET", "/v1/responses/%s" % rid, key=ka)
    t.is_eq(g.status, 404, "deleted upstream: 404 relayed")
    for bad in ("resp_nope", "x%2Fy", "a.b/c"):
        g = env.request("GET", "/v1/responses/" + bad)
        t.is_eq(g.status, 404, "GET /v1/responses/%s: 404" % bad)
    t.is_eq((env.sql("SELECT COUNT(*) FROM spend_logs")[0][0],
             (env.customer_row("st") or {}).get("spend")), (rows, spend),
            "the stored response routes write nothing and charge nothing")


def tools(t, env):
    web = {"type": "web_search", "search_context_size": "medium"}
    b = body("responses", user="tl-1", bound=10, extra={"tools": [web], "max_tool_calls": 3},
             fake={"usage": usage("responses", 5, 5), "tool_calls": {"web_search_call": 2,
                                                                      "file_search_call": 1}})
    r = call(env, "responses", b)
    t.is_eq(r.status, 200, "web search: 200", r.text[:300])
    want = cost(5, 5) + 2 * Decimal("0.01") + 1 * Decimal("0.0025")
    t.is_eq((env.customer_row("tl-1") or {}).get("spend"), want,
            "charged 2 web searches at 0.01 and a file search at 0.0025, as the output says")
    meta = (env.ledger_row(call_id(r)) or {}).get("metadata") or {}
    t.is_eq((meta.get("web_search_calls"), meta.get("file_search_calls")), (2, 1),
            "the row counts the calls")
    # The hold covers max_tool_calls at the dearest hosted tool.
    for j, delta in enumerate((Decimal(0), UNIT)):
        user = "tl-b%d" % j
        b = body("responses", user=user, bound=10,
                 extra={"tools": [web, {"type": "function", "name": "f"}], "max_tool_calls": 4},
                 fake={"usage": usage("responses", 1, 1)})
        est = estimate("responses", b, 10, tools=4, tool_price=Decimal("0.01"))
        env.customer_new(user_id=user, max_budget=str(est - delta))
        r = call(env, "responses", b)
        t.is_eq(r.status, 429 if delta else 200, "the hold is tokens plus 4 web searches: "
                "%s" % ("refused one unit below" if delta else "admitted at it"), r.text[:200])
    # Without max_tool_calls: default_max_tool_calls (2 in this config).
    user = "tl-d"
    b = body("responses", user=user, bound=10, extra={"tools": [{"type": "code_interpreter"}]},
             fake={"usage": usage("responses", 1, 1)})
    env.customer_new(user_id=user, max_budget=str(
        estimate("responses", b, 10, tools=2, tool_price=Decimal("0.03")) - UNIT))
    r = call(env, "responses", b)
    t.is_eq(r.status, 429, "without max_tool_calls the hold covers default_max_tool_calls")
    # A hosted tool without a price anywhere: 422, nothing sent.
    env.upstream.reset()
    b = body("responses", user="tl-img", extra={"tools": [{"type": "image_generation"}]})
    r = call(env, "responses", b)
    t.is_eq((r.status, r.error.get("param")), (422, "tools"), "image_generation without a "
            "price: 422 param tools")
    t.ok("image_generation" in r.error.get("message", ""), "naming the tool",
         r.error.get("message"))
    t.is_eq(env.upstream.requests(), [], "nothing was sent")
    t.is_eq(env.customer_row("tl-img"), None, "no customer was created")


def bad_input(t, env):
    cases = [
        ("responses", {"model": "fake-gpt"}, 400, "input"),
        ("responses", {"model": "fake-gpt", "input": 5}, 422, "input"),
        ("responses", {"model": "fake-gpt", "input": ["x"]}, 422, "input[0]"),
        ("responses", {"model": "fake-gpt", "input": "x", "tools": ["web_search"]}, 422,
         "tools[0]"),
        ("responses", {"model": "fake-gpt", "input": "x", "background": True}, 400,
         "background"),
        ("responses", {"model": "fake-gpt", "input": "x", "max_output_tokens": 0}, 422,
         "max_output_tokens"),
        ("responses", {"input": "x"}, 400, "model"),
        ("embeddings", {"model": "fake-gpt"}, 400, "input"),
        ("embeddings", {"model": "fake-gpt", "input": []}, 422, "input"),
        ("embeddings", {"model": "fake-gpt", "input": ["a", 1]}, 422, "input[1]"),
        ("embeddings", {"model": "fake-gpt", "input": [[1, "x"]]}, 422, "input[0]"),
        ("embeddings", {"model": "fake-gpt", "input": [1, -2]}, 422, "input[1]"),
        ("completions", {"model": "fake-gpt"}, 400, "prompt"),
        ("completions", {"model": "fake-gpt", "prompt": "x", "n": 200}, 422, "n"),
        ("completions", {"model": "fake-gpt", "prompt": "x", "best_of": 129}, 422, "best_of"),
        ("completions", {"model": "fake-gpt", "prompt": {"a": 1}}, 422, "prompt"),
        ("completions", {"model": "nope", "prompt": "x"}, 400, "model"),
    ]
    for i, (route, b, status, param) in enumerate(cases):
        env.upstream.reset()
        # Without a model the customer is read (its default_model may
        # name one): such a call names none.
        user = "bad-%d" % i if "model" in b else None
        r = call(env, route, dict(b, user=user) if user else b)
        t.is_eq((r.status, r.error.get("param")), (status, param),
                "%s %s: %d param %s" % (route, json.dumps(b)[:60], status, param), r.text[:200])
        t.is_eq(r.error.get("code"), str(status), "%s: the envelope" % route)
        t.is_eq((env.upstream.requests(), env.customer_row(user) if user else None,
                 env.ledger_row(call_id(r))), ([], None, None),
                "%s: nothing sent, created or written" % route)


def providers(t, env):
    # Mistral has chat and embeddings, not the Responses API nor completions.
    for route, want in (("responses", 400), ("completions", 400), ("embeddings", 200)):
        env.upstream.reset()
        r = call(env, route, body(route, user="mi", model="mis"))
        t.is_eq(r.status, want, "mistral on %s: %d" % (route, want), r.text[:200])
        if want == 400:
            t.ok("does not serve" in r.error.get("message", ""), "saying why", r.text[:200])
            t.is_eq(env.upstream.requests(), [], "nothing sent")
        else:
            q = env.upstream.requests()
            t.ok(q and "user" not in (q[0]["json"] or {}), "mistral: no user forwarded")
    # Azure: the deployment in the path, the api-version in the query.
    for route, path in (("chat", "/openai/deployments/az-dep/chat/completions"),
                        ("embeddings", "/openai/deployments/az-dep/embeddings"),
                        ("completions", "/openai/deployments/az-dep/completions"),
                        ("responses", "/openai/responses")):
        env.upstream.reset()
        r = call(env, route, body(route, user="az", model="az"))
        t.is_eq(r.status, 200, "azure %s: 200" % route, r.text[:200])
        q = (env.upstream.requests() or [{}])[0]
        t.is_eq((q.get("path"), q.get("query"), (q.get("headers") or {}).get("api-key"),
                 (q.get("json") or {}).get("model")),
                (path, "api-version=2025-04-01-preview", "az-key", "az-dep"),
                "azure %s: path, api-version, api-key and the deployment as model" % route)
    # Embeddings' options reach the upstream untouched, and come back.
    env.upstream.reset()
    b = body("embeddings", user="emb", text=["a", "b"],
             extra={"encoding_format": "base64", "dimensions": 4})
    r = call(env, "embeddings", b)
    q = (env.upstream.requests() or [{}])[0].get("json") or {}
    t.is_eq((q.get("encoding_format"), q.get("dimensions"), q.get("input")),
            ("base64", 4, ["a", "b"]), "embeddings: encoding_format, dimensions and input "
            "as the client sent them")
    data = (r.json or {}).get("data") or []
    t.ok(len(data) == 2 and all(isinstance(x.get("embedding"), str) for x in data),
         "embeddings: the base64 vectors relayed", r.text[:200])


def chained(t, env):
    # The hold of a call that continues a stored response: the context
    # window (max_input_tokens 200 on "ctx") + 10 out; at the boundary.
    hold = 200 * H.IN_PRICE + 10 * H.OUT_PRICE
    r = call(env, "responses", body("responses", model="ctx", bound=10,
                                    fake={"usage": usage("responses", 100, 10)}))
    prev = (r.json or {}).get("id")
    for j, delta in enumerate((Decimal(0), UNIT)):
        user = "chain-b%d" % j
        env.customer_new(user_id=user, max_budget=str(hold - delta))
        b = body("responses", user=user, model="ctx", bound=10,
                 extra={"previous_response_id": prev},
                 fake={"usage": usage("responses", 1, 1)})
        r = call(env, "responses", b)
        t.is_eq(r.status, 429 if delta else 200, "chain: a continuation holds the context "
                "window: %s" % ("refused 1e-10 below it" if delta else "admitted at it"),
                r.text[:200])
    r = call(env, "responses", body("responses", user="chain-b1", model="ctx", bound=10,
                                    fake={"usage": usage("responses", 1, 1)}))
    t.is_eq(r.status, 200, "chain: on that budget a call that continues nothing is served "
            "(its hold is its body)", r.text[:200])
    # A chain whose input outgrows its hold (the fake adds each stored
    # response's tokens): charged within the budget, never past it.
    user = "chain"
    budget = Decimal("0.0005")
    env.customer_new(user_id=user, max_budget=str(budget))
    fake = {"usage": usage("responses", 100, 10)}
    r = call(env, "responses", body("responses", user=user, model="ctx", bound=10, fake=fake))
    prev = (r.json or {}).get("id")
    statuses = [r.status]
    for _ in range(5):
        r = call(env, "responses", body("responses", user=user, model="ctx", bound=10, fake=fake,
                                        extra={"previous_response_id": prev}))
        statuses.append(r.status)
        if r.status != 200:
            t.is_eq(r.error.get("type"), "budget_exceeded", "chain: refused for its budget")
            break
        prev = (r.json or {}).get("id")
    spend = (env.customer_row(user) or {}).get("spend")
    rows = env.ledger_rows(user)
    t.diag("chain: statuses %s, spend %s of %s, rows %s" % (
        statuses, spend, budget, [(x["prompt_tokens"], str(x["spend"])) for x in rows]))
    t.is_eq(statuses, [200, 200, 429], "chain: served while a context window fits, then "
            "refused")
    t.cmp_ok(spend, "<=", budget, "chain: spend never passes max_budget")
    t.is_eq(spend, env.ledger_sum(user), "chain: spend == ledger sum")
    t.is_eq([x["prompt_tokens"] for x in rows], ["100", "210"],
            "chain: the upstream added the stored input (100, then 100 + 110)")
    over = [x for x in rows if (x["metadata"] or {}).get("over_hold")]
    t.is_eq(len(over), 1, "chain: the continuation's usage passed its hold and was charged "
            "within the budget (over_hold)")


def rate_limits(t, env):
    r = env.budget_new(budget_id="rl-rpm", rpm_limit=3)
    t.is_eq(r.status, 200, "a tier with rpm_limit 3")
    env.customer_new(user_id="rl-1", budget_id="rl-rpm")
    got = []
    for route in ("responses", "embeddings", "completions", "chat"):
        r = call(env, route, body(route, user="rl-1"))
        got.append((r.status, r.error.get("type")))
    t.is_eq(got, [(200, None)] * 3 + [(429, "rate_limit_error")],
            "rpm_limit 3 counts the calls of every route")
    t.ok("Limit type: requests" in r.error.get("message", ""), "the fourth: requests",
         r.text[:200])
    env.budget_new(budget_id="rl-tpm", tpm_limit=50)
    env.customer_new(user_id="rl-2", budget_id="rl-tpm")
    got = []
    for route, u in (("responses", usage("responses", 20, 20)),
                     ("embeddings", usage("embeddings", 15, 0)),
                     ("completions", usage("completions", 1, 1))):
        r = call(env, route, body(route, user="rl-2", fake={"usage": u}))
        got.append((r.status, r.error.get("type")))
    t.is_eq(got, [(200, None), (200, None), (429, "rate_limit_error")],
            "tpm_limit 50: 40 tokens of a response and 15 of embeddings use it up")
    t.ok("Limit type: tokens" in r.error.get("message", ""), "the third: tokens", r.text[:200])


def main(t, env):
    rec = H.Receiver().up()
    try:
        models = [env.model("fake-gpt"), env.model("fake-gpt-2"),
                  env.model("fo", api_base=env.upstream.base + "/_status/503/v1"),
                  env.model("fo"),
                  {"model_name": "mis", "litellm_params": {
                      "model": "mistral/mistral-small-latest",
                      "api_base": env.upstream.base + "/_mistral/v1", "api_key": "m"},
                   "model_info": {"input_cost_per_token": H.IN_PRICE,
                                  "output_cost_per_token": H.OUT_PRICE}},
                  {"model_name": "az", "litellm_params": {
                      "model": "azure/az-dep", "api_base": env.upstream.base,
                      "api_key": "az-key", "api_version": "2025-04-01-preview"},
                   "model_info": {"input_cost_per_token": H.IN_PRICE,
                                  "output_cost_per_token": H.OUT_PRICE}}]
        ctx = env.model("ctx")
        ctx["model_info"]["max_input_tokens"] = 200
        models.append(ctx)
        cfg = env.config(models=models, litellm_settings={"num_retries": 1},
                         general_settings={"alerting": ["webhook"]},
                         extra={"tollgate_settings": {"default_max_tool_calls": 2}})
        env.start_lighttpd(env.write_config("main", cfg),
                           extra_env={"WEBHOOK_URL": rec.url})
        seed_flow(t, env)
        boundaries(t, env)
        keys(t, env)
        failover(t, env, cfg)
        cut_streams(t, env)
        webhook(t, env, rec)
        spend_logs_by_upstream_id(t, env)
        stored(t, env)
        tools(t, env)
        bad_input(t, env)
        chained(t, env)
        rate_limits(t, env)
        providers(t, env)
    finally:
        rec.down()


H.run(main)
