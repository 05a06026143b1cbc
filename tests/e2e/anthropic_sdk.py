#!/usr/bin/env python3
"""anthropic_sdk: tollgate's Messages API (POST /v1/messages) through the
official `@anthropic-ai/sdk` npm package (pinned in
tests/anthropic/package.json and package-lock.json).

The servers are started here; tests/anthropic/sdk-test.cjs makes the calls
with the SDK (base URL and keys from the environment) and reports what it
saw as JSON; the checks and the TAP are here.  The deployment
"claude-sonnet-4-5" is an anthropic/ model on the fake upstream, priced
from the shipped price file (model_info.base_model claude-sonnet-4-5), so
every expected charge below is worked out by hand at Claude Sonnet 4.5's
prices, cache reads and the 5-minute and 1-hour cache writes included.
With a virtual key (max_budget, models [the model]), which SDK 1.17 sends
as "Authorization: Bearer" (create_x_api_key: as x-api-key):

  * messages.create, the customer in metadata.user_id, then in the
    x-litellm-customer-id header (a customer created on the fly), then
    with x-api-key: the text, the usage (cache_creation split included),
    x-litellm-response-cost, the customer's spend grows by exactly the
    cost of the fake's usage, a ledger row per call (call_type
    anthropic_messages, the customer, the key's token, every input token
    in prompt_tokens);
  * messages.stream: the event types in order (message_start ... three
    cumulative message_delta ... message_stop), the text, finalMessage()'s
    usage, the exact charge and its ledger row;
  * messages.countTokens: the fake's count, relayed, uncharged (no
    spend_logs row; the customer it names is not created or charged);
  * the upstream saw exactly the four messages and the count, each with
    the deployment's x-api-key (never the client's key), anthropic-version
    2023-06-01, no Authorization, the deployment's model name;
  * the key's spend = the four charges, nothing left reserved;
  * refusals (a customer over budget, plain and streamed; a key over
    budget): the SDK (maxRetries 2) raises RateLimitError 429
    (rate_limit_error in Anthropic's envelope) after exactly one request,
    since tollgate sends x-should-retry: false; the upstream saw nothing,
    nothing was charged or written.

Then an OpenAI-format deployment (GPT_MODEL, priced IN_PRICE / OUT_PRICE)
through the same SDK, with a key for it, in a second node run (the gpt_*
steps), the fake's chat answers queued first (POST /_next: a translated
request drops the "fake" field):

  * messages.create: sent as a chat completion (system -> a system
    message, metadata.user_id -> user), answered as a message: the text,
    stop_reason end_turn, usage.cache_read_input_tokens = the fake's
    prompt_tokens_details.cached_tokens, input_tokens the rest, the exact
    charge and its ledger row;
  * messages.stream: message_start ... message_delta, message_stop, the
    text deltas, finalMessage()'s text, stop_reason and usage;
  * a tool use: the fake answers tool_calls, the SDK gets a text block and
    a tool_use block with the parsed input, stop_reason tool_use; the
    tool_result sent back reaches the upstream as the assistant's
    tool_calls and a "tool" message; the final text;
  * the same tool use streamed: finalMessage() builds the input from the
    input_json_delta pieces.

node_modules: TG_ANTHROPIC_NODE_MODULES, else tests/anthropic/node_modules
in the source tree (script/test runs `npm ci` there), else the build
tree's tests/anthropic/node_modules, installed there with `npm ci` when
missing (harness.npm_modules).
"""

import json
import math
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

SRC = os.path.join(H.SRCDIR, "tests", "anthropic")
SCRIPT = os.path.join(SRC, "sdk-test.cjs")
PACKAGE = "@anthropic-ai/sdk"
PINNED = "1.17.0"
MODEL = "claude-sonnet-4-5"
UPSTREAM_MODEL = "fake-claude-upstream"  # what the deployment calls it
ANSWER = "Hello from the fake upstream."

