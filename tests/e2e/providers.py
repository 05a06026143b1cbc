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
"""

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


if __name__ == "__main__":
    H.run(main)
