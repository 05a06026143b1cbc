#!/usr/bin/env python3
"""errors: every error row of SPEC 1 and 8 for the endpoints built so far.

Auth failures, bodies that are not JSON objects, wrong types (422 with
param), numeric strings, id rules (length, UTF-8, SQL metacharacters,
case), size caps, 405 with Allow, unknown paths, chat validation, the
management endpoints' own errors, and configs without a master key or
that cannot be loaded (500, and the server keeps answering).  Every error
must come in the envelope {"error": {message, type, param, code}}.
"""

import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

MSG_NO_KEY = "Authentication Error, No api key passed in."
MSG_MALFORMED = "Malformed API Key passed in. Ensure Key has `Bearer ` prefix."
MSG_BAD_KEY = "Authentication Error, Invalid proxy server token passed."
MSGS = [{"role": "user", "content": "hi"}]


def auth(t, env):
    calls = [
        ("chat", "POST", "/chat/completions", {"model": "fake-gpt", "messages": MSGS}),
        ("customer/new", "POST", "/customer/new", {"user_id": "auth-x"}),
        ("customer/info", "GET", "/customer/info?end_user_id=auth-x", None),
        ("budget/new", "POST", "/budget/new", {"budget_id": "auth-b"}),
    ]
    env.upstream.reset()
    for name, method, path, body in calls:
        r = env.request(method, path, body=body, key=None)
        env.check_error(r, 401, "auth_error", message=MSG_NO_KEY, what="%s: no key" % name)
        r = env.request(method, path, body=body, key=None,
                        headers={"Authorization": H.MASTER_KEY})
        env.check_error(r, 401, "auth_error", message=MSG_MALFORMED,
                        what="%s: key without Bearer" % name)
        r = env.request(method, path, body=body, key="sk-wrong")
        env.check_error(r, 401, "auth_error", message=MSG_BAD_KEY, what="%s: wrong key" % name)
        r = env.request(method, path, body=body, key=H.MASTER_KEY + "x")
        env.check_error(r, 401, "auth_error", message=MSG_BAD_KEY,
                        what="%s: key with a suffix" % name)
        r = env.request(method, path, body=body, key=None, headers={"Authorization": "Bearer "})
        t.is_eq(r.status, 401, "%s: empty Bearer value is 401" % name)
    t.is_eq(env.upstream.requests(), [], "unauthenticated chats never reach the upstream")
    t.ok(env.customer_row("auth-x") is None, "unauthenticated customer/new created nothing")

    for i, header in enumerate(("x-litellm-api-key", "api-key", "x-api-key")):
        uid = "alt-key-%d" % i
        r = env.request("POST", "/customer/new", body={"user_id": uid}, key=None,
                        headers={header: H.MASTER_KEY})
        t.is_eq(r.status, 200, "the master key in %s is accepted" % header)
        r = env.request("POST", "/customer/new", body={"user_id": uid + "w"}, key=None,
                        headers={header: "sk-wrong"})
        env.check_error(r, 401, "auth_error", message=MSG_BAD_KEY, what="wrong key in %s" % header)
    r = env.chat(user=None, key=None, headers={"x-api-key": H.MASTER_KEY})
    t.is_eq(r.status, 200, "chat with the key in x-api-key: 200")


def bodies(t, env):
    for name, path in (("customer/new", "/customer/new"), ("budget/new", "/budget/new"),
                       ("chat", "/chat/completions")):
        r = env.request("POST", path, body=b"{not json")
        env.check_error(r, 400, "invalid_request_error", what="%s: body not JSON" % name)
        t.ok(isinstance(r.error.get("message"), str) and len(r.error.get("message")) > 0,
             "%s: the parse error says something" % name)
        r = env.request("POST", path, body=b"[1, 2]")
        env.check_error(r, 400, "invalid_request_error", what="%s: JSON array body" % name)
        r = env.request("POST", path, body=b"\"a string\"")
        env.check_error(r, 400, "invalid_request_error", what="%s: JSON string body" % name)
        r = env.request("POST", path, body=b"")
        t.ok(r.status in (400, 422), "%s: empty body is 400/422" % name, "got %s" % r.status)
        r = env.request("POST", path, body=b'{"a": 1} trailing')
        env.check_error(r, 400, "invalid_request_error", what="%s: trailing garbage" % name)
    # Content-Type is not trusted: JSON sent as text/plain is parsed.
    r = env.request("POST", "/customer/new", body=b'{"user_id": "ctype-plain"}',
                    headers={"Content-Type": "text/plain"})
    t.is_eq(r.status, 200, "Content-Type is not trusted: text/plain JSON body accepted")


