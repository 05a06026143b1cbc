#!/usr/bin/env python3
"""providers: the upstream request shapes of SPEC 7, and GET /models (SPEC 8).

Each provider's request is checked from what the fake upstream recorded:
  azure/<deployment>  POST {api_base}/openai/deployments/<deployment>/chat/completions
                      ?api-version=<api_version>, header api-key (no Bearer)
  mistral/<m>         POST {api_base}/chat/completions, Bearer, model <m>,
                      no "user", max_completion_tokens sent as max_tokens;
                      streamed without stream_options (the fake, like
                      api.mistral.ai, answers 422 to user, stream_options
                      and max_completion_tokens, and sends usage in the
                      last chunk)
  openai/<m>          POST {api_base}/chat/completions, Bearer, model <m>
  <bare model>        as openai/
Keys come from the environment (os.environ/NAME); the client's key never
reaches an upstream.  Prices: model_info.base_model and <provider>/<name>
lookups in the shipped price file.  Streaming works for each provider.

LiteLLM's OpenAI-compatible prefixes (deepseek/, gemini/, groq/,
openrouter/, xai/, together_ai/, fireworks_ai/, perplexity/, hosted_vllm/,
ollama_chat/, cerebras/, deepinfra/, lm_studio/, nvidia_nim/) on a second
server: each is called once and checked for the path below its api_base
(gemini/ and ollama_chat/ add the path of their OpenAI-compatible API to a
root api_base), the Bearer key (os.environ/, else the provider's own
variable, DEEPSEEK_API_KEY and the like, when api_key is absent; none for
keyless local servers), the body (fireworks_ai/ names its models
accounts/fireworks/models/<m>; xai/, fireworks_ai/ and deepinfra/ take
max_tokens) and the charge, from LiteLLM's price map entry under the
prefixed name (ollama_chat/<m> as ollama/<m>).  The map is the shipped
price file when it has those entries, else an excerpt of LiteLLM's map
written for the test; either way the expected charge is computed here from
the entry's published prices.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

AZURE_KEY = "azure-key-0123456789"
MISTRAL_KEY = "mistral-key-abcdef"
OPENAI_KEY = "sk-openai-compatible-42"
API_VERSION = "2024-10-21"

# Shipped prices (SPEC 7.2).
AZURE_GPT4O = (Decimal("0.0000025"), Decimal("0.00001"))
MISTRAL_SMALL = (Decimal("0.00000006"), Decimal("0.00000018"))
GPT4O_MINI = (Decimal("0.00000015"), Decimal("0.0000006"))


def models(env):
    base = env.upstream.base
    return [
        {"model_name": "azure-chat",
         "litellm_params": {"model": "azure/my-deployment",
                            "api_base": "os.environ/TG_TEST_AZURE_BASE",
                            "api_key": "os.environ/TG_TEST_AZURE_KEY",
                            "api_version": API_VERSION},
         "model_info": {"base_model": "azure/gpt-4o"}},
        {"model_name": "mistral-chat",
         "litellm_params": {"model": "mistral/mistral-small-latest",
                            "api_base": base + "/_mistral/v1",
                            "api_key": "os.environ/TG_TEST_MISTRAL_KEY"}},
        {"model_name": "local-llm",
         "litellm_params": {"model": "openai/my-local-llm",
                            "api_base": base + "/v1",
                            "api_key": "os.environ/TG_TEST_OPENAI_KEY"},
         "model_info": {"input_cost_per_token": H.IN_PRICE,
                        "output_cost_per_token": H.OUT_PRICE}},
        {"model_name": "bare-mini",
         "litellm_params": {"model": "gpt-4o-mini",
                            "api_base": base + "/v1",
                            "api_key": "os.environ/TG_TEST_OPENAI_KEY"}},
    ]


def one(env, model, user, extra=None, stream=False, usage=(10, 20), content="hello"):
    env.upstream.reset()
    fake = {"usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}}
    if stream:
        r = env.stream_chat(user=user, model=model, fake=fake, extra=extra, content=content)
    else:
        r = env.chat(user=user, model=model, fake=fake, extra=extra, content=content)
    reqs = env.upstream.requests()
    return r, (reqs[-1] if reqs else {}), len(reqs)


def no_client_key(t, q, what):
    h = q.get("headers") or {}
    leaked = [k for k, v in h.items() if H.MASTER_KEY in str(v)]
    t.is_eq(leaked, [], "%s: the client's key is not sent upstream" % what)


def charged(t, env, r, want, model_id, what):
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    if not t.ok(row is not None, "%s: ledger row" % what):
        return
    t.is_eq((row["status"], row["spend"]), ("success", want), "%s: charged %s" % (what, want))
    t.is_eq(row["model_id"], model_id, "%s: ledger model_id = litellm_params.model" % what)


def azure(t, env):
    r, q, n = one(env, "azure-chat", "prov-azure", extra={"max_completion_tokens": 50,
                                                         "temperature": 0.5})
    t.is_eq(r.status, 200, "azure: 200")
    t.is_eq(n, 1, "azure: one upstream request")
    t.is_eq(q.get("method"), "POST", "azure: POST")
    t.is_eq(q.get("path"), "/openai/deployments/my-deployment/chat/completions",
            "azure: path {api_base}/openai/deployments/<deployment>/chat/completions")
    t.is_eq(q.get("query"), "api-version=" + API_VERSION, "azure: ?api-version=<api_version>")
    h = q.get("headers") or {}
    t.is_eq(h.get("api-key"), AZURE_KEY, "azure: api-key header from os.environ/")
    t.ok("authorization" not in h, "azure: no Authorization header",
         "authorization: %r" % h.get("authorization"))
    no_client_key(t, q, "azure")
    js = q.get("json") or {}
    t.is_eq(js.get("user"), "prov-azure", "azure: user forwarded")
    t.is_eq(js.get("max_completion_tokens"), 50, "azure: max_completion_tokens unchanged")
    t.is_eq(js.get("temperature"), 0.5, "azure: other fields unchanged")
    t.is_eq(js.get("messages"), [{"role": "user", "content": "hello"}], "azure: messages unchanged")
    want = cost(10, 20, *AZURE_GPT4O)
    t.is_eq(dec(r.header("x-litellm-response-cost")), want,
            "azure: priced as model_info.base_model azure/gpt-4o")
    charged(t, env, r, want, "azure/my-deployment", "azure")

    r, q, n = one(env, "azure-chat", "prov-azure", stream=True, usage=(7, 3))
    t.is_eq(r.status, 200, "azure stream: 200")
    t.ok(bool(r.events) and r.events[-1]["done"], "azure stream: ends with [DONE]")
    t.is_eq((q.get("path"), q.get("query")),
            ("/openai/deployments/my-deployment/chat/completions", "api-version=" + API_VERSION),
            "azure stream: same path and query")
    t.is_eq((q.get("headers") or {}).get("api-key"), AZURE_KEY, "azure stream: api-key header")
    charged(t, env, r, cost(7, 3, *AZURE_GPT4O), "azure/my-deployment", "azure stream")


def mistral(t, env):
    r, q, n = one(env, "mistral-chat", "prov-mistral",
                  extra={"max_completion_tokens": 64, "temperature": 0.2, "top_p": 0.9})
    t.is_eq(r.status, 200, "mistral: 200")
    t.is_eq(n, 1, "mistral: one upstream request")
    t.is_eq(q.get("path"), "/_mistral/v1/chat/completions",
            "mistral: path {api_base}/chat/completions")
    t.is_eq(q.get("query"), "", "mistral: no query")
    h = q.get("headers") or {}
    t.is_eq(h.get("authorization"), "Bearer " + MISTRAL_KEY, "mistral: Bearer key from os.environ/")
    t.ok("api-key" not in h, "mistral: no api-key header")
    no_client_key(t, q, "mistral")
    js = q.get("json") or {}
    t.is_eq(js.get("model"), "mistral-small-latest", "mistral: body model = the name after mistral/")
    t.ok("user" not in js, "mistral: user not forwarded", "body: %s" % q.get("body", "")[:300])
    t.is_eq(js.get("max_tokens"), 64, "mistral: max_completion_tokens becomes max_tokens")
    t.ok("max_completion_tokens" not in js, "mistral: no max_completion_tokens upstream")
    t.is_eq((js.get("temperature"), js.get("top_p")), (0.2, 0.9), "mistral: other fields unchanged")
    want = cost(10, 20, *MISTRAL_SMALL)
    t.is_eq(dec(r.header("x-litellm-response-cost")), want,
            "mistral: priced as mistral/mistral-small-latest (shipped price file)")
    charged(t, env, r, want, "mistral/mistral-small-latest", "mistral")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and row["end_user"], "prov-mistral",
            "mistral: the customer is still tracked though user is not forwarded")

    # max_tokens given by the client stays max_tokens.
    r, q, n = one(env, "mistral-chat", "prov-mistral", extra={"max_tokens": 33})
    js = q.get("json") or {}
    t.is_eq((r.status, js.get("max_tokens"), "user" in js), (200, 33, False),
            "mistral: max_tokens kept, user dropped")

    # Streaming.  api.mistral.ai rejects stream_options with 422
    # extra_forbidden (LiteLLM issue #8978) and always sends usage in its
    # last chunk, beside the finish_reason; the fake behaves so under
    # /_mistral/.
    r, q, n = one(env, "mistral-chat", "prov-mistral", stream=True, usage=(5, 6),
                  extra={"max_completion_tokens": 40})
    t.is_eq(r.status, 200, "mistral stream: 200", "got %s" % r.text[:400])
    t.ok(bool(r.events) and r.events[-1]["done"], "mistral stream: ends with [DONE]")
    js = q.get("json") or {}
    t.is_eq((js.get("max_tokens"), "max_completion_tokens" in js, "user" in js), (40, False, False),
            "mistral stream: max_tokens mapped, user dropped")
    t.ok("stream_options" not in js,
         "mistral stream: no stream_options upstream (Mistral answers 422 extra_forbidden)",
         "body: %s" % q.get("body", "")[:300])
    charged(t, env, r, cost(5, 6, *MISTRAL_SMALL), "mistral/mistral-small-latest", "mistral stream")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    meta = (row or {}).get("metadata")
    t.ok(not (isinstance(meta, dict) and meta.get("usage_estimated")),
         "mistral stream: charged on Mistral's own usage (last chunk), not an estimate",
         "metadata %r" % (meta,))


def openai_compatible(t, env):
    r, q, n = one(env, "local-llm", "prov-openai", extra={"max_completion_tokens": 77})
    t.is_eq(r.status, 200, "openai/ with api_base: 200")
    t.is_eq(q.get("path"), "/v1/chat/completions", "openai/: path {api_base}/chat/completions")
    h = q.get("headers") or {}
    t.is_eq(h.get("authorization"), "Bearer " + OPENAI_KEY, "openai/: Bearer key from os.environ/")
    t.ok("api-key" not in h, "openai/: no api-key header")
    no_client_key(t, q, "openai/")
    js = q.get("json") or {}
    t.is_eq(js.get("model"), "my-local-llm", "openai/: body model = the name after openai/")
    t.is_eq(js.get("user"), "prov-openai", "openai/: user forwarded")
    t.is_eq(js.get("max_completion_tokens"), 77, "openai/: max_completion_tokens unchanged")
    charged(t, env, r, cost(10, 20), "openai/my-local-llm", "openai/")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and row["api_base"], env.upstream.base + "/v1", "openai/: ledger api_base")

    r, q, n = one(env, "bare-mini", "prov-openai")
    t.is_eq(r.status, 200, "bare model name: 200")
    t.is_eq((q.get("path"), (q.get("headers") or {}).get("authorization"),
             (q.get("json") or {}).get("model")),
            ("/v1/chat/completions", "Bearer " + OPENAI_KEY, "gpt-4o-mini"),
            "bare model name: served as openai/")
    t.is_eq(dec(r.header("x-litellm-response-cost")), cost(10, 20, *GPT4O_MINI),
            "bare model name: priced as gpt-4o-mini")

    r, q, n = one(env, "local-llm", "prov-openai", stream=True, usage=(3, 4))
    t.is_eq(r.status, 200, "openai/ stream: 200")
    t.is_eq(((q.get("json") or {}).get("model"), (q.get("json") or {}).get("stream")),
            ("my-local-llm", True), "openai/ stream: model mapped, stream true")
    charged(t, env, r, cost(3, 4), "openai/my-local-llm", "openai/ stream")


def models_endpoint(t, env):
    want = {"azure-chat": "azure", "mistral-chat": "mistral", "local-llm": "openai",
            "bare-mini": "openai"}
    for path in ("/models", "/v1/models"):
        r = env.request("GET", path)
        t.is_eq(r.status, 200, "GET %s: 200" % path)
        t.like(r.header("content-type", ""), r"^application/json", "GET %s: JSON" % path)
        js = r.json if isinstance(r.json, dict) else {}
        t.is_eq(js.get("object"), "list", "GET %s: object list" % path)
        data = js.get("data") if isinstance(js.get("data"), list) else []
        got = {m.get("id"): m.get("owned_by") for m in data if isinstance(m, dict)}
        t.is_eq(got, want, "GET %s: every model_name once, owned_by its provider" % path)
        t.ok(all(m.get("object") == "model" and m.get("created") == 1677610602 for m in data),
             "GET %s: object model, created 1677610602" % path)
    r = env.request("GET", "/v1/models", key=None)
    env.check_error(r, 401, "auth_error", what="GET /v1/models without a key")
    r = env.request("POST", "/v1/models", body={})
    t.is_eq(r.status, 405, "POST /v1/models: 405")


def missing_env(t, env):
    cfg = {"model_list": [{"model_name": "needs-key",
                           "litellm_params": {"model": "openai/x",
                                              "api_base": env.upstream.base + "/v1",
                                              "api_key": "os.environ/TG_TEST_UNSET_KEY"},
                           "model_info": {"input_cost_per_token": H.IN_PRICE,
                                          "output_cost_per_token": H.OUT_PRICE}}],
           "general_settings": {"master_key": H.MASTER_KEY}}
    srv = env.start_lighttpd(env.write_config("unset", cfg), name="unset", max_procs=1)
    r = env.chat(model="needs-key", server=srv)
    env.check_error(r, 500, "internal_server_error", what="os.environ/ of an unset variable")
    t.like(r.error.get("message") or "", r"^Configuration error: .*TG_TEST_UNSET_KEY",
           "unset variable: the message names it")


# LiteLLM's OpenAI-compatible providers ------------------------------------

# Entries of LiteLLM's model_prices_and_context_window.json (BerriAI/litellm
# at 00035b69), as named and priced there: used when the shipped price file
# does not have them (yet).
LITELLM_MAP_EXCERPT = {
    "deepseek/deepseek-chat": ("2.8e-07", "4.2e-07", "deepseek"),
    "gemini/gemini-2.5-flash": ("3e-07", "2.5e-06", "gemini"),
    "groq/llama-3.1-8b-instant": ("5e-08", "8e-08", "groq"),
    "openrouter/openai/gpt-4o": ("2.5e-06", "1e-05", "openrouter"),
    "xai/grok-3-mini": ("3e-07", "5e-07", "xai"),
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo": ("8.8e-07", "8.8e-07", "together_ai"),
    "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct":
        ("1e-07", "1e-07", "fireworks_ai"),
    "perplexity/sonar": ("1e-06", "1e-06", "perplexity"),
    "ollama/llama3": ("0.0", "0.0", "ollama"),
    "cerebras/llama3.1-8b": ("1e-07", "1e-07", "cerebras"),
    "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct": ("3e-08", "5e-08", "deepinfra"),
}

# Keys the deployments read: through os.environ/ or, with no api_key, from
# the variable LiteLLM reads for the provider.
COMPAT_ENV = {
    "DEEPSEEK_API_KEY": "ds-key-0001",
    "GEMINI_API_KEY": "gemini-key-0002",
    "TG_TEST_GROQ_KEY": "gsk-0003",
    "TG_TEST_OR_KEY": "sk-or-0004",
    "XAI_API_KEY": "xai-key-0005",
    "TOGETHERAI_API_KEY": "together-key-0006",
    "TG_TEST_FW_KEY": "fw-key-0007",
    "PERPLEXITYAI_API_KEY": "pplx-0008",
    "CEREBRAS_API_KEY": "csk-0009",
    "TG_TEST_DI_KEY": "di-key-0010",
    "NVIDIA_NIM_API_KEY": "nvapi-0011",
}

# (model_name, litellm_params.model, path below the fake's root for
#  api_base or None, more litellm_params, the path the fake must see,
#  the Bearer key or None, the model in the body, the price name or None
#  for model_info prices, max_completion_tokens sent as max_tokens)
COMPAT = [
    ("c-deepseek", "deepseek/deepseek-chat", "/_deepseek/v1", {},
     "/_deepseek/v1/chat/completions", "DEEPSEEK_API_KEY", "deepseek-chat",
     "deepseek/deepseek-chat", False),
    ("c-gemini", "gemini/gemini-2.5-flash", "/_gemini", {},
     "/_gemini/v1beta/openai/chat/completions", "GEMINI_API_KEY", "gemini-2.5-flash",
     "gemini/gemini-2.5-flash", False),
    ("c-groq", "groq/llama-3.1-8b-instant", "/_groq/openai/v1",
     {"api_key": "os.environ/TG_TEST_GROQ_KEY"},
     "/_groq/openai/v1/chat/completions", "TG_TEST_GROQ_KEY", "llama-3.1-8b-instant",
     "groq/llama-3.1-8b-instant", False),
    ("c-openrouter", "openrouter/openai/gpt-4o", "/_openrouter/api/v1",
     {"api_key": "os.environ/TG_TEST_OR_KEY"},
     "/_openrouter/api/v1/chat/completions", "TG_TEST_OR_KEY", "openai/gpt-4o",
     "openrouter/openai/gpt-4o", False),
    ("c-xai", "xai/grok-3-mini", "/_xai/v1", {},
     "/_xai/v1/chat/completions", "XAI_API_KEY", "grok-3-mini", "xai/grok-3-mini", True),
    ("c-together", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "/_together/v1", {},
     "/_together/v1/chat/completions", "TOGETHERAI_API_KEY",
     "meta-llama/Llama-3.3-70B-Instruct-Turbo",
     "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", False),
    ("c-fireworks", "fireworks_ai/llama-v3p1-8b-instruct", "/_fireworks/inference/v1",
     {"api_key": "os.environ/TG_TEST_FW_KEY"},
     "/_fireworks/inference/v1/chat/completions", "TG_TEST_FW_KEY",
     "accounts/fireworks/models/llama-v3p1-8b-instruct",
     "fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct", True),
    ("c-perplexity", "perplexity/sonar", "/_perplexity", {},
     "/_perplexity/chat/completions", "PERPLEXITYAI_API_KEY", "sonar", "perplexity/sonar",
     False),
    # api_base from HOSTED_VLLM_API_BASE; no key anywhere: no header.
    ("c-vllm", "hosted_vllm/my-vllm-model", None, {},
     "/_vllm/v1/chat/completions", None, "my-vllm-model", None, False),
    # LiteLLM's api_base for Ollama is the server root.
    ("c-ollama", "ollama_chat/llama3", "/_ollama", {},
     "/_ollama/v1/chat/completions", None, "llama3", "ollama/llama3", False),
    ("c-cerebras", "cerebras/llama3.1-8b", "/_cerebras/v1", {},
     "/_cerebras/v1/chat/completions", "CEREBRAS_API_KEY", "llama3.1-8b",
     "cerebras/llama3.1-8b", False),
    ("c-deepinfra", "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct", "/_deepinfra/v1/openai",
     {"api_key": "os.environ/TG_TEST_DI_KEY"},
     "/_deepinfra/v1/openai/chat/completions", "TG_TEST_DI_KEY",
     "meta-llama/Meta-Llama-3.1-8B-Instruct",
     "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct", True),
    # api_base from LM_STUDIO_API_BASE.
    ("c-lmstudio", "lm_studio/qwen2.5-7b-instruct", None, {},
     "/_lmstudio/v1/chat/completions", None, "qwen2.5-7b-instruct", None, False),
    ("c-nim", "nvidia_nim/meta/llama3-8b-instruct", "/_nim/v1", {},
     "/_nim/v1/chat/completions", "NVIDIA_NIM_API_KEY", "meta/llama3-8b-instruct", None,
     False),
]


def compat_prices(t, env):
    """The price map to use and its entries {name: (in, out)} as Decimals:
    the shipped file when it has every entry, else the excerpt."""
    with open(H.PRICE_FILE) as f:
        shipped = json.load(f, parse_float=Decimal)
    want = [c[7] for c in COMPAT if c[7]]
    if all(isinstance(shipped.get(n), dict) for n in want):
        t.diag("LiteLLM prefixes priced from the shipped price file")
        return None, {n: (shipped[n].get("input_cost_per_token", Decimal(0)),
                          shipped[n].get("output_cost_per_token", Decimal(0))) for n in want}
    t.diag("the shipped price file lacks %s: using an excerpt of LiteLLM's map"
           % ", ".join(n for n in want if not isinstance(shipped.get(n), dict)))
    path = os.path.join(env.tmp, "litellm_prices.json")
    with open(path, "w") as f:
        f.write("{%s}" % ", ".join(
            '"%s": {"input_cost_per_token": %s, "output_cost_per_token": %s, '
            '"litellm_provider": "%s", "mode": "chat"}' % (n, i, o, p)
            for n, (i, o, p) in LITELLM_MAP_EXCERPT.items()))
    return path, {n: (Decimal(i), Decimal(o)) for n, (i, o, _) in LITELLM_MAP_EXCERPT.items()}


def compat_models(env):
    out = []
    for name, model, base, more, _, _, _, price_name, _ in COMPAT:
        lp = {"model": model}
        if base is not None:
            lp["api_base"] = env.upstream.base + base
        lp.update(more)
        m = {"model_name": name, "litellm_params": lp}
        if price_name is None:
            m["model_info"] = {"input_cost_per_token": H.IN_PRICE,
                               "output_cost_per_token": H.OUT_PRICE}
        out.append(m)
    return out


def compat_providers(t, env):
    price_file, prices = compat_prices(t, env)
    ls = {"model_cost_map_path": price_file} if price_file else None
    cfg = env.write_config("compat", env.config(models=compat_models(env), litellm_settings=ls))
    extra = dict(COMPAT_ENV)
    extra["HOSTED_VLLM_API_BASE"] = env.upstream.base + "/_vllm/v1"
    extra["LM_STUDIO_API_BASE"] = env.upstream.base + "/_lmstudio/v1"
    srv = env.start_lighttpd(cfg, name="compat", max_procs=1, extra_env=extra)
    for name, model, _, _, path, key_var, body_model, price_name, mapped in COMPAT:
        env.upstream.reset()
        fake = {"usage": {"prompt_tokens": 1234, "completion_tokens": 567}}
        r = env.chat(user="prov-compat", model=name, fake=fake, server=srv,
                     extra={"max_completion_tokens": 99, "temperature": 0.3})
        reqs = env.upstream.requests()
        q = reqs[-1] if reqs else {}
        t.is_eq((r.status, len(reqs)), (200, 1), "%s: 200, one upstream request" % model,
                r.text[:300])
        t.is_eq(q.get("path"), path, "%s: POST %s" % (model, path))
        h = q.get("headers") or {}
        if key_var:
            t.is_eq(h.get("authorization"), "Bearer " + COMPAT_ENV[key_var],
                    "%s: Bearer key from %s" % (model, key_var))
        else:
            t.ok("authorization" not in h, "%s: no key, no Authorization header" % model,
                 "authorization: %r" % h.get("authorization"))
        no_client_key(t, q, model)
        js = q.get("json") or {}
        t.is_eq((js.get("model"), js.get("user"), js.get("temperature"), js.get("messages")),
                (body_model, "prov-compat", 0.3, [{"role": "user", "content": "hello"}]),
                "%s: body model %s, user and the rest forwarded" % (model, body_model))
        if mapped:
            t.is_eq((js.get("max_tokens"), "max_completion_tokens" in js), (99, False),
                    "%s: max_completion_tokens sent as max_tokens" % model)
        else:
            t.is_eq((js.get("max_completion_tokens"), "max_tokens" in js), (99, False),
                    "%s: max_completion_tokens unchanged" % model)
        if price_name:
            want = cost(1234, 567, *prices[price_name])
            what = "priced as %s from the map" % price_name
        else:
            want = cost(1234, 567)
            what = "priced by model_info"
        t.is_eq(dec(r.header("x-litellm-response-cost")), want, "%s: %s" % (model, what))
        charged(t, env, r, want, model, model)
        row = env.ledger_row(r.header("x-litellm-call-id") or "")
        t.is_eq(row and row["api_base"], env.upstream.base + path[:-len("/chat/completions")],
                "%s: ledger api_base" % model)

    # Streamed through one of them: usage from the upstream, as for openai/.
    env.upstream.reset()
    r = env.stream_chat(user="prov-compat", model="c-deepseek", server=srv,
                        fake={"usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    q = (env.upstream.requests() or [{}])[-1]
    t.ok(r.status == 200 and bool(r.events) and r.events[-1]["done"],
         "deepseek/ stream: 200, ends with [DONE]")
    t.is_eq(((q.get("json") or {}).get("stream_options"), q.get("path")),
            ({"include_usage": True}, "/_deepseek/v1/chat/completions"),
            "deepseek/ stream: stream_options sent, same path")
    charged(t, env, r, cost(7, 3, *prices["deepseek/deepseek-chat"]), "deepseek/deepseek-chat",
            "deepseek/ stream")

    r = env.request("GET", "/v1/models", server=srv)
    data = (r.json or {}).get("data") if isinstance(r.json, dict) else None
    got = {m.get("id"): m.get("owned_by") for m in data or [] if isinstance(m, dict)}
    t.is_eq(got, {c[0]: c[1].split("/", 1)[0] for c in COMPAT},
            "GET /v1/models: the new prefixes as owned_by")

    # hosted_vllm/ has no default base: a config without one is an error.
    cfg = env.write_config("novllm", env.config(models=[
        {"model_name": "v", "litellm_params": {"model": "hosted_vllm/m"},
         "model_info": {"input_cost_per_token": H.IN_PRICE,
                        "output_cost_per_token": H.OUT_PRICE}}]))
    srv = env.start_lighttpd(cfg, name="novllm", max_procs=1)
    r = env.chat(model="v", server=srv)
    env.check_error(r, 500, "internal_server_error", what="hosted_vllm/ without api_base")
    t.like(r.error.get("message") or "", r"^Configuration error: .*HOSTED_VLLM_API_BASE",
           "hosted_vllm/ without api_base: the message names HOSTED_VLLM_API_BASE")


def main(t, env):
    cfg = env.write_config("main", env.config(models=models(env)))
    env.start_lighttpd(cfg, max_procs=2, extra_env={
        "TG_TEST_AZURE_BASE": env.upstream.base,
        "TG_TEST_AZURE_KEY": AZURE_KEY,
        "TG_TEST_MISTRAL_KEY": MISTRAL_KEY,
        "TG_TEST_OPENAI_KEY": OPENAI_KEY})
    azure(t, env)
    mistral(t, env)
    openai_compatible(t, env)
    models_endpoint(t, env)
    missing_env(t, env)
    compat_providers(t, env)


if __name__ == "__main__":
    H.run(main)
