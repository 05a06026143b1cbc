#!/usr/bin/env python3
"""charges: a table of worked charges, end to end (SPEC 7.2, 4.3, 4.4).

One row per price dimension and per provider's usage shape.  Each row is a
deployment priced from LiteLLM's price map (the model's own entry, found
by tollgate as it finds any), one call through tollgate with a usage the
fake upstream reports as scripted, and the charge worked out BY HAND here
from the map's published per-token prices, written below as Decimal
literals under the name of the entry they come from (the test never reads
the price file to compute what it expects).  Each row checks that the
call's spend_logs row has exactly that spend and that its customer's
spend went up by exactly that; the table is printed as TAP comments
(model, dimension, tokens, by hand, tollgate's) so that it can be quoted.

Rows: plain input/output (gpt-4o-mini); cached reads (gpt-4o's
prompt_tokens_details.cached_tokens, DeepSeek's prompt_cache_hit_tokens);
a cache read without a cache price (the input price); reasoning tokens at
their own rate (dashscope/qwen-turbo, gemini/gemini-2.5-flash) and at the
output price when the model has no such rate (o3); audio in and out
(gpt-4o-audio-preview); the priority and flex service tiers (gpt-5, the
answer's service_tier), streamed and not, and "default"; long-context
tiers (gemini/gemini-2.5-pro above 200k, gpt-5.6 above 272k prompt
tokens: every token at the tier's rates); a price per request
(perplexity/sonar-small-online); web_search_options on
gpt-4o-search-preview (low, high, and no size: medium); Perplexity's
usage.num_search_queries (perplexity/sonar); OpenRouter's usage.cost with
model_info.trust_upstream_cost, and the same call without it (the map's
openrouter/openai/gpt-4o); Anthropic's /v1/messages with cache reads and
5-minute and 1-hour cache writes (claude-sonnet-4-5), and above 200k; the
Responses API with reasoning tokens and a service tier (gpt-5); xAI,
whose usage counts reasoning tokens apart from completion_tokens
(xai/grok-3-mini: both billed at the output price).

Then the hold of a gpt-5 call, by hand: body bytes x the dearest
input-side rate + max_completion_tokens x the dearest output-side rate.
A request without service_tier may be billed at priority rates, so its
hold is at those; one that says "service_tier": "default" is held at the
default rates.  A customer whose max_budget lies between the two is
refused the first and admitted the second; and each hold is exact
(admitted at max_budget = hold, refused 1e-10 USD below).
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal  # noqa: E402

UNIT = Decimal("1e-10")  # the ledger's unit

# Published prices (USD per token, per request or per search), as LiteLLM's
# map gives them, by the entry they come from.
PRICES = {
    "gpt-4o-mini": {"in": Decimal("1.5e-07"), "out": Decimal("6e-07")},
    "gpt-4o": {"in": Decimal("2.5e-06"), "out": Decimal("1e-05"),
               "cache_read": Decimal("1.25e-06")},
    "deepseek/deepseek-chat": {"in": Decimal("2.8e-07"), "out": Decimal("4.2e-07"),
                               "cache_read": Decimal("2.8e-08")},
    "dashscope/qwen-turbo": {"in": Decimal("5e-08"), "out": Decimal("2e-07"),
                             "reasoning": Decimal("5e-07")},
    "gemini/gemini-2.5-flash": {"in": Decimal("3e-07"), "out": Decimal("2.5e-06"),
                                "reasoning": Decimal("2.5e-06"),
                                "audio_in": Decimal("1e-06")},
    "o3": {"in": Decimal("2e-06"), "out": Decimal("8e-06")},  # no reasoning price
    "gpt-4o-audio-preview": {"in": Decimal("2.5e-06"), "out": Decimal("1e-05"),
                             "audio_in": Decimal("4e-05"), "audio_out": Decimal("8e-05")},
    "gpt-5": {"in": Decimal("1.25e-06"), "out": Decimal("1e-05"),
              "cache_read": Decimal("1.25e-07"),
              "in_priority": Decimal("2.5e-06"), "out_priority": Decimal("2e-05"),
              "cache_read_priority": Decimal("2.5e-07"),
              "in_flex": Decimal("6.25e-07"), "out_flex": Decimal("5e-06"),
              "cache_read_flex": Decimal("6.25e-08")},
    "gemini/gemini-2.5-pro": {"in": Decimal("1.25e-06"), "out": Decimal("1e-05"),
                              "cache_read": Decimal("1.25e-07"),
                              "in_200k": Decimal("2.5e-06"), "out_200k": Decimal("1.5e-05"),
                              "cache_read_200k": Decimal("2.5e-07")},
    "gpt-5.6": {"in": Decimal("5e-06"), "out": Decimal("3e-05"),
                "in_272k": Decimal("1e-05"), "out_272k": Decimal("4.5e-05"),
                "cache_read_272k": Decimal("1e-06")},
    "perplexity/sonar-small-online": {"in": Decimal("0"), "out": Decimal("2.8e-07"),
                                      "per_request": Decimal("0.005")},
    "gpt-4o-search-preview": {"in": Decimal("2.5e-06"), "out": Decimal("1e-05"),
                              "search_low": Decimal("0.03"), "search_medium": Decimal("0.035"),
                              "search_high": Decimal("0.05")},
    "perplexity/sonar": {"in": Decimal("1e-06"), "out": Decimal("1e-06"),
                         "search_low": Decimal("0.005"), "search_medium": Decimal("0.008"),
                         "search_high": Decimal("0.012")},
    "openrouter/openai/gpt-4o": {"in": Decimal("2.5e-06"), "out": Decimal("1e-05")},
    "xai/grok-3-mini": {"in": Decimal("3e-07"), "out": Decimal("5e-07")},
    "claude-sonnet-4-5": {"in": Decimal("3e-06"), "out": Decimal("1.5e-05"),
                          "cache_read": Decimal("3e-07"), "write_5m": Decimal("3.75e-06"),
                          "write_1h": Decimal("6e-06"),
                          "in_200k": Decimal("6e-06"), "out_200k": Decimal("2.25e-05"),
                          "cache_read_200k": Decimal("6e-07"),
                          "write_5m_200k": Decimal("7.5e-06"),
                          "write_1h_200k": Decimal("1.2e-05")},
}
OPENROUTER_COST = Decimal("0.0004321")  # what the fake OpenRouter says the call cost

# Deployments: model_name -> (litellm_params.model, model_info or None).
# Each is priced by tollgate from the map: model_info.base_model when
# given, else "<provider>/<name>", else "<name>".
DEPLOYMENTS = {
    "gpt-4o-mini": ("openai/gpt-4o-mini", None),
    "gpt-4o": ("openai/gpt-4o", None),
    "deepseek-chat": ("deepseek/deepseek-chat", None),
    # No dashscope/ provider in lib/provider.c: an OpenAI-compatible one.
    "qwen-turbo": ("openai/qwen-turbo", {"base_model": "dashscope/qwen-turbo"}),
    "gemini-2.5-flash": ("gemini/gemini-2.5-flash", None),
    "o3": ("openai/o3", None),
    "gpt-4o-audio-preview": ("openai/gpt-4o-audio-preview", None),
    "gpt-5": ("openai/gpt-5", None),
    "gemini-2.5-pro": ("gemini/gemini-2.5-pro", None),
    "gpt-5.6": ("openai/gpt-5.6", None),
    "sonar-small-online": ("perplexity/sonar-small-online", None),
    "gpt-4o-search-preview": ("openai/gpt-4o-search-preview", None),
    "sonar": ("perplexity/sonar", None),
    "or-gpt-4o-trusted": ("openrouter/openai/gpt-4o", {"trust_upstream_cost": True}),
    "or-gpt-4o": ("openrouter/openai/gpt-4o", None),
    "claude-sonnet-4-5": ("anthropic/claude-sonnet-4-5", None),
    "grok-3-mini": ("xai/grok-3-mini", None),
}

def chat_usage(pt, ct, cached=None, audio_in=None, reasoning=None, audio_out=None, **more):
    """An OpenAI chat usage object with the details given."""
    u = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
    pd = {}
    if cached is not None:
        pd["cached_tokens"] = cached
    if audio_in is not None:
        pd["audio_tokens"] = audio_in
    if pd:
        u["prompt_tokens_details"] = pd
    cd = {}
    if reasoning is not None:
        cd["reasoning_tokens"] = reasoning
    if audio_out is not None:
        cd["audio_tokens"] = audio_out
    if cd:
        u["completion_tokens_details"] = cd
    u.update(more)
    return u


def rows():
    """The table: (deployment, price entry, dimension, call, fake, extra,
    tokens (for the table), expected by hand)."""
    P = PRICES
    mini, g4o, ds = P["gpt-4o-mini"], P["gpt-4o"], P["deepseek/deepseek-chat"]
    qwen, flash, o3 = P["dashscope/qwen-turbo"], P["gemini/gemini-2.5-flash"], P["o3"]
    aud, g5, pro = P["gpt-4o-audio-preview"], P["gpt-5"], P["gemini/gemini-2.5-pro"]
    g56, sso, srch = P["gpt-5.6"], P["perplexity/sonar-small-online"], P["gpt-4o-search-preview"]
    sonar, orp, cl = P["perplexity/sonar"], P["openrouter/openai/gpt-4o"], P["claude-sonnet-4-5"]
    inc = {"stream_options": {"include_usage": True}}
    return [
        ("gpt-4o-mini", "gpt-4o-mini", "input + output", "chat",
         {"usage": chat_usage(1234, 567)}, None, "in 1234, out 567",
         1234 * mini["in"] + 567 * mini["out"]),
        ("gpt-4o", "gpt-4o", "cached read (prompt_tokens_details.cached_tokens)", "chat",
         {"usage": chat_usage(2000, 300, cached=1500)}, None,
         "in 2000 (cached 1500), out 300",
         500 * g4o["in"] + 1500 * g4o["cache_read"] + 300 * g4o["out"]),
        ("deepseek-chat", "deepseek/deepseek-chat",
         "cached read (DeepSeek prompt_cache_hit_tokens)", "chat",
         {"usage": chat_usage(1000, 200, prompt_cache_hit_tokens=800,
                              prompt_cache_miss_tokens=200)}, None,
         "in 1000 (hit 800, miss 200), out 200",
         200 * ds["in"] + 800 * ds["cache_read"] + 200 * ds["out"]),
        ("gpt-4o-audio-preview", "gpt-4o-audio-preview",
         "cached read without a cache price (input price)", "chat",
         {"usage": chat_usage(1000, 100, cached=400)}, None, "in 1000 (cached 400), out 100",
         1000 * aud["in"] + 100 * aud["out"]),
        ("qwen-turbo", "dashscope/qwen-turbo", "reasoning at output_cost_per_reasoning_token",
         "chat", {"usage": chat_usage(1000, 800, reasoning=600)}, None,
         "in 1000, out 800 (reasoning 600)",
         1000 * qwen["in"] + 600 * qwen["reasoning"] + 200 * qwen["out"]),
        ("gemini-2.5-flash", "gemini/gemini-2.5-flash",
         "reasoning at its rate + audio in (gemini/)", "chat",
         {"usage": chat_usage(1000, 800, audio_in=300, reasoning=600)}, None,
         "in 1000 (audio 300), out 800 (reasoning 600)",
         700 * flash["in"] + 300 * flash["audio_in"] + 600 * flash["reasoning"]
         + 200 * flash["out"]),
        ("o3", "o3", "reasoning without a reasoning price (output price)", "chat",
         {"usage": chat_usage(1000, 800, reasoning=600)}, None,
         "in 1000, out 800 (reasoning 600)",
         1000 * o3["in"] + 800 * o3["out"]),
        ("gpt-4o-audio-preview", "gpt-4o-audio-preview", "audio in and audio out", "chat",
         {"usage": chat_usage(1000, 500, audio_in=300, audio_out=200)}, None,
         "in 1000 (audio 300), out 500 (audio 200)",
         700 * aud["in"] + 300 * aud["audio_in"] + 300 * aud["out"] + 200 * aud["audio_out"]),
        ("gpt-5", "gpt-5", "service_tier priority", "chat",
         {"usage": chat_usage(2000, 1000, cached=800), "service_tier": "priority"}, None,
         "in 2000 (cached 800), out 1000",
         1200 * g5["in_priority"] + 800 * g5["cache_read_priority"]
         + 1000 * g5["out_priority"]),
        ("gpt-5", "gpt-5", "service_tier priority, streamed", "stream",
         {"usage": chat_usage(2000, 1000, cached=800), "service_tier": "priority"}, inc,
         "in 2000 (cached 800), out 1000",
         1200 * g5["in_priority"] + 800 * g5["cache_read_priority"]
         + 1000 * g5["out_priority"]),
        ("gpt-5", "gpt-5", "service_tier flex", "chat",
         {"usage": chat_usage(2000, 1000, cached=800), "service_tier": "flex"}, None,
         "in 2000 (cached 800), out 1000",
         1200 * g5["in_flex"] + 800 * g5["cache_read_flex"] + 1000 * g5["out_flex"]),
        ("gpt-5", "gpt-5", "service_tier flex, streamed", "stream",
         {"usage": chat_usage(2000, 1000, cached=800), "service_tier": "flex"}, inc,
         "in 2000 (cached 800), out 1000",
         1200 * g5["in_flex"] + 800 * g5["cache_read_flex"] + 1000 * g5["out_flex"]),
        ("gpt-5", "gpt-5", "service_tier default (normal keys)", "chat",
         {"usage": chat_usage(2000, 1000, cached=800), "service_tier": "default"}, None,
         "in 2000 (cached 800), out 1000",
         1200 * g5["in"] + 800 * g5["cache_read"] + 1000 * g5["out"]),
        ("gemini-2.5-pro", "gemini/gemini-2.5-pro", "long context above 200k (every token)",
         "chat", {"usage": chat_usage(250000, 1000, cached=50000)}, None,
         "in 250000 (cached 50000), out 1000",
         200000 * pro["in_200k"] + 50000 * pro["cache_read_200k"] + 1000 * pro["out_200k"]),
        ("gemini-2.5-pro", "gemini/gemini-2.5-pro", "200000 prompt tokens: not above the tier",
         "chat", {"usage": chat_usage(200000, 1000)}, None, "in 200000, out 1000",
         200000 * pro["in"] + 1000 * pro["out"]),
        ("gpt-5.6", "gpt-5.6", "long context above 272k (every token)", "chat",
         {"usage": chat_usage(300000, 500, cached=100000)}, None,
         "in 300000 (cached 100000), out 500",
         200000 * g56["in_272k"] + 100000 * g56["cache_read_272k"] + 500 * g56["out_272k"]),
        ("sonar-small-online", "perplexity/sonar-small-online", "input_cost_per_request",
         "chat", {"usage": chat_usage(100, 200)}, None, "in 100, out 200, 1 request",
         100 * sso["in"] + 200 * sso["out"] + sso["per_request"]),
        ("gpt-4o-search-preview", "gpt-4o-search-preview", "web_search_options low", "chat",
         {"usage": chat_usage(500, 300)}, {"web_search_options": {"search_context_size": "low"}},
         "in 500, out 300, 1 search (low)",
         500 * srch["in"] + 300 * srch["out"] + srch["search_low"]),
        ("gpt-4o-search-preview", "gpt-4o-search-preview", "web_search_options high", "chat",
         {"usage": chat_usage(500, 300)}, {"web_search_options": {"search_context_size": "high"}},
         "in 500, out 300, 1 search (high)",
         500 * srch["in"] + 300 * srch["out"] + srch["search_high"]),
        ("gpt-4o-search-preview", "gpt-4o-search-preview", "web_search_options {} (medium)",
         "chat", {"usage": chat_usage(500, 300)}, {"web_search_options": {}},
         "in 500, out 300, 1 search (medium)",
         500 * srch["in"] + 300 * srch["out"] + srch["search_medium"]),
        ("sonar", "perplexity/sonar", "num_search_queries 2 (medium)", "chat",
         {"usage": chat_usage(400, 600, num_search_queries=2)}, None,
         "in 400, out 600, 2 searches (medium)",
         400 * sonar["in"] + 600 * sonar["out"] + 2 * sonar["search_medium"]),
        ("sonar", "perplexity/sonar", "num_search_queries 3, search_context_size high", "chat",
         {"usage": chat_usage(400, 600, num_search_queries=3)},
         {"web_search_options": {"search_context_size": "high"}},
         "in 400, out 600, 3 searches (high)",
         400 * sonar["in"] + 600 * sonar["out"] + 3 * sonar["search_high"]),
        # xAI counts reasoning apart from completion_tokens: both billed.
        ("grok-3-mini", "xai/grok-3-mini", "xAI reasoning apart from the completion",
         "chat", {"usage": chat_usage(1000, 200, reasoning=700)}, None,
         "in 1000, out 200 + reasoning 700",
         1000 * P["xai/grok-3-mini"]["in"] + 900 * P["xai/grok-3-mini"]["out"]),
        ("or-gpt-4o-trusted", "openrouter/openai/gpt-4o",
         "usage.cost with trust_upstream_cost", "chat",
         {"usage": chat_usage(1000, 500, cost=float(OPENROUTER_COST))}, None,
         "in 1000, out 500, cost %s" % OPENROUTER_COST,
         OPENROUTER_COST),
        ("or-gpt-4o", "openrouter/openai/gpt-4o", "usage.cost without trust (map prices)",
         "chat", {"usage": chat_usage(1000, 500, cost=float(OPENROUTER_COST))}, None,
         "in 1000, out 500, cost %s ignored" % OPENROUTER_COST,
         1000 * orp["in"] + 500 * orp["out"]),
        ("claude-sonnet-4-5", "claude-sonnet-4-5",
         "Anthropic cache read + write 5m + write 1h", "messages",
         {"usage": {"input_tokens": 1000, "cache_read_input_tokens": 4000,
                    "cache_creation_5m": 2000, "cache_creation_1h": 3000,
                    "output_tokens": 500}}, None,
         "in 1000, read 4000, write 5m 2000, 1h 3000, out 500",
         1000 * cl["in"] + 4000 * cl["cache_read"] + 2000 * cl["write_5m"]
         + 3000 * cl["write_1h"] + 500 * cl["out"]),
        ("claude-sonnet-4-5", "claude-sonnet-4-5",
         "Anthropic above 200k (input + reads + writes)", "messages",
         {"usage": {"input_tokens": 150000, "cache_read_input_tokens": 30000,
                    "cache_creation_5m": 10000, "cache_creation_1h": 20000,
                    "output_tokens": 500}}, None,
         "in 150000, read 30000, write 5m 10000, 1h 20000, out 500",
         150000 * cl["in_200k"] + 30000 * cl["cache_read_200k"]
         + 10000 * cl["write_5m_200k"] + 20000 * cl["write_1h_200k"] + 500 * cl["out_200k"]),
        ("gpt-5", "gpt-5", "Responses API: reasoning + service_tier priority", "responses",
         {"usage": {"input_tokens": 3000, "output_tokens": 2000, "cached_tokens": 1000,
                    "reasoning_tokens": 1500}, "service_tier": "priority"}, None,
         "in 3000 (cached 1000), out 2000 (reasoning 1500)",
         2000 * g5["in_priority"] + 1000 * g5["cache_read_priority"]
         + 2000 * g5["out_priority"]),
        ("gpt-5", "gpt-5", "Responses API: reasoning + service_tier flex, streamed",
         "responses-stream",
         {"usage": {"input_tokens": 3000, "output_tokens": 2000, "cached_tokens": 1000,
                    "reasoning_tokens": 1500}, "service_tier": "flex"}, None,
         "in 3000 (cached 1000), out 2000 (reasoning 1500)",
         2000 * g5["in_flex"] + 1000 * g5["cache_read_flex"] + 2000 * g5["out_flex"]),
    ]


def deployments(env):
    out = []
    for name, (model, info) in DEPLOYMENTS.items():
        base = env.upstream.base if model.startswith(("anthropic/", "gemini/")) \
            else env.upstream.base + "/v1"
        d = {"model_name": name,
             "litellm_params": {"model": model, "api_base": base, "api_key": H.UPSTREAM_KEY}}
        if info:
            d["model_info"] = dict(info)
        out.append(d)
    return out


def call(env, kind, model, user, fake, extra):
    if kind in ("chat", "stream"):
        body = env.chat_body(user=user, model=model, fake=fake, extra=extra)
        if kind == "stream":
            body["stream"] = True
            return env.stream_chat(body=body)
        return env.chat(body=body)
    if kind in ("responses", "responses-stream"):
        body = {"model": model, "input": "hello", "user": user, "fake": fake}
        body.update(extra or {})
        if kind == "responses-stream":
            body["stream"] = True
            return env.stream_chat(body=body, path="/v1/responses")
        return env.request("POST", "/v1/responses", body=body)
    if kind == "messages":
        body = {"model": model, "max_tokens": 1000, "metadata": {"user_id": user},
                "messages": [{"role": "user", "content": "hello"}], "fake": fake}
        body.update(extra or {})
        return env.request("POST", "/v1/messages", body=body)
    raise ValueError(kind)


def spend_of(env, user):
    row = env.customer_row(user)
    return row["spend"] if row else Decimal(0)


def table(t, env):
    results = []
    for i, (model, entry, dim, kind, fake, extra, tokens, want) in enumerate(rows()):
        what = "%s, %s" % (entry, dim)
        t.is_eq(want, (want / UNIT).to_integral_value() * UNIT,
                "%s: the hand-computed charge %s is whole 1e-10 USD" % (what, want))
        user = "ch-%02d" % i
        before = spend_of(env, user)
        r = call(env, kind, model, user, fake, extra)
        if not t.is_eq(r.status, 200, "%s: 200" % what, r.text[:300]):
            results.append((entry, dim, tokens, want, None))
            continue
        if model.startswith("or-gpt-4o"):
            # OpenRouter reports usage.cost only when asked: tollgate asks
            # for a deployment that trusts it, and only then.
            sent = [q.get("json") or {} for q in env.upstream.requests()
                    if q.get("method") == "POST"][-1:]
            asked = bool(sent) and sent[0].get("usage") == {"include": True}
            t.is_eq(asked, model == "or-gpt-4o-trusted",
                    "%s: the upstream was asked for usage.include: %s"
                    % (what, model == "or-gpt-4o-trusted"), sent)
        row = env.ledger_row(r.header("x-litellm-call-id") or "") or {}
        got = row.get("spend")
        t.is_eq((row.get("status"), got), ("success", want),
                "%s: spend_logs spend = %s by hand" % (what, want))
        t.is_eq(spend_of(env, user) - before, want,
                "%s: the customer's spend went up by exactly %s" % (what, want))
        results.append((entry, dim, tokens, want, got))
    t.diag("")
    t.diag("Worked charges (USD), prices from LiteLLM's map:")
    t.diag(("%-30s | %-54s | %-58s | %-12s | %-12s" % (
        "model", "dimension", "tokens", "by hand", "tollgate")).rstrip())
    t.diag("-" * 176)
    for entry, dim, tokens, want, got in results:
        t.diag(("%-30s | %-54s | %-58s | %-12s | %-12s%s" % (
            entry, dim, tokens, format(want.normalize(), "f"),
            "-" if got is None else format(got.normalize(), "f"),
            "" if got == want else "  <-- differs")).rstrip())
    t.diag("")


def hold_of(body, in_rate, out_rate, max_completion_tokens):
    """Body bytes x the dearest input-side rate + the output bound x the
    dearest output-side rate, each product rounded up to 1e-10 USD."""
    def up(x):
        return (x / UNIT).to_integral_value(rounding="ROUND_CEILING") * UNIT
    return up(len(body) * in_rate) + up(max_completion_tokens * out_rate)


def hold(t, env):
    """gpt-5: a request without service_tier is held at the priority
    rates (the dearest it may be billed at), one saying "default" at the
    default rates.  gpt-5's dearest input-side rate is its input price (its
    cache read is cheaper, and it has no cache-write or audio price), its
    dearest output-side rate its output price (no reasoning or audio
    price)."""
    g5 = PRICES["gpt-5"]
    mct = 1000

    def body(user, tier):
        b = {"model": "gpt-5", "user": user, "max_completion_tokens": mct,
             "messages": [{"role": "user", "content": "hello"}],
             "fake": {"usage": {"prompt_tokens": 10, "completion_tokens": 20}}}
        if tier is not None:
            b["service_tier"] = tier
        return json.dumps(b).encode()

    # The same length whatever the user's name (all names are 9 characters).
    any_tier = body("ch-hold-0", None)
    default = body("ch-hold-0", "default")
    h_any = hold_of(any_tier, g5["in_priority"], g5["out_priority"], mct)
    h_def = hold_of(default, g5["in"], g5["out"], mct)
    t.diag("hold of gpt-5: no service_tier, %d bytes x %s + %d x %s = %s; "
           "\"default\", %d bytes x %s + %d x %s = %s"
           % (len(any_tier), g5["in_priority"], mct, g5["out_priority"], h_any,
              len(default), g5["in"], mct, g5["out"], h_def.normalize()))
    t.ok(h_def < h_any, "hold: the default-rate hold %s is below the priority one %s"
         % (h_def, h_any))
    mid = ((h_def + h_any) / 2 / UNIT).to_integral_value() * UNIT

    cases = [  # (user, max_budget, service_tier, admitted?, what)
        ("ch-hold-1", mid, None, False,
         "max_budget %s between the holds: no service_tier is refused" % mid),
        ("ch-hold-2", mid, "default", True,
         "max_budget %s between the holds: \"service_tier\": \"default\" is admitted" % mid),
        ("ch-hold-3", h_any, None, True,
         "max_budget = the priority-rate hold %s: no service_tier is admitted" % h_any),
        ("ch-hold-4", h_any - UNIT, None, False,
         "max_budget 1e-10 below the priority-rate hold: refused"),
        ("ch-hold-5", h_def, "default", True,
         "max_budget = the default-rate hold %s: \"default\" is admitted" % h_def),
        ("ch-hold-6", h_def - UNIT, "default", False,
         "max_budget 1e-10 below the default-rate hold: \"default\" is refused"),
    ]
    for user, budget, tier, admitted, what in cases:
        r = env.customer_new(user_id=user, max_budget=format(budget, "f"))
        if not t.is_eq(r.status, 200, "hold: customer %s with max_budget %s" % (user, budget),
                       r.text[:300]):
            continue
        b = body(user, tier)
        env.upstream.reset()
        r = env.request("POST", "/chat/completions", body=b)
        n_up = len([q for q in env.upstream.requests() if q.get("method") == "POST"])
        if admitted:
            t.is_eq((r.status, n_up), (200, 1), "hold: " + what, r.text[:300])
        else:
            t.is_eq((r.status, n_up), (429, 0), "hold: %s (429, nothing sent upstream)" % what,
                    r.text[:300])


def main(t, env):
    # The shipped price file (the harness's default, etc/model_prices.json).
    t.diag("prices from %s" % H.PRICE_FILE)
    cfg = env.write_config("charges", env.config(models=deployments(env)))
    env.start_lighttpd(cfg, name="charges", max_procs=2)
    table(t, env)
    hold(t, env)


if __name__ == "__main__":
    H.run(main)