def types(t, env):
    cases = [
        ("user_id a list", {"user_id": ["a"]}, "user_id"),
        ("user_id an object", {"user_id": {"a": 1}}, "user_id"),
        ("blocked a string", {"user_id": "ty-1", "blocked": "maybe"}, "blocked"),
        ("blocked a number", {"user_id": "ty-2", "blocked": 2}, "blocked"),
        ("max_budget an object", {"user_id": "ty-3", "max_budget": {}}, "max_budget"),
        ("max_budget negative", {"user_id": "ty-4", "max_budget": -1}, "max_budget"),
        ("max_budget abc", {"user_id": "ty-5", "max_budget": "abc"}, "max_budget"),
        ("soft_budget negative", {"user_id": "ty-6", "soft_budget": -0.5}, "soft_budget"),
        ("tpm_limit negative", {"user_id": "ty-7", "tpm_limit": -1}, "tpm_limit"),
        ("rpm_limit fractional", {"user_id": "ty-8", "rpm_limit": 1.5}, "rpm_limit"),
        ("max_parallel_requests a list", {"user_id": "ty-9", "max_parallel_requests": [1]},
         "max_parallel_requests"),
        ("alias a number list", {"user_id": "ty-10", "alias": [1]}, "alias"),
        ("budget_duration 1y", {"user_id": "ty-11", "budget_duration": "1y"}, "budget_duration"),
        ("budget_duration 0d", {"user_id": "ty-12", "budget_duration": "0d"}, "budget_duration"),
        ("budget_duration abc", {"user_id": "ty-13", "budget_duration": "abc"}, "budget_duration"),
        ("budget_duration -1d", {"user_id": "ty-14", "budget_duration": "-1d"}, "budget_duration"),
        ("budget_duration 1.5d", {"user_id": "ty-15", "budget_duration": "1.5d"}, "budget_duration"),
        ("allowed_model_region asia", {"user_id": "ty-16", "allowed_model_region": "asia"},
         "allowed_model_region"),
        ("allowed_model_region EU", {"user_id": "ty-17", "allowed_model_region": "EU"},
         "allowed_model_region"),
        ("default_model not in config", {"user_id": "ty-18", "default_model": "gpt-99"},
         "default_model"),
        ("user_id missing", {"alias": "no id"}, "user_id"),
    ]
    for name, body, param in cases:
        r = env.customer_new(**body)
        env.check_error(r, 422, "invalid_request_error", param=param, what="customer/new: %s" % name)
    for name in ("ty-1", "ty-4", "ty-11", "ty-16", "ty-18"):
        t.ok(env.customer_row(name) is None, "rejected customer/new created nothing (%s)" % name)

    r = env.customer_new(user_id="both", max_budget=1, budget_id="whatever")
    env.check_error(r, 422, "invalid_request_error",
                    message="Set either 'max_budget' or 'budget_id', not both.",
                    what="customer/new with max_budget and budget_id")

    # budget/new: exact messages for money fields.
    for field in ("max_budget", "soft_budget"):
        for bad, shown in ((-1, "-1"), ("abc", "abc")):
            r = env.budget_new(budget_id="bad-%s-%s" % (field, shown), **{field: bad})
            env.check_error(r, 422, "invalid_request_error", param=field,
                            message="%s must be a non-negative finite number. Received: %s"
                            % (field, shown),
                            what="budget/new %s=%r" % (field, bad))
    for bad in ("1y", "0d", "abc", "7 days", ""):
        r = env.budget_new(budget_id="bad-dur-%s" % bad.replace(" ", "_"), budget_duration=bad)
        env.check_error(r, 422, "invalid_request_error", param="budget_duration",
                        what="budget/new budget_duration %r" % bad)
    for good in ("30s", "5m", "2h", "1d", "7d", "1w", "30d", "1mo"):
        r = env.budget_new(budget_id="dur-" + good, budget_duration=good, max_budget=1)
        t.is_eq(r.status, 200, "budget/new budget_duration %r accepted" % good)
    r = env.budget_new(budget_id="neg-tpm", tpm_limit=-5)
    env.check_error(r, 422, "invalid_request_error", param="tpm_limit",
                    what="budget/new tpm_limit negative")
    r = env.budget_new(budget_id=["x"])
    env.check_error(r, 422, "invalid_request_error", param="budget_id",
                    what="budget/new budget_id a list")


