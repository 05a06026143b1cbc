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
    the upstream saw nothing and nothing was charged;
  * the Responses API (client.responses.create, streamed and not, and the
    client.responses.stream helper): output_text, the events ending with
    response.completed, the final response's usage, the exact charge and
    a ledger row with call_type aresponses;
  * client.embeddings.create with encoding_format float, the SDK's
    default (it sends base64 and decodes to floats) and explicit base64:
    two vectors, the same floats each way, charged prompt_tokens x IN,
    call_type aembedding;
  * client.completions.create (legacy): the text, the exact charge,
    call_type atext_completion;
  * a customer over budget on /v1/responses: the SDK's 429 after exactly
    one request, nothing sent upstream, nothing charged.
  * a Claude model (CLAUDE: its deployment is anthropic/ on the fake
    upstream, priced by base_model claude-sonnet-4-5), in a second node
    run (sdk-test.cjs claude_create claude_stream claude_tools) after the
    upstream's queue is loaded with its answers (a translated request
    drops the "fake" field): chat.completions.create (the text,
    finish_reason stop, usage.prompt_tokens counting the cache reads and
    writes, prompt_tokens_details.cached_tokens the reads, the exact
    charge at Claude Sonnet 4.5's prices, call_type acompletion); streamed
    with include_usage (the chunks' text, the last finish_reason stop, the
    usage chunk last with its cost); a tool-call round trip (tool_use ->
    tool_calls with JSON arguments; the assistant's tool_calls and the
    "tool" message reach the upstream as tool_use and tool_result blocks;
    the final text).

node_modules: tests/sdk/node_modules in the source tree (script/test runs
`npm ci` there), else TG_SDK_NODE_MODULES, else the build tree's
tests/sdk/node_modules, installed there with `npm ci` when missing.
"""

import base64
import json
import os
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

SDK_SRC = os.path.join(H.SRCDIR, "tests", "sdk")
SCRIPT = os.path.join(SDK_SRC, "sdk-test.cjs")
PINNED = "5.23.2"

# A Claude model: an anthropic/ deployment on the fake upstream, priced from
# the shipped price file (Claude Sonnet 4.5), USD per token.
CLAUDE = "claude-sonnet"
CLAUDE_UPSTREAM = "claude-up"
C_IN = Decimal("3e-06")
C_OUT = Decimal("1.5e-05")
C_READ = Decimal("3e-07")
C_WRITE_5M = Decimal("3.75e-06")

# The fake's Anthropic answers for the claude_* steps, queued in the order
# sdk-test.cjs calls: claude_create, claude_stream, claude_tools (two calls).
CLAUDE_ANSWERS = [
    ("create", {"content": "Hello from Claude.",
                "usage": {"input_tokens": 25, "cache_read_input_tokens": 120,
                          "cache_creation_input_tokens": 48, "output_tokens": 14}}),
    ("stream", {"content": "one two three", "delta_usage_steps": 2,
                "usage": {"input_tokens": 21, "cache_read_input_tokens": 64,
                          "cache_creation_input_tokens": 9, "output_tokens": 8}}),
    ("tools_1", {"content": None,
                 "tool_use": [{"name": "get_weather", "input": {"city": "Paris", "days": 2}}],
                 "usage": {"input_tokens": 40, "output_tokens": 18}}),
    ("tools_2", {"content": "It is sunny in Paris, 21 C.",
                 "usage": {"input_tokens": 70, "cache_read_input_tokens": 40,
                           "output_tokens": 9}}),
]


def claude_usage(name):
    u = dict(CLAUDE_ANSWERS)[name]["usage"]
    return (u.get("input_tokens", 0), u.get("cache_read_input_tokens", 0),
            u.get("cache_creation_input_tokens", 0), u.get("output_tokens", 0))


def claude_price(name):
    i, r, w, o = claude_usage(name)
    return i * C_IN + r * C_READ + w * C_WRITE_5M + o * C_OUT


def node_modules():
    """A node_modules holding the pinned openai package."""
    return H.npm_modules(SDK_SRC, "openai", "TG_SDK_NODE_MODULES")


def call_type(env, call_id):
    rows = env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                   % H.sql_quote(call_id or ""))
    return rows[0][0] if rows else None


def grew(step):
    """How much a step's customer spend grew (from its before/after), or None."""
    if not step.get("after"):
        return None
    return dec(step.get("after")) - dec(step.get("before") or 0)


def floats(v):
    """An embedding the SDK returned as a list of numbers, as Python floats."""
    return [float(x) for x in v] if isinstance(v, list) else None


def b64_floats(v):
    """A base64 embedding (little-endian float32) as Python floats."""
    try:
        raw = base64.b64decode(v, validate=True)
    except (TypeError, ValueError):
        return None
    if len(raw) % 4:
        return None
    return list(struct.unpack("<%df" % (len(raw) // 4), raw))


def claude_deployment(env):
    return {"model_name": CLAUDE,
            "litellm_params": {"model": "anthropic/" + CLAUDE_UPSTREAM,
                               "api_base": env.upstream.base, "api_key": H.UPSTREAM_KEY},
            "model_info": {"base_model": "claude-sonnet-4-5"}}


def run_node(t, env, node, srv, run_env, scenarios=(), what="sdk-test.cjs"):
    """Run sdk-test.cjs (the given scenarios, else its default ones): its
    JSON report, or None (and a failed test) when it did not print one."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.tmp,
         "TG_BASE_URL": "http://127.0.0.1:%d" % srv.port, "TG_API_KEY": H.MASTER_KEY}
    e.update(run_env)
    p = subprocess.run([node, SCRIPT] + list(scenarios), env=e, cwd=env.tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
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
    mods = node_modules()
    with open(os.path.join(mods, "openai", "package.json")) as f:
        version = json.load(f).get("version")
    t.is_eq(version, PINNED, "the pinned openai package is installed (%s)" % mods)

    cfg = env.write_config("main", env.config(models=[
        env.model("fake-gpt"), env.model("fake-gpt-2"), claude_deployment(env)]))
    srv = env.start_lighttpd(cfg, max_procs=2)
    user, over, apis = "sdk-user", "sdk-over", "sdk-apis"
    r = env.customer_new(user_id=user, max_budget=10)
    t.is_eq(r.status, 200, "customer/new %s" % user)
    r = env.customer_new(user_id=over, max_budget=0)
    t.is_eq(r.status, 200, "customer/new %s (max_budget 0)" % over)
    r = env.customer_new(user_id=apis, max_budget=10)
    t.is_eq(r.status, 200, "customer/new %s" % apis)
    env.upstream.reset()

    res = run_node(t, env, node, srv, {
        "NODE_PATH": mods, "TG_USER": user, "TG_OVER_USER": over, "TG_APIS_USER": apis,
        "TG_MODEL": "fake-gpt"})
    if res is None:
        return

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
    t.is_eq(sorted(m.get("id") for m in models), [CLAUDE, "fake-gpt", "fake-gpt-2"],
            "SDK: client.models.list() lists the model names")
    t.ok(all(m.get("object") == "model" and m.get("owned_by")
             == ("anthropic" if m.get("id") == CLAUDE else "openai") for m in models),
         "SDK: models have object model, owned_by openai (anthropic for %s)" % CLAUDE,
         "got %r" % (models,))

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

    apis_checks(t, env, res, apis, over)
    claude_checks(t, env, node, mods, srv)


def apis_checks(t, env, res, apis, over):
    """The Responses API, embeddings and legacy completions through the SDK."""
    total = Decimal(0)

    # Responses, not streamed
    rs = res.get("responses") or {}
    want = cost(31, 37)
    total += want
    t.is_eq((rs.get("object"), rs.get("status")), ("response", "completed"),
            "SDK responses: a completed response parsed")
    t.is_eq(rs.get("output_text"), "Hello from the fake upstream.", "SDK responses: output_text")
    t.is_eq(((rs.get("usage") or {}).get("input_tokens"),
             (rs.get("usage") or {}).get("output_tokens")), (31, 37), "SDK responses: usage")
    t.is_eq(grew(rs), want, "SDK responses: spend grows by exactly the fake usage's cost")
    t.is_eq(dec(rs.get("cost_header")), want, "SDK responses: x-litellm-response-cost")
    row = env.ledger_row(rs.get("call_id") or "")
    t.is_eq(row and (row["end_user"], row["status"], row["spend"], row["prompt_tokens"],
                     row["completion_tokens"]), (apis, "success", want, "31", "37"),
            "SDK responses: ledger row for the call id")
    t.is_eq(call_type(env, rs.get("call_id")), "aresponses", "SDK responses: call_type aresponses")

    # Responses, streamed (create with stream: true)
    rst = res.get("responses_stream") or {}
    want = cost(41, 43)
    total += want
    types = rst.get("types") or []
    t.diag("responses stream events: %s" % " ".join(types))
    t.is_eq(types[:1] + types[-1:], ["response.created", "response.completed"],
            "SDK responses stream: response.created first, response.completed last")
    t.is_eq(types.count("response.completed"), 1, "SDK responses stream: one response.completed")
    t.is_eq(rst.get("text"), "tok1 tok2 tok3", "SDK responses stream: the text deltas")
    t.like(rst.get("content_type") or "", r"^text/event-stream",
           "SDK responses stream: content type")
    cu = rst.get("completed_usage") or {}
    t.is_eq((rst.get("completed_status"), cu.get("input_tokens"), cu.get("output_tokens")),
            ("completed", 41, 43), "SDK responses stream: response.completed carries the usage")
    t.is_eq(grew(rst), want, "SDK responses stream: spend grows by exactly the fake usage's cost")
    row = env.ledger_row(rst.get("call_id") or "")
    t.is_eq(row and (row["end_user"], row["status"], row["spend"]), (apis, "success", want),
            "SDK responses stream: ledger row for the call id")
    t.is_eq(call_type(env, rst.get("call_id")), "aresponses",
            "SDK responses stream: call_type aresponses")

    # Responses, streamed (the responses.stream helper and finalResponse())
    rh = res.get("responses_stream_helper") or {}
    want = cost(13, 11)
    total += want
    types = rh.get("types") or []
    t.is_eq(types[-1:], ["response.completed"], "SDK responses.stream(): last event "
            "response.completed")
    hu = rh.get("usage") or {}
    # (the SDK's finalResponse() sets output_text only when it parses a
    # text format or tools, so the text is that of the message items)
    t.is_eq((rh.get("status"), rh.get("message_text"), hu.get("input_tokens"),
             hu.get("output_tokens"), hu.get("total_tokens")),
            ("completed", "tok1 tok2", 13, 11, 24),
            "SDK responses.stream(): finalResponse() has the text and the usage")
    t.is_eq(grew(rh), want, "SDK responses.stream(): spend grows by exactly the fake usage's cost")

    # Embeddings
    sent = {}
    for q in env.upstream.requests():
        js = q.get("json") or {}
        if q.get("path", "").endswith("/embeddings") and js.get("user") == apis:
            p = ((js.get("fake") or {}).get("usage") or {}).get("prompt_tokens")
            sent[p] = js.get("encoding_format", "(absent)")
    vecs = {}
    for name, fmt, p, upstream_fmt, decode in (
            ("embeddings_float", "float", 5, "float", floats),
            ("embeddings_default", "the default", 6, "base64", floats),
            ("embeddings_base64", "base64", 7, "base64", b64_floats)):
        e = res.get(name) or {}
        want = cost(p, 0)
        total += want
        what = "SDK embeddings (%s)" % fmt
        t.is_eq(sent.get(p), upstream_fmt, "%s: the upstream got encoding_format %s"
                % (what, upstream_fmt))
        data = e.get("data") or []
        t.is_eq([(d.get("index"), d.get("object")) for d in data],
                [(0, "embedding"), (1, "embedding")], "%s: two embeddings" % what)
        want_type = "string" if fmt == "base64" else "array"
        t.ok(len(data) == 2 and all(d.get("type") == want_type for d in data)
             and (fmt == "base64" or all(d.get("all_numbers") for d in data)),
             "%s: the SDK returns %s" % (what, "base64 strings, undecoded" if fmt == "base64"
                                         else "arrays of numbers"),
             "got %r" % ([(d.get("type"), d.get("value")) for d in data],))
        vs = [decode(d.get("value")) for d in data]
        vecs[fmt] = vs
        t.ok(len(vs) == 2 and all(v and len(v) == 8 and abs(sum(x * x for x in v) - 1) < 1e-5
                                  for v in vs) and vs[0] != vs[1],
             "%s: two distinct unit vectors of 8 floats" % what, "got %r" % (vs,))
        t.is_eq((e.get("usage") or {}).get("prompt_tokens"), p, "%s: usage.prompt_tokens" % what)
        t.is_eq(grew(e), want, "%s: spend grows by exactly prompt_tokens x IN" % what)
        row = env.ledger_row(e.get("call_id") or "")
        t.is_eq(row and (row["end_user"], row["status"], row["spend"]), (apis, "success", want),
                "%s: ledger row for the call id" % what)
        t.is_eq(call_type(env, e.get("call_id")), "aembedding", "%s: call_type aembedding" % what)
    t.ok(vecs.get("float") and vecs.get("float") == vecs.get("the default")
         == vecs.get("base64"),
         "SDK embeddings: float, decoded default and decoded base64 are the same floats",
         "got %r" % (vecs,))

    # Legacy completions
    c = res.get("completions") or {}
    want = cost(23, 7)
    total += want
    t.is_eq(c.get("object"), "text_completion", "SDK completions: a text_completion parsed")
    t.is_eq(c.get("text"), "Hello from the fake upstream.", "SDK completions: the text")
    t.is_eq(((c.get("usage") or {}).get("prompt_tokens"),
             (c.get("usage") or {}).get("completion_tokens")), (23, 7), "SDK completions: usage")
    t.is_eq(grew(c), want, "SDK completions: spend grows by exactly the fake usage's cost")
    t.is_eq(dec(c.get("cost_header")), want, "SDK completions: x-litellm-response-cost")
    row = env.ledger_row(c.get("call_id") or "")
    t.is_eq(row and (row["end_user"], row["status"], row["spend"]), (apis, "success", want),
            "SDK completions: ledger row for the call id")
    t.is_eq(call_type(env, c.get("call_id")), "atext_completion",
            "SDK completions: call_type atext_completion")

    crow = env.customer_row(apis) or {}
    t.is_eq((crow.get("spend"), crow.get("reserved")), (total, Decimal(0)),
            "SDK: %s's spend = its seven calls, nothing left held" % apis)
    t.is_eq(crow.get("spend"), env.ledger_sum(apis), "SDK: %s's spend == ledger sum" % apis)

    # Over budget on /v1/responses
    ob = res.get("over_budget_responses") or {}
    t.diag("over budget on /v1/responses, as the SDK saw it: %s" % json.dumps(ob, default=str))
    t.ok(ob.get("raised") is True and ob.get("is_api_error") is True and ob.get("status") == 429
         and ob.get("is_rate_limit_error") is True,
         "SDK responses over budget: raises RateLimitError, status 429", "got %r" % (ob,))
    t.is_eq((ob.get("error") or {}).get("type"), "budget_exceeded",
            "SDK responses over budget: error.type budget_exceeded")
    t.like((ob.get("error") or {}).get("message") or "", r"^ExceededBudget: End User=sdk-over ",
           "SDK responses over budget: error.message")
    t.is_eq(ob.get("should_retry"), "false", "SDK responses over budget: x-should-retry false")
    t.is_eq(ob.get("requests"), 1, "SDK responses over budget: exactly one request")
    t.is_eq([q.get("path") for q in env.upstream.requests()
             if q.get("path", "").endswith("/responses")
             and (q.get("json") or {}).get("user") == over], [],
            "SDK responses over budget: the upstream saw nothing")
    t.is_eq((dec(ob.get("before")), dec(ob.get("after"))), (Decimal(0), Decimal(0)),
            "SDK responses over budget: spend stays 0")
    t.is_eq(env.ledger_rows(over), [], "SDK responses over budget: no spend_logs row")


def claude_checks(t, env, node, mods, srv):
    """The openai SDK against a Claude model (an anthropic/ deployment):
    translated to the Messages API and back, charged at Claude's prices."""
    who = "sdk-claude"
    r = env.customer_new(user_id=who, max_budget=10)
    t.is_eq(r.status, 200, "customer/new %s" % who)
    env.upstream.reset()
    for _, spec in CLAUDE_ANSWERS:
        env.upstream.next(spec)
    res = run_node(t, env, node, srv, {
        "NODE_PATH": mods, "TG_USER": who, "TG_CLAUDE_USER": who, "TG_CLAUDE_MODEL": CLAUDE,
        "TG_MODEL": CLAUDE}, scenarios=("claude_create", "claude_stream", "claude_tools"),
        what="sdk-test.cjs (the Claude steps)")
    if res is None:
        return
    t.is_eq(res.get("scenarios"), ["claude_create", "claude_stream", "claude_tools"],
            "Claude: the node run did the three Claude steps")

    # What the upstream saw: four Messages API calls, each with its queued answer.
    posts = [q for q in env.upstream.requests() if q["method"] == "POST"]
    t.is_eq([(q["path"], q.get("fake_from_queue")) for q in posts],
            [("/v1/messages", spec) for _, spec in CLAUDE_ANSWERS],
            "Claude: the upstream got four /v1/messages calls, each taking its queued answer "
            "in order")
    t.ok(all(q["headers"].get("x-api-key") == H.UPSTREAM_KEY
             and q["headers"].get("anthropic-version")
             and q["headers"].get("authorization") is None
             and (q.get("json") or {}).get("model") == CLAUDE_UPSTREAM for q in posts),
         "Claude: upstream calls carry the deployment's x-api-key, an anthropic-version, "
         "no Authorization, the deployment's model name",
         [({k: q["headers"].get(k) for k in ("x-api-key", "anthropic-version",
                                              "authorization")},
           (q.get("json") or {}).get("model")) for q in posts])
    sent = [q.get("json") or {} for q in posts] + [{}] * 4
    total = Decimal(0)

    # -- chat.completions.create --
    c = res.get("claude_create") or {}
    t.diag("claude_create: %s" % json.dumps(c, default=str))
    want = claude_price("create")
    total += want
    i, rd, w, o = claude_usage("create")
    t.is_eq((sent[0].get("system"), sent[0].get("messages"), sent[0].get("metadata"),
             sent[0].get("max_tokens"), "fake" in sent[0]),
            ("Be brief.", [{"role": "user", "content": "Say hello"}], {"user_id": who},
             64000, False),
            "Claude create: sent in Anthropic's shape (system apart, user -> metadata.user_id, "
            "max_tokens the model's maximum)", json.dumps(sent[0]))
    t.is_eq((c.get("object"), c.get("choices"), c.get("role"), c.get("content"),
             c.get("tool_calls"), c.get("finish_reason")),
            ("chat.completion", 1, "assistant", "Hello from Claude.", None, "stop"),
            "Claude create: a chat.completion with the text, end_turn -> finish_reason stop")
    u = c.get("usage") or {}
    t.is_eq((u.get("prompt_tokens"), u.get("completion_tokens"), u.get("total_tokens"),
             (u.get("prompt_tokens_details") or {}).get("cached_tokens")),
            (i + rd + w, o, i + rd + w + o, rd),
            "Claude create: usage.prompt_tokens counts the cache reads and writes, "
            "prompt_tokens_details.cached_tokens the reads")
    t.is_eq(c.get("requests"), 1, "Claude create: one HTTP request")
    t.is_eq(grew(c), want, "Claude create: spend grows by exactly %s (Sonnet 4.5's prices)"
            % want)
    t.is_eq(dec(c.get("cost_header")), want, "Claude create: x-litellm-response-cost")
    row = env.ledger_row(c.get("call_id") or "-") or {}
    t.is_eq((row.get("end_user"), row.get("status"), row.get("spend"), row.get("prompt_tokens"),
             row.get("completion_tokens")), (who, "success", want, str(i + rd + w), str(o)),
            "Claude create: ledger row for the call id")
    t.is_eq(call_type(env, c.get("call_id")), "acompletion", "Claude create: call_type acompletion")

    # -- streamed, with include_usage --
    st = res.get("claude_stream") or {}
    t.diag("claude_stream: %s" % json.dumps(st, default=str))
    want = claude_price("stream")
    total += want
    i, rd, w, o = claude_usage("stream")
    t.is_eq((sent[1].get("stream"), sent[1].get("messages")),
            (True, [{"role": "user", "content": "Count to three"}]),
            "Claude stream: the upstream is asked for a stream")
    t.is_eq((st.get("objects"), st.get("roles"), st.get("text")),
            (["chat.completion.chunk"], ["assistant"], "one two three"),
            "Claude stream: chat.completion.chunks, the assistant's role once, the text")
    fin = st.get("finish_reasons") or []
    t.is_eq(fin[-1:], ["stop"], "Claude stream: the last finish_reason is stop", repr(fin))
    uc = st.get("usage_chunks") or []
    t.is_eq([(x.get("at"), x.get("choices")) for x in uc], [(st.get("chunks"), [])],
            "Claude stream: one usage chunk, the last, with no choices")
    su = (uc[0] if uc else {}).get("usage") or {}
    t.is_eq((su.get("prompt_tokens"), su.get("completion_tokens"), su.get("total_tokens"),
             (su.get("prompt_tokens_details") or {}).get("cached_tokens")),
            (i + rd + w, o, i + rd + w + o, rd),
            "Claude stream: the usage chunk's counts (cache reads and writes in prompt_tokens)")
    t.is_eq(dec(su.get("cost")), want, "Claude stream: usage.cost = the charge %s" % want)
    t.like(st.get("content_type") or "", r"^text/event-stream", "Claude stream: content type")
    t.is_eq(st.get("requests"), 1, "Claude stream: one HTTP request")
    t.is_eq(grew(st), want, "Claude stream: spend grows by exactly %s" % want)
    row = env.ledger_row(st.get("call_id") or "-") or {}
    t.is_eq((row.get("end_user"), row.get("status"), row.get("spend"), row.get("prompt_tokens"),
             row.get("completion_tokens")), (who, "success", want, str(i + rd + w), str(o)),
            "Claude stream: ledger row (the last cumulative output count)")

    # -- a tool-call round trip --
    tl = res.get("claude_tools") or {}
    t.diag("claude_tools: %s" % json.dumps(tl, default=str))
    want = claude_price("tools_1") + claude_price("tools_2")
    total += want
    first, second = tl.get("first") or {}, tl.get("second") or {}
    t.is_eq(sent[2].get("tools"), [{"name": "get_weather", "description": "The weather in a city",
                                    "input_schema": {
                                        "type": "object",
                                        "properties": {"city": {"type": "string"},
                                                       "days": {"type": "integer"}},
                                        "required": ["city"]}}],
            "Claude tools: the function tool sent as Anthropic's (input_schema)")
    calls = first.get("tool_calls") or []
    call = calls[0] if calls else {}
    t.is_eq((first.get("finish_reason"), first.get("content"), len(calls), call.get("type"),
             (call.get("function") or {}).get("name"), first.get("arguments")),
            ("tool_calls", None, 1, "function", "get_weather",
             [{"ok": True, "value": {"city": "Paris", "days": 2}}]),
            "Claude tools: tool_use -> one tool call (finish_reason tool_calls, content null), "
            "its arguments a JSON text the application parses")
    t.ok(isinstance(call.get("id"), str) and call.get("id"),
         "Claude tools: the tool call has an id (%s)" % call.get("id"))
    t.is_eq(sent[3].get("messages"), [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.get("id"),
                                           "name": "get_weather",
                                           "input": {"city": "Paris", "days": 2}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.get("id"),
                                      "content": "sunny, 21 C"}]}],
        "Claude tools: the second call sent the assistant's tool_calls as a tool_use block, "
        "the tool message as a tool_result block", json.dumps(sent[3].get("messages")))
    t.is_eq((second.get("object"), second.get("content"), second.get("finish_reason"),
             second.get("tool_calls")),
            ("chat.completion", "It is sunny in Paris, 21 C.", "stop", None),
            "Claude tools: the final answer's text")
    for name, step in (("tools_1", first), ("tools_2", second)):
        i, rd, w, o = claude_usage(name)
        su = step.get("usage") or {}
        t.is_eq((su.get("prompt_tokens"), su.get("completion_tokens"),
                 (su.get("prompt_tokens_details") or {}).get("cached_tokens")),
                (i + rd + w, o, rd), "Claude tools (%s): usage" % name)
        row = env.ledger_row(step.get("call_id") or "-") or {}
        t.is_eq((row.get("end_user"), row.get("status"), row.get("spend")),
                (who, "success", claude_price(name)),
                "Claude tools (%s): ledger row, charged %s" % (name, claude_price(name)))
    t.is_eq(tl.get("requests"), 2, "Claude tools: two HTTP requests")
    t.is_eq(grew(tl), want, "Claude tools: spend grows by exactly the two calls' %s" % want)

    crow = env.customer_row(who) or {}
    t.is_eq((crow.get("spend"), crow.get("reserved")), (total, Decimal(0)),
            "Claude: %s's spend = its four calls (%s), nothing left held" % (who, total))
    t.is_eq(crow.get("spend"), env.ledger_sum(who), "Claude: %s's spend == ledger sum" % who)


if __name__ == "__main__":
    H.run(main)
