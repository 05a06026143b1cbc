#!/usr/bin/env python3
"""prices: litellm_settings.model_cost_map_path and cached-token pricing (SPEC 7.2, 4.4).

1. A generated 2,000-entry price file in LiteLLM's
   model_prices_and_context_window.json format (sample_spec with strings
   where numbers go, embedding/image/audio entries, tiered and per-second
   keys, lists and objects, numbers in exponent and plain notation) given
   by a path relative to the config file, then by an absolute path: a
   model priced only there is charged exactly its price.
2. The file is parsed once per process: after 30 requests (some in
   parallel) each program process logged "config loaded" at most once,
   and no more processes than max-procs did.
3. Cached prompt tokens (usage.prompt_tokens_details.cached_tokens) are
   billed at cache_read_input_token_cost, from the generated file and from
   the shipped one (gpt-4o), streamed or not; without a cache price they
   are billed as ordinary prompt tokens.
"""

import json
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

RARE = "tg-rare-model-7781"
RARE_PRICE = (Decimal("3.7e-07"), Decimal("0.00000113"))
CACHE = "tg-cache-model-42"
CACHE_PRICE = (Decimal("0.0000025"), Decimal("0.00001"), Decimal("1.25e-06"))
GPT4O = (Decimal("0.0000025"), Decimal("0.00001"), Decimal("0.00000125"))
N_ENTRIES = 2000
MAX_PROCS = 3


def generate_price_file(path):
    """A LiteLLM-format price file of N_ENTRIES entries (sample_spec counted)."""
    rnd = random.Random(20261127)
    d = {"sample_spec": {
        "max_tokens": "LEGACY parameter. set to max_output_tokens if provider specifies it. "
                      "IF not set to max_input_tokens, if provider specifies it.",
        "max_input_tokens": "max input tokens, if the provider specifies it. if not default "
                            "to max_tokens",
        "max_output_tokens": "max output tokens, if the provider specifies it. if not default "
                             "to max_tokens",
        "input_cost_per_token": 0.0000,
        "output_cost_per_token": 0.000,
        "output_cost_per_reasoning_token": 0.000,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "mode": "one of: chat, embedding, completion, image_generation, audio_transcription, "
                "audio_speech, image_generation, moderation, rerank",
        "supports_function_calling": True,
        "supported_endpoints": ["/v1/chat/completions"],
        "search_context_cost_per_query": {"search_context_size_low": 0.0000,
                                          "search_context_size_medium": 0.0000,
                                          "search_context_size_high": 0.0000},
        "deprecation_date": "date when the model becomes deprecated in the format YYYY-MM-DD"}}
    providers = ["openai", "azure", "mistral", "bedrock", "vertex_ai-language-models",
                 "anthropic", "groq", "together_ai", "fireworks_ai", "openrouter"]
    i = 0
    while len(d) < N_ENTRIES - 2:
        i += 1
        prov = providers[i % len(providers)]
        name = ("%s/gen-model-%04d" % (prov, i)) if i % 3 else "gen-model-%04d" % i
        kind = i % 10
        if kind == 7:
            d[name] = {"max_tokens": 8191, "max_input_tokens": 8191,
                       "output_vector_size": 1536, "input_cost_per_token": 1e-07,
                       "output_cost_per_token": 0.0, "litellm_provider": prov,
                       "mode": "embedding"}
        elif kind == 8:
            d[name] = {"mode": "image_generation", "input_cost_per_pixel": 1.9e-08,
                       "output_cost_per_pixel": 0.0, "output_cost_per_image": 0.04,
                       "litellm_provider": prov, "supported_endpoints": ["/v1/images/generations"]}
        elif kind == 9:
            d[name] = {"mode": "audio_transcription", "input_cost_per_second": 0.0001,
                       "output_cost_per_second": 0.0001, "litellm_provider": prov}
        else:
            inp = rnd.randint(1, 9000) / 10 ** rnd.randint(8, 10)
            out = rnd.randint(1, 9000) / 10 ** rnd.randint(7, 9)
            e = {"max_tokens": 4096 * (1 + kind), "max_input_tokens": 128000,
                 "max_output_tokens": 4096 * (1 + kind), "input_cost_per_token": inp,
                 "output_cost_per_token": out, "litellm_provider": prov, "mode": "chat",
                 "supports_function_calling": bool(i % 2), "supports_vision": kind == 3,
                 "supports_prompt_caching": kind == 4, "source": "https://example.com/%d" % i}
            if kind == 4:
                e["cache_read_input_token_cost"] = inp / 10
                e["cache_creation_input_token_cost"] = inp * 1.25
            if kind == 5:
                e["input_cost_per_token_above_128k_tokens"] = inp * 2
                e["output_cost_per_token_above_128k_tokens"] = out * 2
                e["tiered_pricing"] = [{"range": [0, 128000], "input_cost_per_token": inp},
                                       {"range": [128000, 1000000], "input_cost_per_token": inp * 2}]
            if kind == 6:
                e["deprecation_date"] = "2026-09-30"
                e["search_context_cost_per_query"] = {"search_context_size_low": 0.03,
                                                      "search_context_size_medium": 0.035,
                                                      "search_context_size_high": 0.05}
            d[name] = e
    d[RARE] = {"max_tokens": 8192, "max_input_tokens": 32768, "max_output_tokens": 8192,
               "input_cost_per_token": 3.7e-07, "output_cost_per_token": 0.00000113,
               "litellm_provider": "openai", "mode": "chat"}
    d[CACHE] = {"max_tokens": 16384, "max_input_tokens": 128000, "max_output_tokens": 16384,
                "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai",
                "mode": "chat", "supports_prompt_caching": True}
    assert len(d) == N_ENTRIES
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(d, f, indent=4)
    return path