def numeric_strings(t, env):
    r = env.customer_new(user_id="numstr", max_budget="12.5", tpm_limit="100", rpm_limit=7,
                         max_parallel_requests="3", soft_budget="10")
    t.is_eq(r.status, 200, "customer/new: numeric strings accepted")
    bt = ((r.json or {}).get("litellm_budget_table") or {})
    t.is_eq(dec(bt.get("max_budget")), Decimal("12.5"), "numeric string max_budget stored exactly")
    t.is_eq(dec(bt.get("soft_budget")), Decimal("10"), "numeric string soft_budget stored")
    t.is_eq((bt.get("tpm_limit"), bt.get("rpm_limit"), bt.get("max_parallel_requests")),
            (100, 7, 3), "numeric string limits stored as numbers")
    r = env.customer_new(user_id="numstr-2", max_budget=0.1)
    bt = ((r.json or {}).get("litellm_budget_table") or {})
    t.is_eq(dec(bt.get("max_budget")), Decimal("0.1"), "max_budget 0.1 stays 0.1 (no binary float)")
    r = env.budget_new(budget_id="numstr-b", max_budget="4")
    t.is_eq((r.status, dec((r.json or {}).get("max_budget"))), (200, Decimal(4)),
            "budget/new: max_budget \"4\" accepted")
    r = env.customer_new(user_id="null-fields", alias=None, max_budget=None, budget_id=None)
    t.is_eq(r.status, 200, "customer/new: null means not given")
    info = r.json if isinstance(r.json, dict) else {}
    t.ok(info.get("alias") is None and info.get("budget_id") is None,
         "customer/new: null fields stay null")
    r = env.customer_new(user_id="unknown-fields", no_such_field=[1, 2], another={"x": 1})
    t.is_eq(r.status, 200, "customer/new: unknown fields ignored")


