#!/usr/bin/env python3
"""plain_cgi: every program also works started once per request (SPEC 10).

Each program is run as plain CGI (the CGI/1.1 environment, the body on
stdin, the answer on stdout with a Status: header) against the private
MariaDB and the fake upstream, no web server involved; and each answers 404
for the routes of the programs beside it.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

MSGS = [{"role": "user", "content": "hi"}]


def json_type(data):
    """The "type" of an event's JSON data (None when it has none)."""
    try:
        return json.loads(data).get("type")
    except (ValueError, AttributeError):
        return None


def main(t, env):
    cfg = env.write_config("main", env.config(models=[
        env.model("fake-gpt"), env.model("fake-gpt-2"),
        env.model("fake-claude", api_base=env.upstream.base, model="anthropic/fake-claude")]))

    # health
    r = env.cgi("health", "GET", "/health/liveliness", config=cfg, key=None)
    t.is_eq((r.status, r.json), (200, "I'm alive!"), "cgi health: liveliness")
    t.is_eq(r.exit_code, 0, "cgi health: exit status 0")
    t.like(r.header("content-type", ""), r"^application/json", "cgi health: Content-Type")
    r = env.cgi("health", "GET", "/health/readiness", config=cfg, key=None)
    t.is_eq((r.status, (r.json or {}).get("status"), (r.json or {}).get("db")),
            (200, "healthy", "connected"), "cgi health: readiness")
    r = env.cgi("health", "GET", "/no/such/path?x=1", config=cfg)
    env.check_error(r, 404, "not_found", what="cgi health: unknown path")

    # customer_new
    r = env.cgi("customer_new", "POST", "/customer/new", body={"user_id": "cgi-1", "max_budget": "1"},
                config=cfg)
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, "cgi-1"), "cgi customer_new: creates")
    t.ok(bool(r.header("x-litellm-call-id")), "cgi customer_new: x-litellm-call-id")
    r = env.cgi("customer_new", "POST", "/end_user/new", body={"user_id": "cgi-1"}, config=cfg)
    env.check_error(r, 400, "invalid_request_error",
                    message="Customer already exists, passed user_id=cgi-1. Please pass a new user_id.",
                    what="cgi customer_new: duplicate")
    r = env.cgi("customer_new", "GET", "/customer/new", config=cfg)
    env.check_error(r, 405, "invalid_request_error", what="cgi customer_new: GET")
    t.like(r.header("allow", ""), r"POST", "cgi customer_new: Allow: POST")
    r = env.cgi("customer_new", "POST", "/customer/new", body={"user_id": "cgi-x"}, config=cfg,
                key="sk-wrong")
    env.check_error(r, 401, "auth_error",
                    message="Authentication Error, Invalid proxy server token passed.",
                    what="cgi customer_new: wrong key")
    r = env.cgi("customer_new", "POST", "/customer/new", body={"user_id": "cgi-alt"}, config=cfg,
                key=None, headers={"x-litellm-api-key": H.MASTER_KEY})
    t.is_eq(r.status, 200, "cgi customer_new: key in x-litellm-api-key (HTTP_X_LITELLM_API_KEY)")

    # budget_new
    r = env.cgi("budget_new", "POST", "/budget/new", body={"budget_id": "cgi-tier", "max_budget": 2},
                config=cfg)
    t.is_eq((r.status, (r.json or {}).get("budget_id"), dec((r.json or {}).get("max_budget"))),
            (200, "cgi-tier", Decimal(2)), "cgi budget_new: creates")
    r = env.cgi("budget_new", "POST", "/budget/new", body={"budget_id": "cgi-tier2", "max_budget": -1},
                config=cfg)
    env.check_error(r, 422, "invalid_request_error", param="max_budget",
                    message="max_budget must be a non-negative finite number. Received: -1",
                    what="cgi budget_new: negative")

    # chat_completions
    env.upstream.reset()
    r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg,
                body={"model": "fake-gpt", "user": "cgi-1", "messages": MSGS,
                      "fake": {"usage": {"prompt_tokens": 21, "completion_tokens": 8}}})
    t.is_eq(r.status, 200, "cgi chat_completions: 200", r.text[:300], r.stderr[-500:])
    t.is_eq(dec(r.header("x-litellm-response-cost")), cost(21, 8), "cgi chat_completions: cost header")
    t.is_eq(len(env.upstream.requests()), 1, "cgi chat_completions: one upstream request")
    lr = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(lr and (lr["end_user"], lr["spend"], lr["status"]), ("cgi-1", cost(21, 8), "success"),
            "cgi chat_completions: ledger row")
    r = env.cgi("chat_completions", "POST", "/v1/chat/completions", config=cfg,
                body={"model": "fake-gpt", "messages": MSGS},
                headers={"x-litellm-customer-id": "cgi-2"})
    t.is_eq(r.status, 200, "cgi chat_completions: /v1 path, id from a header")
    t.ok(env.customer_row("cgi-2") is not None, "cgi chat_completions: HTTP_X_LITELLM_CUSTOMER_ID used")
    r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg,
                body={"model": "nope", "messages": MSGS})
    env.check_error(r, 400, "invalid_request_error", param="model", what="cgi chat: unknown model")

    # messages (Anthropic's API; chat on the same model is translated)
    r = env.cgi("messages", "POST", "/v1/messages", config=cfg, key=None,
                headers={"x-api-key": H.MASTER_KEY, "x-litellm-customer-id": "cgi-m"},
                body={"model": "fake-claude", "max_tokens": 10, "messages": MSGS,
                      "fake": {"usage": {"input_tokens": 6, "output_tokens": 4}}})
    t.is_eq((r.status, (r.json or {}).get("type")), (200, "message"),
            "cgi messages: 200, a message", r.text[:300], r.stderr[-500:])
    t.is_eq(env.ledger_sum("cgi-m"), cost(6, 4), "cgi messages: charged the usage")
    r = env.cgi("messages", "POST", "/v1/messages", config=cfg,
                body={"model": "fake-claude", "max_tokens": 10, "messages": MSGS, "stream": True,
                      "metadata": {"user_id": "cgi-m2"},
                      "fake": {"chunks": 2, "usage": {"input_tokens": 3, "output_tokens": 2}}})
    events = [H.parse_sse_block(b) for b in r.text.replace("\r\n", "\n").split("\n\n")]
    events = [json_type(e) for e in events if e is not None]
    t.is_eq((r.status, events[:1], events[-1:]), (200, ["message_start"], ["message_stop"]),
            "cgi messages stream: message_start ... message_stop", r.text[-300:])
    t.is_eq(env.ledger_sum("cgi-m2"), cost(3, 2), "cgi messages stream: charged the usage")
    r = env.cgi("messages", "POST", "/chat/completions", config=cfg,
                body={"model": "fake-gpt", "messages": MSGS, "user": "cgi-wrong"})
    t.is_eq((r.status, (r.json or {}).get("type"), ((r.json or {}).get("error") or {}).get("type")),
            (404, "error", "not_found_error"),
            "cgi messages: /chat/completions is not its route (Anthropic's envelope)", r.text[:300])
    r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg,
                body={"model": "fake-claude", "messages": MSGS, "user": "cgi-tr"})
    t.is_eq((r.status, (r.json or {}).get("object")), (200, "chat.completion"),
            "cgi chat_completions on an anthropic/ deployment: translated", r.text[:300],
            r.stderr[-500:])

    # customer_info
    r = env.cgi("customer_info", "GET", "/customer/info?end_user_id=cgi-1", config=cfg)
    t.is_eq((r.status, (r.json or {}).get("user_id"), dec((r.json or {}).get("spend"))),
            (200, "cgi-1", cost(21, 8)), "cgi customer_info: spend after the chat")
    r = env.cgi("customer_info", "GET", "/end_user/info?end_user_id=cgi%2Dnone", config=cfg)
    env.check_error(r, 404, "not_found", param="end_user_id",
                    message="End User Id=cgi-none does not exist in db", what="cgi customer_info: unknown")
    row = env.customer_row("cgi-1") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (env.ledger_sum("cgi-1"), Decimal(0)),
            "cgi: spend == ledger sum, nothing reserved")

    # Each route has one program: the others answer 404 for it, as for any
    # path they do not serve, so a web server that sent a route to another
    # program would fail the tests that call it.  (Bodies that the right
    # program would accept: nothing of them may land.)
    wrong = [
        ("customer", "POST", "/customer/new", {"user_id": "cgi-wrong"}),
        ("customer", "POST", "/end_user/new", {"user_id": "cgi-wrong"}),
        ("customer_info", "POST", "/customer/new", {"user_id": "cgi-wrong"}),
        ("budget_new", "POST", "/customer/new", {"user_id": "cgi-wrong"}),
        ("customer", "GET", "/customer/info?end_user_id=cgi-1", None),
        ("customer", "GET", "/end_user/info?end_user_id=cgi-1", None),
        ("customer_new", "GET", "/customer/info?end_user_id=cgi-1", None),
        ("budget", "POST", "/budget/new", {"budget_id": "cgi-wrong", "max_budget": 1}),
        ("customer_new", "POST", "/budget/new", {"budget_id": "cgi-wrong", "max_budget": 1}),
        ("customer_new", "POST", "/customer/update", {"user_id": "cgi-1", "alias": "wrong"}),
        ("customer_info", "GET", "/customer/list", None),
        ("budget_new", "POST", "/budget/update", {"budget_id": "cgi-tier", "max_budget": 9}),
        ("budget_new", "GET", "/budget/list", None),
        ("chat_completions", "POST", "/customer/new", {"user_id": "cgi-wrong"}),
        ("chat_completions", "POST", "/v1/messages",
         {"model": "fake-claude", "max_tokens": 5, "messages": MSGS,
          "metadata": {"user_id": "cgi-wrong"}}),
    ]
    for prog, method, uri, body in wrong:
        r = env.cgi(prog, method, uri, body=body, config=cfg)
        what = "cgi %s: %s %s is not its route" % (prog, method, uri.split("?")[0])
        env.check_error(r, 404, "not_found", what=what)
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM customers WHERE user_id = 'cgi-wrong'")[0][0]), 0,
            "cgi: no customer made by a program that does not serve /customer/new")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM budgets WHERE budget_id = 'cgi-wrong'")[0][0]), 0,
            "cgi: no budget made by a program that does not serve /budget/new")

    # a streamed chat, and a body that is not JSON
    r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg,
                body={"model": "fake-gpt", "user": "cgi-3", "messages": MSGS, "stream": True,
                      "fake": {"chunks": 3, "usage": {"prompt_tokens": 5, "completion_tokens": 3}}})
    t.is_eq((r.status, r.header("content-type", "")[:17]), (200, "text/event-stream"),
            "cgi chat_completions stream: 200, an event stream", r.text[:300])
    events = [H.parse_sse_block(b) for b in r.text.replace("\r\n", "\n").split("\n\n")]
    events = [e for e in events if e is not None]
    t.is_eq(events[-1:], ["[DONE]"], "cgi chat_completions stream: ends with [DONE]", r.text[-300:])
    t.is_eq(env.ledger_sum("cgi-3"), cost(5, 3), "cgi chat_completions stream: charged the usage")
    r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg, body="{\"model\": ")
    env.check_error(r, 400, "invalid_request_error", what="cgi chat: body not JSON")

    # key: generate, a call with it (budgeted, rate-limited), info, list,
    # a management route refused, delete
    r = env.cgi("key", "POST", "/key/generate", config=cfg,
                body={"key_alias": "cgi-app", "max_budget": 1, "rpm_limit": 10,
                      "max_parallel_requests": 2, "models": ["fake-gpt"],
                      "metadata": {"a": 1}})
    vk, token = (r.json or {}).get("key"), (r.json or {}).get("token")
    t.ok(r.status == 200 and vk and token, "cgi key: generate", r.text[:300])
    r = env.cgi("chat_completions", "POST", "/chat/completions", config=cfg, key=vk,
                body={"model": "fake-gpt", "user": "cgi-4", "messages": MSGS,
                      "fake": {"usage": {"prompt_tokens": 4, "completion_tokens": 2}}})
    t.is_eq(r.status, 200, "cgi chat_completions with a virtual key", r.text[:300])
    lr = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(lr and (lr["end_user"], lr["api_key"], lr["spend"]), ("cgi-4", token, cost(4, 2)),
            "cgi chat with a key: the row names the key's token")
    r = env.cgi("key", "GET", "/key/info", config=cfg, key=vk)
    t.is_eq((r.status, dec(((r.json or {}).get("info") or {}).get("spend"))), (200, cost(4, 2)),
            "cgi key/info with the key itself: its spend")
    r = env.cgi("key", "GET", "/key/list?return_full_object=true", config=cfg)
    t.is_eq((r.status, (r.json or {}).get("total_count")), (200, 1), "cgi key/list")
    r = env.cgi("customer", "GET", "/customer/list", config=cfg, key=vk)
    env.check_error(r, 403, "permission_error", what="cgi customer/list with a virtual key")
    r = env.cgi("key", "POST", "/key/update", config=cfg, body={"key": token, "tpm_limit": 9})
    t.is_eq((r.status, (r.json or {}).get("tpm_limit")), (200, 9), "cgi key/update")
    r = env.cgi("key", "POST", "/key/delete", config=cfg, body={"keys": [vk]})
    t.is_eq((r.status, (r.json or {}).get("deleted_keys")), (200, [vk]), "cgi key/delete")


if __name__ == "__main__":
    H.run(main)