# Claude Sonnet 4.5 in etc/model_prices.json, USD per token.
IN = Decimal("3e-06")
OUT = Decimal("1.5e-05")
READ = Decimal("3e-07")
WRITE_5M = Decimal("3.75e-06")
WRITE_1H = Decimal("6e-06")

# An OpenAI-format deployment (chat completions) on the fake upstream, priced
# H.IN_PRICE / H.OUT_PRICE, and the fake's chat answers for the gpt_* steps,
# queued in the order sdk-test.cjs calls (gpt_tool makes two calls).
GPT_MODEL = "fake-gpt"
GPT_UPSTREAM = "gpt-up"
GPT_ANSWERS = [
    ("create", {"content": "Bonjour from GPT.",
                "usage": {"prompt_tokens": 50, "completion_tokens": 9,
                          "prompt_tokens_details": {"cached_tokens": 20}}}),
    ("stream", {"content": "one two three",
                "usage": {"prompt_tokens": 33, "completion_tokens": 6,
                          "prompt_tokens_details": {"cached_tokens": 12}}}),
    ("tool_1", {"content": "Let me check.",
                "tool_calls": [{"name": "get_weather",
                                "arguments": "{\"city\": \"Paris\", \"days\": 2}"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 15}}),
    ("tool_2", {"content": "It is sunny in Paris.",
                "usage": {"prompt_tokens": 90, "completion_tokens": 8,
                          "prompt_tokens_details": {"cached_tokens": 64}}}),
    ("tool_stream", {"tool_calls": [{"name": "get_weather",
                                     "arguments": {"city": "Lyon", "days": 3}}],
                     "usage": {"prompt_tokens": 44, "completion_tokens": 12}}),
]


def gpt_usage(name):
    u = dict(GPT_ANSWERS)[name]["usage"]
    return (u["prompt_tokens"], (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            u["completion_tokens"])


def gpt_price(name):
    p, _, c = gpt_usage(name)
    return p * H.IN_PRICE + c * H.OUT_PRICE


def gpt_message_usage(name):
    """The usage a message reports for the fake's chat usage: the cached
    part of the prompt as cache reads, the rest as input_tokens."""
    p, cached, c = gpt_usage(name)
    return {"input_tokens": p - cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached, "output_tokens": c}


# What sdk-test.cjs tells the fake to report (its USAGE), priced by hand.
USAGE = {
    "create": dict(input_tokens=17, output_tokens=23, cache_read=41, write_5m=53, write_1h=61),
    "create_header": dict(input_tokens=19, output_tokens=29, cache_read=0, write_5m=11,
                          write_1h=0),
    "create_x_api_key": dict(input_tokens=13, output_tokens=11, cache_read=0, write_5m=0,
                             write_1h=0),
    "stream": dict(input_tokens=31, output_tokens=37, cache_read=7, write_5m=5, write_1h=3),
}


def price(u):
    return (u["input_tokens"] * IN + u["output_tokens"] * OUT + u["cache_read"] * READ
            + u["write_5m"] * WRITE_5M + u["write_1h"] * WRITE_1H)


def prompt_tokens(u):
    return u["input_tokens"] + u["cache_read"] + u["write_5m"] + u["write_1h"]


def deployment(env):
    return {"model_name": MODEL,
            "litellm_params": {"model": "anthropic/" + UPSTREAM_MODEL,
                               "api_base": env.upstream.base, "api_key": H.UPSTREAM_KEY},
            "model_info": {"base_model": "claude-sonnet-4-5"}}


def call_type(env, call_id):
    rows = env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                   % H.sql_quote(call_id or "-"))
    return rows[0][0] if rows else None


def grew(step):
    """How much a step's customer spend grew (from its before/after), or None."""
    if step.get("after") is None:
        return None
    return dec(step.get("after")) - dec(step.get("before") or 0)


def key_row(env, token):
    rows = env.sql("SELECT spend, reserved FROM api_keys WHERE token = %s" % H.sql_quote(token))
    return (dec(rows[0][0]), dec(rows[0][1])) if rows else None


def generate_key(t, env, max_budget, model=MODEL):
    r = env.request("POST", "/key/generate", body={"models": [model], "max_budget": max_budget})
    js = r.json or {}
    t.ok(r.status == 200 and js.get("key") and js.get("token"),
         "key/generate (models [%s], max_budget %s)" % (model, max_budget), r.text[:300])
    return js.get("key") or "", js.get("token") or ""


def run_node(t, env, node, mods, srv, run_env, scenarios=(), what="sdk-test.cjs"):
    """Run sdk-test.cjs (the given scenarios, else its default ones): its
    JSON report, or None (and a failed test) when it did not print one."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.tmp,
         "NODE_PATH": mods, "TG_BASE_URL": "http://127.0.0.1:%d" % srv.port,
         "TG_MASTER_KEY": H.MASTER_KEY}
    e.update(run_env)
    p = subprocess.run([node, SCRIPT] + list(scenarios), env=e, cwd=env.tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    out_text = p.stdout.decode("utf-8", "replace")
    try:
        res = json.loads(out_text.strip().splitlines()[-1], parse_float=Decimal)
    except (ValueError, IndexError):
        res = None
    if not t.ok(p.returncode == 0 and isinstance(res, dict), "node ran %s" % what,
                "exit %d" % p.returncode, "stdout: %s" % out_text[-2000:],
                "stderr: %s" % p.stderr.decode("utf-8", "replace")[-2000:]):
        return None
    t.is_eq(res.get("errors"), [], "%s: the SDK calls raised nothing unexpected" % what)
    return res


def main(t, env):
    node = H.find_node()
    mods = H.npm_modules(SRC, PACKAGE, "TG_ANTHROPIC_NODE_MODULES")
    with open(os.path.join(mods, PACKAGE, "package.json")) as f:
        version = json.load(f).get("version")
    t.is_eq(version, PINNED, "the pinned %s is installed (%s)" % (PACKAGE, mods))

    cfg = env.write_config("main", env.config(models=[
        deployment(env), env.model(GPT_MODEL, upstream_model=GPT_UPSTREAM)]))
    srv = env.start_lighttpd(cfg, max_procs=2)
    user, header_user, over, count_user = "anth-user", "anth-header", "anth-over", "anth-count"
    r = env.customer_new(user_id=user, max_budget=10)
    t.is_eq(r.status, 200, "customer/new %s (max_budget 10)" % user, r.text[:200])
    r = env.customer_new(user_id=over, max_budget=0)
    t.is_eq(r.status, 200, "customer/new %s (max_budget 0)" % over, r.text[:200])
    key, token = generate_key(t, env, 10)
    over_key, over_token = generate_key(t, env, 0)
    env.upstream.reset()

    res = run_node(t, env, node, mods, srv, {
        "TG_KEY": key, "TG_MODEL": MODEL, "TG_USER": user, "TG_HEADER_USER": header_user,
        "TG_OVER_USER": over, "TG_COUNT_USER": count_user, "TG_OVER_KEY": over_key})
    if res is None:
        return
    t.is_eq((res.get("sdk_version"), res.get("max_retries")), (PINNED, 2),
            "SDK %s, maxRetries at its default, 2" % PINNED)

    charged = Decimal(0)
    # -- messages.create: metadata.user_id, the header, x-api-key --
    for name, who, what in (
            ("create", user, "messages.create, the customer in metadata.user_id"),
            ("create_header", header_user,
             "messages.create, the customer in x-litellm-customer-id (created)"),
            ("create_x_api_key", user, "messages.create with x-api-key")):
        s = res.get(name) or {}
        u = USAGE[name]
        want = price(u)
        charged += want
        t.diag("%s: %s" % (name, json.dumps(s, default=str)))
        t.is_eq((s.get("type"), s.get("text")), ("message", ANSWER),
                "%s: a message with the fake's text" % what)
        su = s.get("usage") or {}
        t.is_eq((su.get("input_tokens"), su.get("output_tokens"),
                 su.get("cache_read_input_tokens"), su.get("cache_creation_input_tokens")),
                (u["input_tokens"], u["output_tokens"], u["cache_read"],
                 u["write_5m"] + u["write_1h"]), "%s: the usage relayed" % what)
        if name == "create":
            t.is_eq(su.get("cache_creation"), {"ephemeral_5m_input_tokens": u["write_5m"],
                                               "ephemeral_1h_input_tokens": u["write_1h"]},
                    "%s: usage.cache_creation (the 5m / 1h split) relayed" % what)
        t.is_eq(s.get("requests"), 1, "%s: one HTTP request" % what)
        t.is_eq(grew(s), want, "%s: the customer's spend grows by exactly %s" % (what, want))
        t.is_eq(dec(s.get("cost_header")), want, "%s: x-litellm-response-cost" % what)
        row = env.ledger_row(s.get("call_id") or "-") or {}
        t.is_eq((row.get("end_user"), row.get("status"), row.get("spend"),
                 row.get("prompt_tokens"), row.get("completion_tokens"), row.get("api_key")),
                (who, "success", want, str(prompt_tokens(u)), str(u["output_tokens"]), token),
                "%s: ledger row (the customer, success, the cost, every input token, the "
                "key's token)" % what)
        t.is_eq(call_type(env, s.get("call_id")), "anthropic_messages",
                "%s: call_type anthropic_messages" % what)
    ch = env.customer_row(header_user) or {}
    t.is_eq((ch.get("spend"), ch.get("reserved")), (price(USAGE["create_header"]), Decimal(0)),
            "the customer named by the header was created and charged its call")

    # -- messages.stream --
    st = res.get("stream") or {}
    u = USAGE["stream"]
    want = price(u)
    charged += want
    types = st.get("types") or []
    t.diag("stream events: %s" % " ".join(types))
    # (the fake's ping, after message_start, is dropped by the SDK itself:
    # core/streaming.js skips "event: ping")
    t.is_eq(types, ["message_start", "content_block_start"]
            + ["content_block_delta"] * 3 + ["content_block_stop"]
            + ["message_delta"] * 3 + ["message_stop"],
            "messages.stream: the events in order, message_start first, three cumulative "
            "message_delta, message_stop last")
    t.is_eq((st.get("text"), st.get("final_text"), st.get("final_stop_reason")),
            ("tok1 tok2 tok3", "tok1 tok2 tok3", "end_turn"),
            "messages.stream: the text deltas and finalMessage()")
    t.like(st.get("content_type") or "", r"^text/event-stream", "messages.stream: content type")
    fu = st.get("final_usage") or {}
    t.is_eq((fu.get("input_tokens"), fu.get("output_tokens"), fu.get("cache_read_input_tokens"),
             fu.get("cache_creation_input_tokens"), fu.get("cache_creation")),
            (u["input_tokens"], u["output_tokens"], u["cache_read"], u["write_5m"] + u["write_1h"],
             {"ephemeral_5m_input_tokens": u["write_5m"],
              "ephemeral_1h_input_tokens": u["write_1h"]}),
            "messages.stream: finalMessage().usage, the final counts and the cache split")
    t.is_eq(st.get("requests"), 1, "messages.stream: one HTTP request")
    t.is_eq(grew(st), want, "messages.stream: the customer's spend grows by exactly %s" % want)
    row = env.ledger_row(st.get("call_id") or "-") or {}
    t.is_eq((row.get("end_user"), row.get("status"), row.get("spend"), row.get("prompt_tokens"),
             row.get("completion_tokens"), row.get("api_key")),
            (user, "success", want, str(prompt_tokens(u)), str(u["output_tokens"]), token),
            "messages.stream: ledger row (the last cumulative output count, not a sum)")
    t.is_eq(call_type(env, st.get("call_id")), "anthropic_messages",
            "messages.stream: call_type anthropic_messages")

    # -- messages.countTokens --
    ct = res.get("count_tokens") or {}
    t.diag("count_tokens: %s" % json.dumps(ct, default=str))
    want_count = math.ceil(len(json.dumps([{"role": "user", "content": "Say hello"}])
                               .encode()) / 4)
    t.is_eq((ct.get("status"), ct.get("input_tokens"), ct.get("keys")),
            (200, want_count, ["input_tokens"]),
            "messages.countTokens: {input_tokens: %d}, the fake's count relayed" % want_count)
    t.like(ct.get("url") or "", r"/v1/messages/count_tokens$",
           "messages.countTokens: POST /v1/messages/count_tokens")
    t.ok(bool(ct.get("call_id")), "messages.countTokens: an x-litellm-call-id")
    t.is_eq(env.ledger_row(ct.get("call_id") or "-"), None,
            "messages.countTokens: no spend_logs row (uncharged)")
    cc = env.customer_row(count_user)
    t.ok(cc is None or (cc.get("spend"), cc.get("reserved")) == (Decimal(0), Decimal(0)),
         "messages.countTokens: the customer it names (%s) is not created or charged" % count_user,
         "got %r" % (cc,))

    # -- what the upstream saw --
    reqs = env.upstream.requests()
    t.is_eq(sorted((q["method"], q["path"]) for q in reqs),
            [("POST", "/v1/messages")] * 4 + [("POST", "/v1/messages/count_tokens")],
            "the upstream saw the four messages and the count, nothing else")
    t.ok(all(q["headers"].get("x-api-key") == H.UPSTREAM_KEY
             and q["headers"].get("anthropic-version") == "2023-06-01"
             and q["headers"].get("authorization") is None for q in reqs),
         "upstream: the deployment's x-api-key, anthropic-version 2023-06-01, no Authorization",
         [(q["path"], {k: q["headers"].get(k) for k in (
             "x-api-key", "anthropic-version", "authorization")}) for q in reqs])
    t.ok(all((q.get("json") or {}).get("model") == UPSTREAM_MODEL for q in reqs),
         "upstream: the deployment's model name (%s)" % UPSTREAM_MODEL,
         [(q.get("json") or {}).get("model") for q in reqs])
    t.ok(reqs and not any(k in json.dumps(q) for q in reqs for k in (key, over_key)),
         "upstream: the client's keys went nowhere upstream")

    # -- the key --
    t.is_eq(key_row(env, token), (charged, Decimal(0)),
            "the key's spend = its four charges (%s), nothing reserved" % charged)
    cu = env.customer_row(user) or {}
    t.is_eq((cu.get("spend"), cu.get("reserved")),
            (price(USAGE["create"]) + price(USAGE["create_x_api_key"]) + want, Decimal(0)),
            "%s: spend = its three calls, nothing reserved" % user)
    t.is_eq(cu.get("spend"), env.ledger_sum(user), "%s: spend == ledger sum" % user)
    rows = env.sql("SELECT call_type, COUNT(*) FROM spend_logs GROUP BY call_type")
    t.is_eq([tuple(r) for r in rows], [("anthropic_messages", "4")],
            "spend_logs: four rows, all anthropic_messages (count_tokens and refusals wrote none)")

    # -- refusals --
    for name, who, what in (("refusal", over, "a customer over budget"),
                            ("refusal_stream", over, "a customer over budget, streamed"),
                            ("refusal_key", user, "a key over budget")):
        ob = res.get(name) or {}
        t.diag("%s, as the SDK saw it: %s" % (what, json.dumps(ob, default=str)))
        t.ok(ob.get("raised") is True and ob.get("is_api_error") is True
             and ob.get("is_rate_limit_error") is True and ob.get("status") == 429,
             "%s: the SDK raises RateLimitError, status 429 (%s)" % (what, ob.get("name")),
             "got %r" % (ob,))
        err = ob.get("error") or {}
        t.is_eq((err.get("type"), ob.get("error_type")), ("error", "rate_limit_error"),
                "%s: Anthropic's envelope {type: error, error: {type: rate_limit_error}}" % what)
        t.like(ob.get("error_message") or "", r"(?i)budget",
               "%s: the message names the budget" % what)
        t.is_eq(ob.get("should_retry"), "false", "%s: x-should-retry: false" % what)
        t.is_eq((ob.get("requests"), ob.get("statuses")), (1, [429]),
                "%s: exactly one HTTP request (maxRetries 2 not used)" % what)
        if name == "refusal_stream":
            t.is_eq(ob.get("types"), [], "%s: no event delivered" % what)
        t.is_eq(grew(ob) if ob.get("before") is not None else None, Decimal(0),
                "%s: %s's spend unchanged" % (what, who))
    t.is_eq([q for q in reqs if ((q.get("json") or {}).get("fake") or {}).get("usage", {})
             .get("input_tokens") == 11], [], "refusals: the upstream saw none of them")
    t.is_eq(env.ledger_rows(over), [], "refusals: no spend_logs row for %s" % over)
    co = env.customer_row(over) or {}
    t.is_eq((co.get("spend"), co.get("reserved")), (Decimal(0), Decimal(0)),
            "refusals: %s charged and holding nothing" % over)
    t.is_eq(key_row(env, over_token), (Decimal(0), Decimal(0)),
            "refusals: the key over budget charged and holding nothing")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM reservations")[0][0]), 0, "no hold left")

    gpt_checks(t, env, node, mods, srv, (key, over_key))


def gpt_checks(t, env, node, mods, srv, other_keys):
    """The SDK against an OpenAI-format deployment: the Messages API call
    sent as a chat completion, answered in Anthropic's shape."""
    who = "anth-gpt"
    r = env.customer_new(user_id=who, max_budget=10)
    t.is_eq(r.status, 200, "customer/new %s (max_budget 10)" % who, r.text[:200])
    key, token = generate_key(t, env, 10, model=GPT_MODEL)
    env.upstream.reset()
    for _, spec in GPT_ANSWERS:
        env.upstream.next(spec)
    scenarios = ["gpt_create", "gpt_stream", "gpt_tool", "gpt_tool_stream"]
    res = run_node(t, env, node, mods, srv, {"TG_KEY": key, "TG_MODEL": GPT_MODEL,
                                             "TG_GPT_MODEL": GPT_MODEL, "TG_USER": who},
                   scenarios=scenarios, what="sdk-test.cjs (the gpt_* steps)")
    if res is None:
        return
    t.is_eq(res.get("scenarios"), scenarios, "gpt: the node run did the four gpt_* steps")

    posts = [q for q in env.upstream.requests() if q["method"] == "POST"]
    t.is_eq([(q["path"], q.get("fake_from_queue")) for q in posts],
            [("/v1/chat/completions", spec) for _, spec in GPT_ANSWERS],
            "gpt: the upstream got five chat completions, each taking its queued answer in order")
    t.ok(all(q["headers"].get("authorization") == "Bearer " + H.UPSTREAM_KEY
             and q["headers"].get("x-api-key") is None for q in posts),
         "gpt: upstream calls carry the deployment's key as Bearer, no x-api-key",
         [{k: q["headers"].get(k) for k in ("authorization", "x-api-key")} for q in posts])
    t.ok(posts and not any(k in json.dumps(q) for q in posts for k in (key,) + other_keys),
         "gpt: the client's keys went nowhere upstream")
    sent = [q.get("json") or {} for q in posts] + [{}] * 5
    total = Decimal(0)

    # -- messages.create --
    s = res.get("gpt_create") or {}
    t.diag("gpt_create: %s" % json.dumps(s, default=str))
    want = gpt_price("create")
    total += want
    t.is_eq(sent[0], {"model": GPT_UPSTREAM, "max_tokens": 100, "user": who,
                      "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Say hello"}]},
            "gpt create: sent as a chat completion (system message, user)", json.dumps(sent[0]))
    t.is_eq((s.get("type"), s.get("role"), s.get("content"), s.get("stop_reason"),
             s.get("stop_sequence")),
            ("message", "assistant", [{"type": "text", "text": "Bonjour from GPT."}],
             "end_turn", None),
            "gpt create: a message with the text, stop -> stop_reason end_turn")
    t.is_eq(s.get("usage"), gpt_message_usage("create"),
            "gpt create: usage: cached_tokens as cache_read_input_tokens, the rest input_tokens")
    t.is_eq(s.get("requests"), 1, "gpt create: one HTTP request")
    t.is_eq(grew(s), want, "gpt create: the customer's spend grows by exactly %s" % want)
    t.is_eq(dec(s.get("cost_header")), want, "gpt create: x-litellm-response-cost")
    p, _, c = gpt_usage("create")
    row = env.ledger_row(s.get("call_id") or "-") or {}
    t.is_eq((row.get("end_user"), row.get("status"), row.get("spend"), row.get("prompt_tokens"),
             row.get("completion_tokens"), row.get("api_key")),
            (who, "success", want, str(p), str(c), token),
            "gpt create: ledger row (the customer, success, the cost, the key's token)")
    t.is_eq(call_type(env, s.get("call_id")), "anthropic_messages",
            "gpt create: call_type anthropic_messages")

    # -- messages.stream --
    st = res.get("gpt_stream") or {}
    t.diag("gpt_stream: %s" % json.dumps(st, default=str))
    want = gpt_price("stream")
    total += want
    t.is_eq((sent[1].get("stream"), sent[1].get("stream_options")),
            (True, {"include_usage": True}), "gpt stream: the upstream is asked for its usage")
    t.is_eq(st.get("types"), ["message_start", "content_block_start"]
            + ["content_block_delta"] * 3 + ["content_block_stop", "message_delta",
                                             "message_stop"],
            "gpt stream: message_start, a text block's events, message_delta, message_stop")
    t.is_eq((st.get("text"), st.get("final_text"), st.get("final_stop_reason")),
            ("one two three", "one two three", "end_turn"),
            "gpt stream: the text deltas, finalMessage()'s text and stop_reason end_turn")
    t.is_eq(st.get("delta_usage"), gpt_message_usage("stream"),
            "gpt stream: message_delta's usage")
    fu = st.get("final_usage") or {}
    t.is_eq({k: fu.get(k) for k in gpt_message_usage("stream")}, gpt_message_usage("stream"),
            "gpt stream: finalMessage().usage")
    t.like(st.get("content_type") or "", r"^text/event-stream", "gpt stream: content type")
    t.is_eq(st.get("requests"), 1, "gpt stream: one HTTP request")
    t.is_eq(grew(st), want, "gpt stream: the customer's spend grows by exactly %s" % want)
    row = env.ledger_row(st.get("call_id") or "-") or {}
    t.is_eq((row.get("end_user"), row.get("status"), row.get("spend")), (who, "success", want),
            "gpt stream: ledger row")

    # -- a tool use, and the result sent back --
    tl = res.get("gpt_tool") or {}
    t.diag("gpt_tool: %s" % json.dumps(tl, default=str))
    want = gpt_price("tool_1") + gpt_price("tool_2")
    total += want
    t.is_eq(sent[2].get("tools"), [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city"]}}}],
        "gpt tool: the tool sent as a chat function tool")
    first, second = tl.get("first") or {}, tl.get("second") or {}
    blocks = first.get("content") or []
    use = blocks[-1] if blocks else {}
    t.is_eq(([(b.get("type"), b.get("text"), b.get("name"), b.get("input")) for b in blocks],
             first.get("stop_reason")),
            ([("text", "Let me check.", None, None),
              ("tool_use", None, "get_weather", {"city": "Paris", "days": 2})], "tool_use"),
            "gpt tool: a text block, then a tool_use block with the parsed input; stop_reason "
            "tool_use")
    t.ok(isinstance(use.get("id"), str) and use.get("id"),
         "gpt tool: the tool_use block has an id (%s)" % use.get("id"))
    t.is_eq(first.get("usage"), gpt_message_usage("tool_1"), "gpt tool: usage")
    msgs = sent[3].get("messages") or []
    call = ((msgs[1].get("tool_calls") or [{}])[0] if len(msgs) > 1 else {})
    try:
        args = json.loads((call.get("function") or {}).get("arguments") or "null")
    except ValueError:
        args = "not JSON: %r" % (call.get("function") or {}).get("arguments")
    t.is_eq((msgs[:1], len(msgs), msgs[1:2] and {k: v for k, v in msgs[1].items()
                                                 if k != "tool_calls"},
             call.get("id"), call.get("type"), (call.get("function") or {}).get("name"), args,
             msgs[2:]),
            ([{"role": "user", "content": "What is the weather in Paris?"}], 3,
             {"role": "assistant", "content": "Let me check."}, use.get("id"), "function",
             "get_weather", {"city": "Paris", "days": 2},
             [{"role": "tool", "tool_call_id": use.get("id"), "content": "sunny, 21 C"}]),
            "gpt tool: the tool_use went back as the assistant's tool_calls, the tool_result "
            "as a tool message", json.dumps(msgs))
    t.is_eq((second.get("content"), second.get("stop_reason"), second.get("usage")),
            ([{"type": "text", "text": "It is sunny in Paris."}], "end_turn",
             gpt_message_usage("tool_2")), "gpt tool: the final answer's text and usage")
    for name, step in (("tool_1", first), ("tool_2", second)):
        row = env.ledger_row(step.get("call_id") or "-") or {}
        t.is_eq((row.get("end_user"), row.get("status"), row.get("spend")),
                (who, "success", gpt_price(name)),
                "gpt tool (%s): ledger row, charged %s" % (name, gpt_price(name)))
    t.is_eq(tl.get("requests"), 2, "gpt tool: two HTTP requests")
    t.is_eq(grew(tl), want, "gpt tool: the customer's spend grows by exactly %s" % want)

    # -- a tool use, streamed --
    ts = res.get("gpt_tool_stream") or {}
    t.diag("gpt_tool_stream: %s" % json.dumps(ts, default=str))
    want = gpt_price("tool_stream")
    total += want
    types = ts.get("types") or []
    t.is_eq((types[:2], types[-3:], set(types[2:-3])),
            (["message_start", "content_block_start"],
             ["content_block_stop", "message_delta", "message_stop"], {"content_block_delta"}),
            "gpt tool stream: message_start, one block's events, message_delta, message_stop")
    fc = ts.get("final_content") or []
    t.is_eq(([(b.get("type"), b.get("name"), b.get("input")) for b in fc],
             json.loads(ts.get("partial_json") or "null"), ts.get("final_stop_reason")),
            ([("tool_use", "get_weather", {"city": "Lyon", "days": 3})],
             {"city": "Lyon", "days": 3}, "tool_use"),
            "gpt tool stream: finalMessage() has the tool_use block with the input built from "
            "the input_json_delta pieces; stop_reason tool_use")
    fu = ts.get("final_usage") or {}
    t.is_eq({k: fu.get(k) for k in gpt_message_usage("tool_stream")},
            gpt_message_usage("tool_stream"), "gpt tool stream: finalMessage().usage")
    t.is_eq(grew(ts), want, "gpt tool stream: the customer's spend grows by exactly %s" % want)

    cu = env.customer_row(who) or {}
    t.is_eq((cu.get("spend"), cu.get("reserved")), (total, Decimal(0)),
            "gpt: %s's spend = its five calls (%s), nothing reserved" % (who, total))
    t.is_eq(cu.get("spend"), env.ledger_sum(who), "gpt: %s's spend == ledger sum" % who)
    t.is_eq(key_row(env, token), (total, Decimal(0)),
            "gpt: the key's spend = the five charges, nothing reserved")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM reservations")[0][0]), 0, "gpt: no hold left")


if __name__ == "__main__":
    H.run(main)