def ids(t, env):
    r = env.customer_new(user_id="x" * 256)
    env.check_error(r, 422, "invalid_request_error", param="user_id", what="user_id of 256 bytes")
    r = env.customer_new(user_id="x" * 255)
    t.is_eq(r.status, 200, "user_id of 255 bytes accepted")
    r = env.customer_info("x" * 255)
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, "x" * 255), "255-byte id round-trips")
    # 128 two-byte characters = 256 bytes: too long, although 128 characters.
    r = env.customer_new(user_id="é" * 128)
    env.check_error(r, 422, "invalid_request_error", param="user_id",
                    what="user_id of 256 UTF-8 bytes (128 characters)")
    r = env.customer_new(user_id="é" * 127)
    t.is_eq(r.status, 200, "user_id of 254 UTF-8 bytes accepted")
    r = env.customer_new(user_id="")
    env.check_error(r, 422, "invalid_request_error", param="user_id", what="empty user_id")
    # Invalid UTF-8 anywhere in a body is refused before parsing (issue 6),
    # with the byte offset; it never reaches a field validator.
    r = env.request("POST", "/customer/new", body=b'{"user_id": "bad-\xff\xfe-utf8"}')
    env.check_error(r, 400, "invalid_request_error", param=None,
                    message="Invalid UTF-8 in the request body at byte 17",
                    what="user_id not UTF-8")
    r = env.request("POST", "/customer/new", body=b'{"user_id": "bad-\xc3"}')
    env.check_error(r, 400, "invalid_request_error", param=None,
                    message="Invalid UTF-8 in the request body at byte 17",
                    what="user_id with a truncated UTF-8 sequence")
    r = env.budget_new(budget_id="b" * 256)
    env.check_error(r, 422, "invalid_request_error", param="budget_id", what="budget_id of 256 bytes")

    evil = ["x'); DROP TABLE customers; --", "a\\'b", "100%_", "quote\"d", "semi;colon",
            "tab\tand\nnewline", "null\\0byte-ish", "😀 emoji", "Robert'); DELETE FROM spend_logs;--"]
    for uid in evil:
        r = env.customer_new(user_id=uid, alias=uid)
        ok = t.is_eq(r.status, 200, "SQL metacharacters are data: create %r" % uid)
        t.is_eq(((r.json or {}).get("user_id"), (r.json or {}).get("alias")), (uid, uid),
                "SQL metacharacters: customer/new echoes %r" % uid)
        if ok and not any(ord(c) < 32 for c in uid):
            # (lighttpd itself rejects control characters in URLs, so ids
            # holding them are checked in the database instead.)
            r = env.customer_info(uid)
            t.is_eq(((r.json or {}).get("user_id"), (r.json or {}).get("alias")), (uid, uid),
                    "SQL metacharacters round-trip: %r" % uid)
        elif ok:
            t.ok(env.customer_row(uid) is not None, "stored byte-exactly: %r" % uid)
    t.ok(env.sql("SELECT COUNT(*) FROM customers")[0][0] != "0", "customers table intact")
    r = env.customer_info("100%")
    t.is_eq(r.status, 404, "LIKE wildcards are not wildcards (100% does not find 100%_)")

    # Case-sensitive and byte-exact.
    r = env.customer_new(user_id="CaseId")
    t.is_eq(r.status, 200, "create CaseId")
    r = env.customer_new(user_id="caseid")
    t.is_eq(r.status, 200, "caseid is another customer than CaseId")
    r = env.customer_info("CASEID")
    t.is_eq(r.status, 404, "CASEID is unknown (ids are case-sensitive)")
    r = env.customer_new(user_id="CaseId ")
    t.is_eq(r.status, 200, "'CaseId ' (trailing space) is another customer")
    r = env.customer_new(user_id="e\u0301")  # e + combining accent, not NFC-folded
    r2 = env.customer_new(user_id="\u00e9")
    t.ok(r.status == 200 and r2.status == 200, "ids compared byte-exactly (no Unicode folding)",
         "got %s / %s" % (r.status, r2.status))
    r = env.budget_new(budget_id="Tier-A", max_budget=1)
    r2 = env.budget_new(budget_id="tier-a", max_budget=2)
    t.ok(r.status == 200 and r2.status == 200, "budget ids are case-sensitive",
         "got %s / %s" % (r.status, r2.status))
    r = env.customer_info("a b&c=d/é?")
    t.is_eq(r.status, 404, "percent-encoded query value looked up as is (unknown)")
    r = env.customer_new(user_id="a b&c=d/é?")
    r = env.customer_info("a b&c=d/é?")
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, "a b&c=d/é?"),
            "customer/info decodes the query string (%XX, +, UTF-8)")
    r = env.request("GET", "/customer/info?end_user_id=plus+sign")
    env.customer_new(user_id="plus sign")
    r = env.request("GET", "/customer/info?end_user_id=plus+sign")
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, "plus sign"), "'+' in a query is a space")
    # A parameter's name is matched byte for byte: end_user_id%00zz is not
    # end_user_id (it was read as its prefix, and answered the customer).
    env.customer_new(user_id="smoke1")
    for q in ("end_user_id%00zz=smoke1", "end_user_id%00=smoke1", "end_user_id%20=smoke1",
              "end_user_idx=smoke1", "End_user_id=smoke1"):
        r = env.request("GET", "/customer/info?" + q)
        env.check_error(r, 422, "invalid_request_error", param="end_user_id",
                        what="customer/info?%s: no end_user_id" % q)
    r = env.request("GET", "/customer/info?end_user_id=smoke1%00")
    env.check_error(r, 422, "invalid_request_error", param="end_user_id",
                    what="customer/info with a NUL in the value")
    r = env.request("GET", "/customer/info?end_user_id%00zz=x&end_user_id=smoke1")
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, "smoke1"),
            "the real name beside one with a NUL is read")


