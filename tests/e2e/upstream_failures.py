#!/usr/bin/env python3
"""upstream_failures: what a failed upstream call costs and answers (SPEC 4.4).

Upstream 5xx/4xx (with an OpenAI envelope or a raw body), a timeout
(model timeout 1 s, upstream 3 s) -> 408 timeout_error, connection refused
-> 502 api_connection_error, a dropped connection: the client gets the
mapped status in the envelope; no charge, a spend_logs row with status
failure and spend 0, the reservation released.  A later call works.
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402


def envelope_ok(t, r, status, what):
    e = r.error
    t.is_eq(r.status, status, "%s: status %d" % (what, status))
    t.ok(isinstance(r.json, dict) and set(e) >= {"message", "type", "param", "code"},
         "%s: error envelope" % what, "got %s" % r.text[:400])
    t.is_eq(e.get("code"), str(status), "%s: code \"%d\"" % (what, status))
    t.ok(bool(r.header("x-litellm-call-id")), "%s: x-litellm-call-id" % what)


def no_charge(t, env, user, r, what):
    row = env.customer_row(user)
    t.is_eq((row or {}).get("spend"), Decimal(0), "%s: no charge" % what)
    t.is_eq((row or {}).get("reserved"), Decimal(0), "%s: reservation released" % what)
    lr = env.ledger_row(r.header("x-litellm-call-id") or "")
    if t.ok(lr is not None, "%s: a spend_logs row for the call id" % what):
        t.is_eq((lr["status"], lr["spend"], lr["end_user"]), ("failure", Decimal(0), user),
                "%s: ledger row status failure, spend 0" % what)


def main(t, env):
    closed_port = H.refused_port()  # bound, never listening: connect is refused
    models = [env.model("fake-gpt"),
              env.model("fake-slow", upstream_model="fake-gpt", timeout=1),
              env.model("fake-down", upstream_model="fake-gpt",
                        api_base="http://127.0.0.1:%d/v1" % closed_port)]
    cfg = env.write_config("main", env.config(models=models))
    env.start_lighttpd(cfg, max_procs=2)

    def customer(user):
        r = env.customer_new(user_id=user, max_budget=1)
        t.is_eq(r.status, 200, "customer/new %s" % user)

    # 1. upstream 500 with an OpenAI envelope: relayed.
    customer("uf-500")
    r = env.chat(user="uf-500", fake={"status": 500})
    envelope_ok(t, r, 500, "upstream 500")
    t.is_eq(r.error.get("message"), "fake upstream error 500", "upstream 500: upstream message relayed")
    no_charge(t, env, "uf-500", r, "upstream 500")

    # 2. upstream 503 with a raw body: re-wrapped.
    customer("uf-raw")
    r = env.chat(user="uf-raw", fake={"status": 503, "error_body": "upstream exploded <html>"})
    envelope_ok(t, r, 503, "upstream 503 raw body")
    no_charge(t, env, "uf-raw", r, "upstream 503 raw body")

    # 3. upstream 400 (e.g. context length): relayed with its message.
    customer("uf-400")
    body400 = {"error": {"message": "This model's maximum context length is 4097 tokens.",
                         "type": "invalid_request_error", "param": "messages",
                         "code": "context_length_exceeded"}}
    r = env.chat(user="uf-400", fake={"status": 400, "error_body": body400})
    t.is_eq(r.status, 400, "upstream 400: status relayed")
    t.is_eq(r.error.get("message"), body400["error"]["message"], "upstream 400: message relayed")
    no_charge(t, env, "uf-400", r, "upstream 400")

    # 4. upstream 429.
    customer("uf-429")
    r = env.chat(user="uf-429", fake={"status": 429})
    t.is_eq(r.status, 429, "upstream 429: status relayed")
    no_charge(t, env, "uf-429", r, "upstream 429")

    # 5. timeout: the model's timeout is 1 s, the upstream takes 3 s.
    customer("uf-timeout")
    r = env.chat(user="uf-timeout", model="fake-slow", fake={"delay": 3})
    envelope_ok(t, r, 408, "timeout")
    t.is_eq(r.error.get("type"), "timeout_error", "timeout: type timeout_error")
    t.cmp_ok(r.elapsed, "<", 2.9, "timeout: answered after the model's timeout, not the upstream's")
    no_charge(t, env, "uf-timeout", r, "timeout")

    # 6. connection refused.
    customer("uf-refused")
    r = env.chat(user="uf-refused", model="fake-down")
    envelope_ok(t, r, 502, "connection refused")
    t.is_eq(r.error.get("type"), "api_connection_error", "connection refused: api_connection_error")
    no_charge(t, env, "uf-refused", r, "connection refused")

    # 7. the upstream drops the connection without answering.
    customer("uf-dropped")
    r = env.chat(user="uf-dropped", fake={"close": True})
    t.ok(500 <= r.status <= 599, "dropped connection: 5xx", "got %s %s" % (r.status, r.text[:300]))
    t.ok(isinstance(r.json, dict) and "error" in r.json, "dropped connection: error envelope")
    no_charge(t, env, "uf-dropped", r, "dropped connection")

    # 8. afterwards the same customers and processes work normally.
    for user in ("uf-500", "uf-timeout", "uf-dropped", "uf-refused"):
        r = env.chat(user=user, fake={"usage": {"prompt_tokens": 3, "completion_tokens": 4}})
        t.is_eq(r.status, 200, "%s: a later call succeeds" % user)
        row = env.customer_row(user) or {}
        t.is_eq(row.get("spend"), cost(3, 4), "%s: only the successful call is charged" % user)
        t.is_eq(row.get("spend"), env.ledger_sum(user), "%s: spend == ledger sum" % user)
    r = env.chat(user="uf-refused", model="fake-down")
    t.is_eq(r.status, 502, "connection refused again: still 502, no stale state")
    t.is_eq(dec((env.customer_row("uf-refused") or {}).get("reserved")), Decimal(0),
            "connection refused again: nothing reserved")


if __name__ == "__main__":
    H.run(main)