def models(env):
    base = env.upstream.base + "/v1"
    return [{"model_name": "rare", "litellm_params": {"model": "openai/" + RARE, "api_base": base,
                                                      "api_key": H.UPSTREAM_KEY}},
            {"model_name": "cache", "litellm_params": {"model": "openai/" + CACHE,
                                                       "api_base": base,
                                                       "api_key": H.UPSTREAM_KEY}}]


def usage(pt, ct, cached=None):
    u = {"prompt_tokens": pt, "completion_tokens": ct}
    if cached is not None:
        u["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    return {"usage": u}


def cached_cost(pt, ct, cached, price):
    pin, pout, pcache = price
    return Decimal(pt - cached) * pin + Decimal(cached) * pcache + Decimal(ct) * pout


def ledger_spend(env, r):
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    return row and row["spend"]


def priced_from_file(t, env, srv, what):
    r = env.chat(user="pr-rare", model="rare", fake=usage(1234, 567), server=srv)
    t.is_eq(r.status, 200, "%s: a model priced only in the file answers" % what)
    want = cost(1234, 567, *RARE_PRICE)
    t.is_eq(dec(r.header("x-litellm-response-cost")), want,
            "%s: cost = 1234 x 3.7e-07 + 567 x 1.13e-06 exactly" % what)
    t.is_eq(ledger_spend(env, r), want, "%s: ledger spend exact" % what)


def cached_tokens(t, env, srv):
    r = env.chat(user="pr-cache", model="cache", fake=usage(1000, 100, cached=600), server=srv)
    t.is_eq(r.status, 200, "cached tokens: 200")
    want = cached_cost(1000, 100, 600, CACHE_PRICE)
    t.is_eq(want, Decimal("0.00275"), "cached tokens: the expected cost is 0.00275")
    t.is_eq(dec(r.header("x-litellm-response-cost")), want,
            "cached tokens: 600 cached at cache_read_input_token_cost, 400 at the input price")
    t.is_eq(ledger_spend(env, r), want, "cached tokens: ledger spend")

    r = env.stream_chat(user="pr-cache", model="cache", fake=usage(2000, 50, cached=1024),
                        extra={"stream_options": {"include_usage": True}}, server=srv)
    t.is_eq(r.status, 200, "cached tokens streamed: 200")
    want = cached_cost(2000, 50, 1024, CACHE_PRICE)
    u = [e["json"]["usage"] for e in r.events
         if isinstance(e.get("json"), dict) and e["json"].get("usage")]
    t.is_eq(dec(u[-1].get("cost")) if u and u[-1].get("cost") is not None else None, want,
            "cached tokens streamed: usage.cost uses the cache price")
    t.is_eq(ledger_spend(env, r), want, "cached tokens streamed: ledger spend")

    r = env.chat(user="pr-cache", model="cache", fake=usage(100, 10, cached=0), server=srv)
    t.is_eq(dec(r.header("x-litellm-response-cost")), cached_cost(100, 10, 0, CACHE_PRICE),
            "cached_tokens 0: all prompt tokens at the input price")
    r = env.chat(user="pr-cache", model="rare", fake=usage(100, 10, cached=60), server=srv)
    t.is_eq(dec(r.header("x-litellm-response-cost")), cost(100, 10, *RARE_PRICE),
            "no cache price: cached tokens billed as ordinary prompt tokens")
    row = env.customer_row("pr-cache") or {}
    t.is_eq(row.get("spend"), env.ledger_sum("pr-cache"), "cached tokens: spend == ledger sum")


def loaded_once(t, env, srv, what, before=None):
    """30 requests, some in parallel; then count the "config loaded" lines."""
    statuses = []
    for _ in range(10):
        statuses.append(env.chat(user="pr-load", model="rare", server=srv).status)
    with ThreadPoolExecutor(max_workers=MAX_PROCS * 2) as ex:
        futs = [ex.submit(env.chat, user="pr-load", model="rare", server=srv,
                          fake={"delay": 0.1}) for _ in range(20)]
        statuses += [f.result().status for f in futs]
    t.is_eq(statuses, [200] * 30, "%s: 30 requests answered" % what)
    loads = srv.config_loads("chat_completions")
    t.diag("%s: config loaded per chat_completions process: %r" % (what, loads))
    t.ok(len(loads) >= 1, "%s: the programs log \"config loaded\" (captured by the harness)" % what,
         "log tail:\n" + "\n".join(srv.logs().splitlines()[-10:]))
    t.ok(all(n == 1 for n in loads.values()),
         "%s: each process loaded the config (and the 2,000-entry price file) once" % what,
         "loads %r" % loads)
    t.cmp_ok(sum(loads.values()), "<=", MAX_PROCS,
             "%s: at most max-procs (%d) loads for 30 requests" % (what, MAX_PROCS))
    every = srv.config_loads()
    t.ok(all(n == 1 for n in every.values()),
         "%s: no program process loaded the config twice" % what, "loads %r" % every)


def main(t, env):
    rel = "prices/litellm-model-prices.json"
    price_file = generate_price_file(os.path.join(env.tmp, rel))
    with open(price_file) as f:
        t.is_eq(len(json.load(f)), N_ENTRIES, "the generated price file has 2,000 entries")

    cfg = env.write_config("relative", env.config(models=models(env), litellm_settings={
        "model_cost_map_path": rel}))
    srv = env.start_lighttpd(cfg, name="relative", max_procs=MAX_PROCS)
    priced_from_file(t, env, srv, "model_cost_map_path relative to the config")
    cached_tokens(t, env, srv)
    loaded_once(t, env, srv, "relative path")

    cfg = env.write_config("absolute", env.config(models=models(env)[:1], litellm_settings={
        "model_cost_map_path": price_file}))
    srv2 = env.start_lighttpd(cfg, name="absolute", max_procs=1)
    priced_from_file(t, env, srv2, "model_cost_map_path absolute")

    # The shipped price file: gpt-4o has a cache read price.
    cfg = env.write_config("shipped", env.config(models=[
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o",
                                                    "api_base": env.upstream.base + "/v1",
                                                    "api_key": H.UPSTREAM_KEY}}]))
    srv3 = env.start_lighttpd(cfg, name="shipped", max_procs=1)
    r = env.chat(user="pr-4o", model="gpt-4o", fake=usage(1000, 500, cached=400), server=srv3)
    t.is_eq(r.status, 200, "shipped gpt-4o: 200")
    t.is_eq(dec(r.header("x-litellm-response-cost")), cached_cost(1000, 500, 400, GPT4O),
            "shipped gpt-4o: cached tokens at 1.25e-06")


if __name__ == "__main__":
    H.run(main)