def size_caps(t, env):
    big = {"user_id": "big-body", "alias": "x" * (64 * 1024 + 10)}
    r = env.customer_new(**big)
    env.check_error(r, 413, "invalid_request_error", what="customer/new body over 64 KiB")
    t.ok(env.customer_row("big-body") is None, "oversized body created nothing")
    r = env.budget_new(budget_id="big-b", padding="y" * (65 * 1024))
    env.check_error(r, 413, "invalid_request_error", what="budget/new body over 64 KiB")
    # Just under the cap is fine (unknown fields are ignored).
    pad = 64 * 1024 - 200
    r = env.customer_new(user_id="under-cap", padding="z" * pad)
    t.is_eq(r.status, 200, "customer/new body just under 64 KiB accepted")
    # LLM bodies may be larger than management ones (cap 10 MiB).
    r = env.chat(user=None, content="w" * (200 * 1024))
    t.is_eq(r.status, 200, "a 200 KiB chat body is accepted (LLM cap is 10 MiB)")
    r = env.chat(user=None, content="w" * (10 * 1024 * 1024 + 100))
    env.check_error(r, 413, "invalid_request_error", what="chat body over 10 MiB")


def methods_and_paths(t, env):
    cases = [("GET", "/customer/new", "POST"), ("PUT", "/customer/new", "POST"),
             ("POST", "/customer/info", "GET"), ("DELETE", "/customer/info", "GET"),
             ("GET", "/budget/new", "POST"), ("GET", "/chat/completions", "POST"),
             ("GET", "/v1/chat/completions", "POST"), ("GET", "/end_user/new", "POST")]
    for method, path, allow in cases:
        body = {"user_id": "m"} if method in ("POST", "PUT") else None
        r = env.request(method, path, body=body)
        env.check_error(r, 405, "invalid_request_error", what="%s %s" % (method, path))
        t.like(r.header("allow", ""), r"\b%s\b" % allow, "%s %s: Allow names %s" % (method, path, allow))
    for path in ("/nope", "/customer/newx", "/v2/chat/completions", "/", "/customer",
                 "/health/nope", "/chat/completions/extra"):
        for method in ("GET", "POST"):
            r = env.request(method, path, body={} if method == "POST" else None)
            env.check_error(r, 404, "not_found", what="%s %s (unknown path)" % (method, path))
    r = env.request("GET", "/nope?x=1", key=None)
    t.is_eq(r.status, 404, "unknown path without a key: 404 (not 401)")


def chat_validation(t, env):
    r = env.chat(model=None)
    env.check_error(r, 400, "invalid_request_error", what="chat without model")
    r = env.chat(model="nope")
    env.check_error(r, 400, "invalid_request_error", param="model",
                    message="Invalid model name passed in model=nope. Call `/v1/models` to view "
                            "available models for your key.",
                    what="chat with an unknown model")
    r = env.chat(model="FAKE-GPT")
    t.is_eq(r.status, 400, "model names are case-sensitive")
    r = env.chat(body={"model": "fake-gpt", "messages": []})
    t.ok(r.status in (400, 422) and r.error.get("type") == "invalid_request_error",
         "chat with empty messages: 400/422 invalid_request_error", "got %s %s" % (r.status, r.text[:300]))
    t.is_eq(r.error.get("code"), str(r.status), "empty messages: code matches status")
    r = env.chat(body={"model": "fake-gpt"})
    t.ok(r.status in (400, 422) and r.error.get("type") == "invalid_request_error",
         "chat without messages: 400/422", "got %s %s" % (r.status, r.text[:300]))
    r = env.chat(body={"model": "fake-gpt", "messages": "hi"})
    t.ok(r.status in (400, 422), "chat with messages a string: 400/422", "got %s" % r.status)
    r = env.chat(body={"model": 5, "messages": MSGS})
    t.ok(r.status in (400, 422) and r.error.get("param") == "model",
         "chat with model a number: 400/422 param model", "got %s %s" % (r.status, r.text[:300]))
    r = env.chat(user="x" * 256)
    t.ok(r.status == 422 or r.status == 400, "chat with a 256-byte user: 4xx", "got %s" % r.status)


def management(t, env):
    r = env.customer_new(user_id="dup-1")
    t.is_eq(r.status, 200, "create dup-1")
    r = env.customer_new(user_id="dup-1")
    env.check_error(r, 400, "invalid_request_error",
                    message="Customer already exists, passed user_id=dup-1. Please pass a new user_id.",
                    what="duplicate customer")
    r = env.request("POST", "/end_user/new", body={"user_id": "dup-1"})
    t.is_eq(r.status, 400, "duplicate through /end_user/new: 400")
    r = env.budget_new(budget_id="dup-b", max_budget=1)
    t.is_eq(r.status, 200, "create budget dup-b")
    r = env.budget_new(budget_id="dup-b", max_budget=2)
    env.check_error(r, 400, "invalid_request_error", message="Budget with id 'dup-b' already exists.",
                    what="duplicate budget")
    r = env.budget_new(max_budget=3)
    t.is_eq(r.status, 200, "budget/new without budget_id: 200")
    t.like((r.json or {}).get("budget_id") or "",
           r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
           "budget/new without budget_id makes a UUID")
    r = env.customer_new(user_id="no-such-budget", budget_id="no-such-budget-id")
    env.check_error(r, 400, "invalid_request_error", what="customer/new with an unknown budget_id")
    t.ok(env.customer_row("no-such-budget") is None, "unknown budget_id: nothing created")
    r = env.customer_new(user_id="region-ok", allowed_model_region="eu", default_model="fake-gpt",
                         alias="Region OK")
    t.is_eq(r.status, 200, "customer/new with region eu and a configured default_model: 200")
    info = r.json if isinstance(r.json, dict) else {}
    t.is_eq((info.get("allowed_model_region"), info.get("default_model"), info.get("alias")),
            ("eu", "fake-gpt", "Region OK"), "customer/new stores region, default_model, alias")

    r = env.request("GET", "/customer/info")
    env.check_error(r, 422, "invalid_request_error", what="customer/info without end_user_id")
    r = env.request("GET", "/customer/info?end_user_id=")
    t.ok(r.status in (404, 422), "customer/info with an empty end_user_id: 404/422",
         "got %s" % r.status)
    r = env.customer_info("ghost-42")
    env.check_error(r, 404, "not_found", param="end_user_id",
                    message="End User Id=ghost-42 does not exist in db",
                    what="customer/info for an unknown id")
    r = env.customer_info("ghost-42", path="/end_user/info")
    t.is_eq(r.status, 404, "/end_user/info for an unknown id: 404")


def no_master_key(t, env):
    cfg = env.write_config("no-master-key", env.config(master_key=None))
    srv = env.start_lighttpd(cfg, name="no-master-key", max_procs=1)
    for name, method, path, body in (
            ("chat", "POST", "/chat/completions", {"model": "fake-gpt", "messages": MSGS}),
            ("customer/new", "POST", "/customer/new", {"user_id": "nmk"}),
            ("customer/info", "GET", "/customer/info?end_user_id=nmk", None),
            ("budget/new", "POST", "/budget/new", {"budget_id": "nmk"})):
        for key in (H.MASTER_KEY, None, "anything"):
            r = env.request(method, path, body=body, key=key, server=srv)
            env.check_error(r, 500, "internal_server_error", message="No master key configured",
                            what="no master key, %s, key %r" % (name, key))
    t.ok(env.customer_row("nmk") is None, "no master key: nothing created")
    r = env.request("GET", "/health/liveliness", key=None, server=srv)
    t.is_eq(r.status, 200, "no master key: health still answers")


def broken_config(t, env):
    cfg = env.write_config("broken", "model_list:\n  - model_name: [unclosed\n    litellm_params: {\n")
    srv = env.start_lighttpd(cfg, name="broken", max_procs=1)
    # lighttpd spawns its programs one after another: take the list once
    # it has stopped growing, or a late spawn looks like a restart.
    before, deadline = None, time.monotonic() + 10
    while time.monotonic() < deadline:
        now = sorted(srv.children())
        if now == before:
            break
        before = now
        time.sleep(0.5)
    for i in range(6):
        r = env.chat(user="bc", server=srv)
        env.check_error(r, 500, "internal_server_error", message=re.compile(r"^Configuration error: \S"),
                        what="broken config, chat #%d" % (i + 1))
        r = env.customer_info("bc", server=srv)
        t.is_eq(r.status, 500, "broken config, customer/info #%d: 500" % (i + 1))
    time.sleep(0.3)
    t.ok(srv.alive(), "broken config: lighttpd still running")
    t.is_eq(sorted(srv.children()), before, "broken config: no program restarted (no crash loop)")
    logs = srv.logs()
    t.ok(os.path.basename(cfg) in logs, "broken config: the error log names the config file",
         "log tail: %s" % logs[-800:])
    t.ok(H.MASTER_KEY not in logs and H.UPSTREAM_KEY not in logs, "no key in the error log")

    # Other unusable configs, each as plain CGI (a fresh load per request).
    variants = {
        "model without a price": env.config(models=[{
            "model_name": "unpriced", "litellm_params": {
                "model": "openai/no-such-model-anywhere-xyz",
                "api_base": env.upstream.base + "/v1", "api_key": "k"}}]),
        "bad database url": env.config(general_settings={"database_url": "not-a-url"}),
        "unset os.environ": env.config(models=[env.model(
            "envy", api_key="os.environ/TG_E2E_SURELY_UNSET_VAR")]),
        "not a mapping": "- just\n- a list\n",
        "missing file": None,
    }
    for name, c in variants.items():
        path = env.write_config("bad-" + name.replace(" ", "-"), c) if c is not None \
            else os.path.join(env.tmp, "does-not-exist.yaml")
        r = env.cgi("chat_completions", "POST", "/chat/completions",
                    body={"model": "fake-gpt", "messages": MSGS}, config=path)
        env.check_error(r, 500, "internal_server_error", message=re.compile(r"^Configuration error: "),
                        what="config %s (plain CGI)" % name)
        if name == "unset os.environ":
            t.ok("TG_E2E_SURELY_UNSET_VAR" in (r.error.get("message") or "") + r.stderr,
                 "unset os.environ/NAME: the error names the variable")


def main(t, env):
    srv = env.start_lighttpd(env.write_config("main", env.config()))
    H.keepalive_checks(t, env, srv, "lighttpd")
    auth(t, env)
    bodies(t, env)
    types(t, env)
    numeric_strings(t, env)
    ids(t, env)
    size_caps(t, env)
    methods_and_paths(t, env)
    chat_validation(t, env)
    management(t, env)
    no_master_key(t, env)
    broken_config(t, env)


if __name__ == "__main__":
    H.run(main)
