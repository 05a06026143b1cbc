#!/usr/bin/env python3
"""keys: virtual keys (SPEC 13), end to end.

1. /key/generate: the key is shown once (sk- + 22 URL-safe characters,
   128 bits), only its SHA-256 is stored (every cell of api_keys, budgets
   and spend_logs is searched for it), key_name is sk-...<last 4>; a
   chosen key, a duplicate, an alias taken, a malformed or master key.
2. A call with the key by curl: the ledger row's api_key is the token, the
   key's and the customer's spend both grow by the cost; /spend/logs
   filters by api_key (the key or its token).
3. /key/info (by key or token; a virtual key about itself only),
   /key/update (null clears), /key/list (paging, full objects),
   /key/block and /key/unblock, /key/delete (all or nothing).
4. Expiry: a key generated with duration 2s stops working (401).
5. Model restriction: 401 auth_error "key not allowed to access model=";
   /models and /v1/models list only the key's models.  Aliases: a call
   naming one is a call of the model it stands for (its models list, price,
   row); /key/update replaces them, null clears; malformed ones are 422.
6. Management routes refuse a virtual key (403 permission_error); an
   unknown key is 401.
7. A key's max_budget holds across customers, a customer's across keys
   (LiteLLM's key message, 429 budget_exceeded, x-should-retry: false);
   the over-hold cap takes the smaller room of the two.
8. 50 concurrent calls on one key across two customers near both limits:
   neither budget exceeded, both spends equal their ledger sums, nothing
   reserved.
9. budget_duration on a key resets its spend.
10. A key's rpm and tpm limits (Limit for api_key: <token>); both the
    key's and the customer's must admit, and a refusal records nothing
    for either.
11. The OpenAI Node SDK with a key (non-streamed, streamed, models, a
    model outside the key); LiteLLM's end-user test: a budget with
    tpm_limit 2, a customer on it, a key with models [], 10 calls with
    default retries: fewer than 5 pass.
12. Webhooks: spend_tracked carries the key's token and alias; the key's
    budget alerts (event_group "key", customer_id null), once per period.
13. A chat worker killed (SIGKILL) mid-call: the expired hold is charged
    to both the key and the customer; a settlement spooled while MariaDB
    was down and replayed after the reclaim replaces both charges.
"""

import collections
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec, parallel  # noqa: E402

HOLD_TIMEOUT = 3  # the deployment's timeout in the kill/spool part: holds last 3 + 1 s
KEY_RE = re.compile(r"^sk-[A-Za-z0-9_-]{22}$")


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def money_text(d):
    """Money as tollgate prints it: the shortest exact decimal."""
    return format(Decimal(d).quantize(Decimal("1e-10")).normalize(), "f")


def generate(env, srv=None, **fields):
    return env.request("POST", "/key/generate", body=fields, server=srv)


def new_key(t, env, srv=None, **fields):
    r = generate(env, srv, **fields)
    t.is_eq(r.status, 200, "key/generate %s" % json.dumps(fields, default=str)[:120], r.text[:300])
    return (r.json or {}).get("key"), (r.json or {}).get("token")


def key_info(env, value, key=H.MASTER_KEY, srv=None):
    q = "?" + urllib.parse.urlencode({"key": value}) if value is not None else ""
    return env.request("GET", "/key/info" + q, key=key, server=srv)


def key_row(env, token):
    rows = env.sql("SELECT spend, reserved, blocked FROM api_keys WHERE token = %s"
                   % H.sql_quote(token))
    if not rows:
        return None
    return {"spend": dec(rows[0][0]), "reserved": dec(rows[0][1]), "blocked": rows[0][2]}


def key_ledger_sum(env, token):
    return dec(env.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE api_key = %s"
                       % H.sql_quote(token))[0][0])


def check_key_books(t, env, token, label, max_budget=None):
    row = key_row(env, token)
    if not t.ok(row is not None, "%s: key row exists" % label):
        return
    t.is_eq(row["spend"], key_ledger_sum(env, token),
            "%s: key spend == the sum of its ledger rows" % label)
    t.is_eq(row["reserved"], Decimal(0), "%s: nothing reserved on the key" % label)
    if max_budget is not None:
        t.ok(row["spend"] <= max_budget, "%s: key spend %s <= max_budget %s"
             % (label, row["spend"], max_budget))


def check_customer_books(t, env, user, label, max_budget=None):
    row = env.customer_row(user)
    if not t.ok(row is not None, "%s: customer %s exists" % (label, user)):
        return
    t.is_eq(row["spend"], env.ledger_sum(user),
            "%s: %s spend == the sum of its ledger rows" % (label, user))
    t.is_eq(row["reserved"], Decimal(0), "%s: nothing reserved on %s" % (label, user))
    if max_budget is not None:
        t.ok(row["spend"] <= max_budget, "%s: %s spend %s <= max_budget %s"
             % (label, user, row["spend"], max_budget))


def away_from_minute_edge(t):
    """rpm/tpm windows are UTC minutes: start a per-minute check early in one."""
    s = time.gmtime().tm_sec
    if s >= 48:
        t.diag("waiting %ds for the next minute" % (61 - s))
        time.sleep(61 - s)


def curl_chat(env, srv, key, body):
    """One chat by curl (status, headers, body)."""
    out = subprocess.run(
        ["curl", "-sS", "-D", "-", "http://127.0.0.1:%d/chat/completions" % srv.port,
         "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/json",
         "-d", json.dumps(body)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return H.parse_cgi_output(out.stdout.replace(b"HTTP/1.1 ", b"Status: ", 1))


# ---------------------------------------------------------------------------

def generate_and_use(t, env, srv):
    """Parts 1 and 2."""
    r = generate(env, srv, key_alias="app-one", max_budget="1", metadata={"team": "blue"})
    t.is_eq(r.status, 200, "key/generate")
    g = r.json or {}
    key, token = g.get("key"), g.get("token")
    t.like(key or "", KEY_RE.pattern, "the key is sk- + 22 URL-safe characters (128 bits)")
    t.is_eq(token, sha(key or ""), "token is the SHA-256 of the key")
    t.is_eq(g.get("key_name"), "sk-..." + (key or "")[-4:], "key_name is sk-...<last 4>")
    t.is_eq((g.get("key_alias"), dec(g.get("max_budget")), g.get("expires"), g.get("models"),
             g.get("metadata"), g.get("blocked"), dec(g.get("spend"))),
            ("app-one", Decimal(1), None, [], {"team": "blue"}, False, Decimal(0)),
            "the answer has the key's fields")
    other = generate(env, srv).json or {}
    t.ok(other.get("key") and other.get("key") != key, "a second key is another one")

    # Only the hash is stored: no cell of any table holds the key.
    for table in ("api_keys", "budgets", "spend_logs", "reservations"):
        rows = env.sql("SELECT * FROM %s" % table)
        t.ok(not any(key in (c or "") for row in rows for c in row),
             "the key itself is in no cell of %s" % table)
    t.is_eq(env.sql("SELECT token, key_name FROM api_keys WHERE key_alias = 'app-one'"),
            [[token, "sk-..." + key[-4:]]], "api_keys holds the token and the key's name")
    info = key_info(env, key, srv=srv)
    t.is_eq(info.status, 200, "key/info by the key")
    t.ok(key not in info.text, "key/info never shows the key")
    t.is_eq((info.json or {}).get("key"), token, "key/info: key is the token")
    t.is_eq(((info.json or {}).get("info") or {}).get("key_alias"), "app-one", "key/info: info")
    t.is_eq(key_info(env, token, srv=srv).json, info.json, "key/info by the token: the same")
    t.ok(key not in env.request("GET", "/key/list", server=srv).text,
         "key/list never shows the key")

    # Chosen keys.
    r = generate(env, srv, key="sk-my-chosen-key-0001")
    t.is_eq((r.status, (r.json or {}).get("key"), (r.json or {}).get("token")),
            (200, "sk-my-chosen-key-0001", sha("sk-my-chosen-key-0001")), "a chosen key")
    r = generate(env, srv, key="sk-my-chosen-key-0001")
    env.check_error(r, 400, "invalid_request_error", param="key", what="the same key again")
    r = generate(env, srv, key_alias="app-one")
    env.check_error(r, 400, "invalid_request_error", param="key_alias",
                    message="Unique key aliases across all keys are required. Key alias "
                            "'app-one' already exists.", what="an alias taken")
    for bad in ("my-key", "sk-", "sk-with space", H.MASTER_KEY):
        r = generate(env, srv, key=bad)
        env.check_error(r, 422, "invalid_request_error", param="key", what="key=%r" % bad)
    r = generate(env, srv, duration="3 days")
    env.check_error(r, 422, "invalid_request_error", param="duration", what="duration 3 days")
    r = generate(env, srv, duration="1000000000w")
    env.check_error(r, 422, "invalid_request_error", param="duration",
                    what="a duration past the year 9999")
    r = generate(env, srv, models=["fake-gpt", 5])
    env.check_error(r, 422, "invalid_request_error", param="models", what="models [.., 5]")

    # A call with the key, by curl.
    user = "keys-curl-user"
    body = env.chat_body(user=user, fake={"usage": {"prompt_tokens": 10, "completion_tokens": 20}})
    r = curl_chat(env, srv, key, body)
    t.is_eq(r.status, 200, "curl with the key: 200", r.text[:300])
    want = cost(10, 20)
    t.is_eq(dec(r.header("x-litellm-response-cost")), want, "curl: the cost header")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and (row["end_user"], row["api_key"], row["spend"]), (user, token, want),
            "the ledger row's api_key is the key's token")
    t.is_eq((key_row(env, token) or {}).get("spend"), want, "the key's spend grew by the cost")
    t.is_eq((env.customer_row(user) or {}).get("spend"), want,
            "the customer's spend grew by the cost")
    t.is_eq(dec(((key_info(env, token, srv=srv).json or {}).get("info") or {}).get("spend")),
            want, "key/info: spend")
    # Streamed, with the key: charged to both too.
    s = env.stream_chat(user=user, key=key, server=srv,
                        fake={"usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    t.ok(s.status == 200 and s.events and s.events[-1]["done"], "streamed with the key")
    want += cost(3, 4)
    t.is_eq((key_row(env, token) or {}).get("spend"), want, "streamed: the key is charged")
    t.is_eq((env.customer_row(user) or {}).get("spend"), want, "streamed: the customer too")
    # An upstream failure: nothing charged, the hold released from both.
    r = env.chat(user=user, key=key, server=srv, fake={"status": 500})
    t.is_eq(r.status, 500, "an upstream failure with the key is relayed")
    t.is_eq(((key_row(env, token) or {}).get("spend"), (key_row(env, token) or {}).get("reserved"),
             (env.customer_row(user) or {}).get("spend"),
             (env.customer_row(user) or {}).get("reserved")),
            (want, Decimal(0), want, Decimal(0)),
            "failure: neither account charged, both holds released")
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and (row["status"], row["spend"], row["api_key"]), ("failure", Decimal(0), token),
            "failure: a failure row of 0 naming the key")
    # Without a customer: the key alone.
    r = env.chat(key=key, server=srv, fake={"usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    t.is_eq(r.status, 200, "a call with the key and no customer")
    want_key = want + cost(1, 1)
    t.is_eq((key_row(env, token) or {}).get("spend"), want_key, "no customer: the key is charged")
    check_key_books(t, env, token, "curl")
    check_customer_books(t, env, user, "curl")

    logs = env.request("GET", "/spend/logs?api_key=" + token, server=srv)
    t.is_eq(sorted(x["request_id"] for x in logs.json or []),
            sorted(x[0] for x in env.sql("SELECT request_id FROM spend_logs WHERE api_key = %s"
                                         % H.sql_quote(token))),
            "spend/logs?api_key=<token>: the key's rows")
    t.is_eq(len(logs.json or []), 4, "spend/logs?api_key: four rows")
    t.is_eq(env.request("GET", "/spend/logs?api_key=" + key, server=srv).json, logs.json,
            "spend/logs?api_key=<key>: the same rows")
    both = env.request("GET", "/spend/logs?" + urllib.parse.urlencode(
        {"api_key": token, "end_user": user}), server=srv)
    t.is_eq(len(both.json or []), 3, "spend/logs?api_key&end_user: both filters")
    none = env.request("GET", "/spend/logs?api_key=" + sha("other"), server=srv)
    t.is_eq(none.json, [], "spend/logs?api_key of another key: nothing")
    return key, token


def management(t, env, srv, key, token):
    """Part 3 (and 6)."""
    # info about itself, with the key.
    r = key_info(env, None, key=key, srv=srv)
    t.is_eq((r.status, (r.json or {}).get("key")), (200, token),
            "key/info without ?key= with a virtual key: that key")
    r = key_info(env, key, key=key, srv=srv)
    t.is_eq(r.status, 200, "key/info?key=<itself> with the key")
    other_key, other_token = new_key(t, env, srv, key_alias="app-other")
    r = key_info(env, other_token, key=key, srv=srv)
    env.check_error(r, 403, "permission_error", what="key/info about another key")
    r = key_info(env, None, srv=srv)
    env.check_error(r, 422, "invalid_request_error", param="key",
                    what="key/info without ?key= with the master key")
    r = key_info(env, sha("nobody"), srv=srv)
    env.check_error(r, 404, "not_found", param="key", what="key/info of an unknown token")

    # update
    r = env.request("POST", "/key/update", server=srv, body={
        "key": token, "key_alias": "app-one-renamed", "max_budget": 2, "tpm_limit": 1000,
        "models": ["fake-gpt"], "metadata": {"team": "red"}})
    u = r.json or {}
    t.is_eq((r.status, u.get("key_alias"), dec(u.get("max_budget")), u.get("tpm_limit"),
             u.get("models"), u.get("metadata")),
            (200, "app-one-renamed", Decimal(2), 1000, ["fake-gpt"], {"team": "red"}),
            "key/update changes the fields given", r.text[:300])
    t.ok(key not in r.text, "key/update never shows the key")
    r = env.request("POST", "/key/update", server=srv, body={
        "key": key, "key_alias": None, "tpm_limit": None, "models": []})
    u = r.json or {}
    t.is_eq((r.status, u.get("key_alias"), dec(u.get("max_budget")), u.get("tpm_limit"),
             u.get("models")), (200, None, Decimal(2), None, []),
            "key/update: null clears, others stay")
    r = env.request("POST", "/key/update", server=srv, body={"key": token, "models": ["x"]})
    r = env.request("POST", "/key/update", server=srv, body={"key": token, "models": None})
    t.is_eq((r.status, (r.json or {}).get("models")), (200, []), "key/update models null: all")
    r = env.request("POST", "/key/update", server=srv, body={"key": sha("nobody"), "rpm_limit": 1})
    env.check_error(r, 404, "not_found", what="key/update of an unknown key")
    r = env.request("POST", "/key/update", server=srv, body={"key": other_token,
                                                            "key_alias": "app-other"})
    t.is_eq(r.status, 200, "key/update to its own alias")
    r = env.request("POST", "/key/update", server=srv, body={"key": token,
                                                            "key_alias": "app-other"})
    env.check_error(r, 400, "invalid_request_error", param="key_alias",
                    what="key/update to an alias taken")
    budgets = [b["budget_id"] for b in env.request("GET", "/budget/list", server=srv).json or []]
    kb = env.sql("SELECT budget_id FROM api_keys WHERE token = %s" % H.sql_quote(token))[0][0]
    t.ok(kb not in budgets, "the key's private budget is not in /budget/list")
    r = env.request("POST", "/budget/info", body={"budgets": [kb]}, server=srv)
    t.is_eq((r.status, r.json), (200, []), "nor in /budget/info")
    r = env.request("POST", "/budget/update", body={"budget_id": kb, "max_budget": 100},
                    server=srv)
    env.check_error(r, 404, "not_found", what="/budget/update of a key's budget")
    r = env.request("POST", "/budget/delete", body={"id": kb}, server=srv)
    env.check_error(r, 404, "not_found", what="/budget/delete of a key's budget")

    # list
    total = int(env.sql("SELECT COUNT(*) FROM api_keys")[0][0])
    r = env.request("GET", "/key/list?page=1&page_size=2", server=srv)
    lst = r.json or {}
    t.is_eq((r.status, len(lst.get("keys") or []), lst.get("total_count"),
             lst.get("current_page"), lst.get("total_pages")),
            (200, 2, total, 1, (total + 1) // 2), "key/list paging: page 1 of size 2")
    t.ok(all(re.match(r"^[0-9a-f]{64}$", k) for k in lst.get("keys") or []),
         "key/list lists tokens")
    seen = []
    for p in range(1, (total + 1) // 2 + 1):
        seen += (env.request("GET", "/key/list?page=%d&page_size=2" % p,
                             server=srv).json or {}).get("keys") or []
    t.is_eq(sorted(seen), sorted(x[0] for x in env.sql("SELECT token FROM api_keys")),
            "key/list: the pages cover every key once")
    r = env.request("GET", "/key/list?return_full_object=true&key_alias=app-other", server=srv)
    t.is_eq([k.get("token") for k in (r.json or {}).get("keys") or []], [other_token],
            "key/list?key_alias=&return_full_object=true: the key object")
    r = env.request("GET", "/key/list?page_size=101", server=srv)
    env.check_error(r, 422, "invalid_request_error", param="page_size", what="page_size 101")

    # block / unblock
    r = env.request("POST", "/key/block", server=srv, body={"key": key})
    t.is_eq((r.status, (r.json or {}).get("blocked")), (200, True), "key/block")
    r = env.chat(user="keys-blocked", key=key, server=srv)
    env.check_error(r, 401, "auth_error",
                    message="Authentication Error, Key is blocked. Update via `/key/unblock` "
                            "if you're admin.", what="a blocked key")
    t.is_eq(env.customer_row("keys-blocked"), None, "a blocked key's call stores nothing")
    r = env.request("POST", "/key/unblock", server=srv, body={"key": token})
    t.is_eq((r.status, (r.json or {}).get("blocked")), (200, False), "key/unblock")
    t.is_eq(env.chat(user="keys-blocked", key=key, server=srv).status, 200,
            "an unblocked key works again")
    r = env.request("POST", "/key/block", server=srv, body={"key": sha("nobody")})
    env.check_error(r, 404, "not_found", what="key/block of an unknown key")

    # Management routes refuse a virtual key; an unknown key is 401.
    for method, path, body in (("POST", "/customer/new", {"user_id": "x"}),
                               ("GET", "/customer/info?end_user_id=keys-curl-user", None),
                               ("GET", "/customer/list", None),
                               ("GET", "/end_user/list", None),
                               ("GET", "/spend/logs", None),
                               ("GET", "/budget/list", None),
                               ("POST", "/budget/new", {"budget_id": "x"}),
                               ("POST", "/key/generate", {}),
                               ("GET", "/key/list", None),
                               ("POST", "/key/update", {"key": token, "max_budget": 100}),
                               ("POST", "/key/delete", {"keys": [other_token]}),
                               ("POST", "/key/unblock", {"key": token})):
        r = env.request(method, path, body=body, key=key, server=srv)
        env.check_error(r, 403, "permission_error", what="%s %s with a virtual key" % (method, path))
    t.is_eq(key_info(env, other_token, srv=srv).status, 200, "nothing was changed by them")
    t.is_eq(dec(((key_info(env, token, srv=srv).json or {}).get("info") or {})
                .get("max_budget")), Decimal(2), "the key's budget is as it was")
    r = env.request("GET", "/customer/list", key="sk-unknown-key", server=srv)
    env.check_error(r, 401, "auth_error",
                    message="Authentication Error, Invalid proxy server token passed.",
                    what="an unknown key on a management route")
    r = env.chat(key="sk-unknown-key", server=srv)
    env.check_error(r, 401, "auth_error", what="an unknown key on the chat route")
    r = env.chat(key=token, server=srv)
    env.check_error(r, 401, "auth_error", what="the token is no key")

    # delete: all or nothing.
    r = env.request("POST", "/key/delete", server=srv, body={"keys": [other_key, sha("nobody")]})
    env.check_error(r, 404, "not_found", param="keys", what="key/delete with one unknown")
    t.is_eq(key_info(env, other_token, srv=srv).status, 200, "and nothing was deleted")
    rows_before = int(env.sql("SELECT COUNT(*) FROM spend_logs WHERE api_key = %s"
                              % H.sql_quote(token))[0][0])
    r = env.request("POST", "/key/delete", server=srv, body={"keys": [other_key, token]})
    t.is_eq((r.status, (r.json or {}).get("deleted_keys")), (200, [other_key, token]),
            "key/delete (a key and a token)")
    for k in (key, other_key):
        r = env.chat(user="keys-curl-user", key=k, server=srv)
        env.check_error(r, 401, "auth_error",
                        message="Authentication Error, Invalid proxy server token passed.",
                        what="a deleted key")
    t.is_eq(key_info(env, token, srv=srv).status, 404, "key/info of a deleted key: 404")
    t.is_eq(env.sql("SELECT COUNT(*) FROM budgets WHERE private_for_key = %s"
                    % H.sql_quote(token))[0][0], "0", "its budget went with it")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM spend_logs WHERE api_key = %s"
                        % H.sql_quote(token))[0][0]), rows_before, "the ledger keeps its rows")


def expiry(t, env, srv):
    """Part 4."""
    key, token = new_key(t, env, srv, duration="2s")
    info = (key_info(env, token, srv=srv).json or {}).get("info") or {}
    t.ok(info.get("expires") is not None, "a key with a duration has expires: %s"
         % info.get("expires"))
    r = env.chat(user="keys-expiring", key=key, server=srv)
    t.is_eq(r.status, 200, "a 2 s key works at once")
    time.sleep(2.3)
    r = env.chat(user="keys-expiring", key=key, server=srv)
    env.check_error(r, 401, "auth_error",
                    message=re.compile(r"^Authentication Error - Expired Key\. Key Expiry time "
                                       r"\S+Z and current time \S+Z$"),
                    what="the same key 2.3 s later")
    r = env.request("POST", "/key/update", server=srv, body={"key": token, "duration": None})
    t.is_eq((r.status, (r.json or {}).get("expires")), (200, None),
            "key/update duration null: never expires")
    t.is_eq(env.chat(user="keys-expiring", key=key, server=srv).status, 200,
            "and the key works again")


def models(t, env, srv):
    """Part 5."""
    key, _ = new_key(t, env, srv, models=["fake-gpt"])
    r = env.chat(user="keys-models", key=key, server=srv, model="fake-gpt-2")
    env.check_error(r, 401, "auth_error", param="model",
                    message=re.compile(r"^key not allowed to access model=fake-gpt-2\. "
                                       r"This key can only access models=\['fake-gpt'\]\.$"),
                    what="a model outside the key's")
    t.is_eq(env.customer_row("keys-models"), None, "a refused model stores no customer")
    t.is_eq(env.chat(user="keys-models", key=key, server=srv).status, 200,
            "the key's own model works")
    for path in ("/models", "/v1/models"):
        r = env.request("GET", path, key=key, server=srv)
        t.is_eq([m["id"] for m in (r.json or {}).get("data") or []], ["fake-gpt"],
                "%s with the key lists its models only" % path)
    r = env.request("GET", "/models", server=srv)
    t.is_eq(sorted(m["id"] for m in (r.json or {}).get("data") or []),
            ["fake-gpt", "fake-gpt-2"], "/models with the master key lists all")
    key2, _ = new_key(t, env, srv, models=[])
    r = env.request("GET", "/models", key=key2, server=srv)
    t.is_eq(sorted(m["id"] for m in (r.json or {}).get("data") or []),
            ["fake-gpt", "fake-gpt-2"], "a key with models [] may call every model")
    t.is_eq(env.chat(key=key2, model="fake-gpt-2", server=srv).status, 200,
            "models []: fake-gpt-2 too")
    # A customer's default_model is checked against the key as well.
    env.customer_new(user_id="keys-default-model", default_model="fake-gpt-2", server=srv)
    r = env.chat(user="keys-default-model", key=key, model=None, server=srv)
    env.check_error(r, 401, "auth_error", param="model",
                    what="the customer's default_model outside the key's")
    aliases(t, env, srv)


def aliases(t, env, srv):
    """Part 5: LiteLLM's key aliases (before, /key/generate took them and
    ignored them, and a call with the alias was 400)."""
    key, token = new_key(t, env, srv, models=["fake-gpt"],
                         aliases={"my-gpt": "fake-gpt", "other": "fake-gpt-2"})
    r = key_info(env, key, srv=srv)
    t.is_eq(((r.json or {}).get("info") or {}).get("aliases"),
            {"my-gpt": "fake-gpt", "other": "fake-gpt-2"}, "aliases: /key/info shows them")
    r = env.chat(user="keys-alias", key=key, model="my-gpt", server=srv,
                 fake={"usage": {"prompt_tokens": 5, "completion_tokens": 5}})
    t.is_eq(r.status, 200, "aliases: a call with the alias is served", r.text[:300])
    t.is_eq(dec(r.header("x-litellm-response-cost")), cost(5, 5), "aliases: at the model's price")
    rows = env.ledger_rows("keys-alias")
    t.is_eq([(x["model"], x["api_key"]) for x in rows], [("fake-gpt", token)],
            "aliases: the row names the model the alias stands for")
    t.is_eq((env.upstream.requests() or [{}])[-1].get("json", {}).get("model"), "fake-gpt",
            "aliases: the upstream got the model")
    r = env.chat(user="keys-alias", key=key, model="other", server=srv)
    env.check_error(r, 401, "auth_error", param="model",
                    message=re.compile(r"^key not allowed to access model=fake-gpt-2\. "),
                    what="aliases: the key's models are checked on what the alias stands for")
    r = env.chat(user="keys-alias", key=H.MASTER_KEY, model="my-gpt", server=srv)
    env.check_error(r, 400, "invalid_request_error", param="model",
                    what="aliases: another key (the master key) has no such model")
    r = env.request("POST", "/key/update", body={"key": key, "aliases": {"mine": "fake-gpt"}},
                    server=srv)
    t.is_eq((r.status, (r.json or {}).get("aliases")), (200, {"mine": "fake-gpt"}),
            "aliases: /key/update replaces them")
    t.is_eq(env.chat(user="keys-alias", key=key, model="mine", server=srv).status, 200,
            "aliases: the new alias works")
    r = env.chat(user="keys-alias", key=key, model="my-gpt", server=srv)
    t.is_eq(r.status, 400, "aliases: the old one is gone")
    r = env.request("POST", "/key/update", body={"key": key, "aliases": None}, server=srv)
    t.is_eq((r.status, (r.json or {}).get("aliases")), (200, {}), "aliases: null clears them")
    t.is_eq(env.sql("SELECT aliases FROM api_keys WHERE token = '%s'" % token)[0][0], None,
            "aliases: ... stored as NULL")
    for bad in (["x"], {"a": 1}, {"a": ""}, {"": "fake-gpt"}, {"a": "x" * 256}, "a"):
        r = generate(env, srv, aliases=bad)
        env.check_error(r, 422, "invalid_request_error", param="aliases",
                        what="aliases %r" % (bad,))


def budgets(t, env, srv):
    """Part 7."""
    # The key's max_budget across customers.
    body_of = {}

    def body(user, n=20):
        if (user, n) not in body_of:
            body_of[(user, n)] = H.exact_chat_body("fake-gpt", user, n)
        return body_of[(user, n)]

    ests = {u: cost(body(u)[1], 20) for u in ("kb-c1", "kb-c2", "kb-c3")}
    est = max(ests.values())
    key, token = new_key(t, env, srv, max_budget=str(est * 3 + est / 2))
    got = []
    for u in ("kb-c1", "kb-c2", "kb-c3", "kb-c1"):
        r = env.request("POST", "/chat/completions", body=body(u)[0], key=key, server=srv)
        got.append(r)
    t.is_eq([r.status for r in got], [200, 200, 200, 429],
            "key max_budget: three customers, the fourth call refused")
    spent = sum(dec(r.header("x-litellm-response-cost")) for r in got[:3])
    env.check_error(got[3], 429, "budget_exceeded",
                    message="Budget has been exceeded! Current cost: %s, Max budget: %s"
                    % (money_text(spent), money_text(est * 3 + est / 2)),
                    what="the key's budget refusal (LiteLLM's message)")
    t.is_eq(got[3].header("x-should-retry"), "false", "key budget refusal: x-should-retry: false")
    check_key_books(t, env, token, "key budget", est * 3 + est / 2)
    for u in ("kb-c1", "kb-c2", "kb-c3"):
        check_customer_books(t, env, u, "key budget")
    t.is_eq(len(env.ledger_rows("kb-c1")), 1, "key budget: the refused call left no row")

    # The customer's max_budget across keys.
    user = "kb-shared-customer"
    b, n = body(user)
    est = cost(n, 20)
    env.customer_new(user_id=user, max_budget=str(est * 2 + est / 2), server=srv)
    ka, ta = new_key(t, env, srv)
    kb, tb = new_key(t, env, srv)
    st = [env.request("POST", "/chat/completions", body=b, key=k, server=srv)
          for k in (ka, kb, ka, kb)]
    t.is_eq([r.status for r in st], [200, 200, 429, 429],
            "customer max_budget across two keys: two calls, then refused")
    env.check_error(st[2], 429, "budget_exceeded",
                    message=re.compile(r"^ExceededBudget: End User=kb-shared-customer over "
                                       r"budget\. Spend="), what="the customer's refusal")
    check_customer_books(t, env, user, "customer budget", est * 2 + est / 2)
    for tok in (ta, tb):
        check_key_books(t, env, tok, "customer budget")

    # The over-hold cap takes the smaller room of the two.
    for smaller in ("key", "customer"):
        user = "kb-over-" + smaller
        b, n = H.exact_chat_body("fake-gpt", user, 10)
        obj = json.loads(b)
        obj["fake"]["usage"]["completion_tokens"] = 1000  # ignores the bound
        b = json.dumps(obj).encode()
        est = cost(len(b), 10)
        small, large = est * 3 / 2, est * 10
        env.customer_new(user_id=user, server=srv,
                         max_budget=str(small if smaller == "customer" else large))
        k, tok = new_key(t, env, srv, max_budget=str(small if smaller == "key" else large))
        r = env.request("POST", "/chat/completions", body=b, key=k, server=srv)
        t.is_eq((r.status, dec(r.header("x-litellm-response-cost"))), (200, small),
                "over hold, %s's room smaller: charged that room" % smaller)
        check_key_books(t, env, tok, "over hold (%s)" % smaller,
                        small if smaller == "key" else large)
        check_customer_books(t, env, user, "over hold (%s)" % smaller,
                             small if smaller == "customer" else large)


def race(t, env, srv):
    """Part 8."""
    users = ("kr-x", "kr-y")
    bodies = {u: H.exact_chat_body("fake-gpt", u, 100, fake={"delay": 0.15}) for u in users}
    ests = {u: cost(bodies[u][1], 100) for u in users}
    t.is_eq(ests["kr-x"], ests["kr-y"], "race: both customers' calls cost the same")
    est = ests["kr-x"]
    key_max = est * 20 + est / 2
    cust_max = est * 12 + est / 2
    for u in users:
        env.customer_new(user_id=u, max_budget=str(cust_max), server=srv)
    key, token = new_key(t, env, srv, max_budget=str(key_max))
    jobs = [lambda u=u: env.request("POST", "/chat/completions", body=bodies[u][0], key=key,
                                    server=srv, timeout=120)
            for _ in range(25) for u in users]
    results = parallel(50, jobs)
    transport = [r for r in results if isinstance(r, Exception)]
    resps = [r for r in results if not isinstance(r, Exception)]
    statuses = collections.Counter(r.status for r in resps)
    t.diag("race: statuses %s" % dict(statuses))
    t.is_eq(transport, [], "race: no transport errors")
    t.is_eq(statuses.get(200, 0) + statuses.get(429, 0), 50, "race: every answer is 200 or 429")
    t.is_eq(statuses.get(200, 0), 20, "race: exactly as many admitted as the key's budget holds")
    t.ok(all(r.error.get("type") == "budget_exceeded" for r in resps if r.status == 429),
         "race: every refusal is budget_exceeded")
    krow = key_row(env, token) or {}
    t.diag("race: key spend %s of %s; customers %s" % (
        krow.get("spend"), key_max, [(env.customer_row(u) or {}).get("spend") for u in users]))
    check_key_books(t, env, token, "race", key_max)
    for u in users:
        check_customer_books(t, env, u, "race", cust_max)
    t.is_eq(krow.get("spend"), sum((env.customer_row(u) or {}).get("spend", 0) for u in users),
            "race: the key's spend is the sum of the customers'")
    t.is_eq(env.sql("SELECT COUNT(*) FROM reservations")[0][0], "0", "race: no hold left")


def period_reset(t, env, srv):
    """Part 9."""
    user = "kp-user"
    b, n = H.exact_chat_body("fake-gpt", user, 10)
    est = cost(n, 10)
    key, token = new_key(t, env, srv, max_budget=str(est + est / 2), budget_duration="5s")
    info = (key_info(env, token, srv=srv).json or {}).get("info") or {}
    t.ok(info.get("budget_reset_at") is not None and info.get("budget_duration") == "5s",
         "a key with budget_duration 5s has budget_reset_at %s" % info.get("budget_reset_at"))
    # Start right after a period begins, so that two calls share it.
    while time.time() % 5 > 0.5:
        time.sleep(0.05)
    r1 = env.request("POST", "/chat/completions", body=b, key=key, server=srv)
    r2 = env.request("POST", "/chat/completions", body=b, key=key, server=srv)
    t.is_eq((r1.status, r2.status), (200, 429), "budget_duration: the period's budget is spent")
    time.sleep(5 - time.time() % 5 + 0.3)
    info = (key_info(env, token, srv=srv).json or {}).get("info") or {}
    t.is_eq(dec(info.get("spend")), Decimal(0), "budget_duration: the next period reads 0")
    r3 = env.request("POST", "/chat/completions", body=b, key=key, server=srv)
    t.is_eq(r3.status, 200, "budget_duration: the key admits again after its reset")
    t.is_eq((key_row(env, token) or {}).get("spend"), est,
            "budget_duration: spend is the new period's only")
    t.is_eq(key_ledger_sum(env, token), est * 2, "budget_duration: the ledger keeps both rows")


def rate_limits(t, env, srv):
    """Part 10."""
    def limit_re(token, kind, n):
        return re.compile(r"^Rate limit exceeded for api_key: %s\. Limit type: %s\. "
                          r"Current limit: %d, Remaining: 0\. Limit resets at: "
                          r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$" % (token, kind, n))

    key, token = new_key(t, env, srv, rpm_limit=2)
    other, _ = new_key(t, env, srv)
    away_from_minute_edge(t)
    got = [env.chat(user="kl-u%d" % i, key=key, server=srv).status for i in range(2)]
    t.is_eq(got, [200, 200], "key rpm 2: two calls (two customers) pass")
    r = env.chat(user="kl-u3", key=key, server=srv)
    env.check_error(r, 429, "rate_limit_error", message=limit_re(token, "requests", 2),
                    what="key rpm 2: the third call")
    wait = int(r.header("retry-after") or 0)
    t.ok(1 <= wait <= 60, "key rpm: retry-after %d s" % wait)
    t.is_eq(r.header("x-should-retry"), "false" if wait > 8 else None,
            "key rpm: x-should-retry: false for a retry %d s away" % wait)
    t.is_eq(env.customer_row("kl-u3") and len(env.ledger_rows("kl-u3")), 0,
            "key rpm: the refused call left no row")
    t.is_eq(env.chat(user="kl-u3", key=other, server=srv).status, 200,
            "another key is not limited by it")
    t.is_eq(env.chat(user="kl-u3", server=srv).status, 200, "nor the master key")

    key, token = new_key(t, env, srv, tpm_limit=50)
    away_from_minute_edge(t)
    r = env.chat(user="kl-t", key=key, server=srv,
                 fake={"usage": {"prompt_tokens": 30, "completion_tokens": 20}})
    t.is_eq(r.status, 200, "key tpm 50: a call of 50 tokens")
    r = env.chat(user="kl-t2", key=key, server=srv)
    env.check_error(r, 429, "rate_limit_error", message=limit_re(token, "tokens", 50),
                    what="key tpm 50: the next call, for another customer")

    # Both must admit; a refusal by one records nothing for the other.
    key, token = new_key(t, env, srv, rpm_limit=5)
    env.customer_new(user_id="kl-both", rpm_limit=1, server=srv)
    away_from_minute_edge(t)
    t.is_eq(env.chat(user="kl-both", key=key, server=srv).status, 200, "both: the first call")
    r = env.chat(user="kl-both", key=key, server=srv)
    env.check_error(r, 429, "rate_limit_error",
                    message=re.compile(r"^Rate limit exceeded for end_user: kl-both\. Limit "
                                       r"type: requests\. Current limit: 1,"),
                    what="both: the customer's rpm 1 refuses, though the key's admits")
    t.is_eq(env.sql("SELECT SUM(requests) FROM rate_windows WHERE kind = 'key' AND user_id = %s"
                    % H.sql_quote(token))[0][0], "1",
            "both: the customer's refusal counted nothing for the key")
    # A customer id that is a key's token is still a customer of its own.
    env.customer_new(user_id=token, rpm_limit=100, server=srv)
    t.is_eq(env.chat(user=token, server=srv).status, 200,
            "a customer named like the key's token has its own window")
    t.is_eq(env.sql("SELECT kind, requests FROM rate_windows WHERE user_id = %s ORDER BY kind"
                    % H.sql_quote(token)), [["customer", "1"], ["key", "1"]],
            "its window and the key's are apart")


def sdk(t, env, srv):
    """Part 11."""
    import sdk as S
    node = H.find_node()
    mods = S.node_modules()
    key, token = new_key(t, env, srv, models=["fake-gpt"])
    r = env.budget_new(budget_id="kl-tpm2", tpm_limit=2, server=srv)
    t.is_eq(r.status, 200, "budget/new with tpm_limit 2")
    r = env.customer_new(user_id="kl-end-user", budget_id="kl-tpm2", server=srv)
    t.is_eq(r.status, 200, "a customer on it")
    limited, _ = new_key(t, env, srv, models=[])
    away_from_minute_edge(t)
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.tmp,
               "NODE_PATH": mods, "TG_BASE_URL": "http://127.0.0.1:%d" % srv.port,
               "TG_KEY": key, "TG_USER": "kl-sdk-user", "TG_MODEL": "fake-gpt",
               "TG_OTHER_MODEL": "fake-gpt-2", "TG_LIMITED_KEY": limited,
               "TG_LIMITED_USER": "kl-end-user"}
    p = subprocess.run([node, os.path.join(H.SRCDIR, "tests", "sdk", "key-test.cjs")],
                       env=run_env, cwd=env.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    text = p.stdout.decode("utf-8", "replace")
    try:
        res = json.loads(text.strip().splitlines()[-1], parse_float=Decimal)
    except (ValueError, IndexError):
        res = None
    if not t.ok(p.returncode == 0 and isinstance(res, dict), "node ran key-test.cjs",
                "stdout: %s" % text[-2000:], "stderr: %s" % p.stderr.decode()[-2000:]):
        return
    t.is_eq(res.get("errors"), [], "SDK: nothing unexpected raised")
    ns = res.get("nonstream") or {}
    t.is_eq((ns.get("content"), dec(ns.get("cost"))),
            ("Hello from the fake upstream.", cost(11, 13)), "SDK with a key: a completion")
    row = env.ledger_row(ns.get("call_id") or "")
    t.is_eq(row and (row["end_user"], row["api_key"]), ("kl-sdk-user", token),
            "SDK: the row names the customer and the key's token")
    st = res.get("stream") or {}
    t.is_eq(st.get("text"), "tok1 tok2 tok3", "SDK with a key: a stream")
    want = cost(11, 13) + cost(5, 7)
    t.is_eq((key_row(env, token) or {}).get("spend"), want, "SDK: the key's spend")
    t.is_eq((env.customer_row("kl-sdk-user") or {}).get("spend"), want,
            "SDK: the customer's spend")
    t.is_eq(res.get("models"), ["fake-gpt"], "SDK: models.list() with the key")
    om = res.get("other_model") or {}
    t.ok(om.get("raised") and om.get("status") == 401 and om.get("is_auth"),
         "SDK: a model outside the key raises AuthenticationError", repr(om))

    eu = res.get("end_user_tpm") or {}
    t.diag("end user tpm 2: %s" % json.dumps(eu, default=str)[:1500])
    t.cmp_ok(eu.get("passed", 99), "<", 5, "LiteLLM's end-user test: fewer than 5 of 10 pass")
    t.cmp_ok(eu.get("passed", 0), ">=", 1, "and the first one does")
    fails = eu.get("failures") or []
    t.ok(fails and all(f.get("status") == 429 and f.get("type") == "rate_limit_error"
                       for f in fails), "each failure is 429 rate_limit_error")
    t.ok(all(f.get("retry_after") for f in fails), "each says retry-after")
    t.cmp_ok(eu.get("seconds", 999), "<", 30,
             "the SDK did not sit out the minute (x-should-retry: false)")


def webhooks(t, env):
    """Part 12."""
    rec = H.Receiver().up()
    try:
        cfg = env.config(general_settings={"alerting": ["webhook"]},
                         extra={"tollgate_settings": {"webhook_timeout": 1,
                                                      "webhook_retry_base": 1}})
        srv = env.start_lighttpd(env.write_config("hooks", cfg), name="hooks", max_procs=2,
                                 extra_env={"WEBHOOK_URL": rec.url})
        user = "kw-user"
        b, n = H.exact_chat_body("fake-gpt", user, 10)
        est = cost(n, 10)
        key, token = new_key(t, env, srv, key_alias="hooked-app", max_budget=str(est * 4),
                             soft_budget=str(est * 2))
        rs = [env.request("POST", "/chat/completions", body=b, key=key, server=srv)
              for _ in range(5)]
        t.is_eq([r.status for r in rs], [200, 200, 200, 200, 429],
                "webhooks: four calls fill the key's budget, the fifth is refused")

        def events():
            return [e for e, _ in rec.events("/hook")]

        def drained():
            # What the processes did not send after their responses (a
            # round slowed by a loaded machine pauses them), tollgate-deliver
            # sends, as it does beside every deployment.
            subprocess.run([H.DELIVER, "--once", "--quiet"], timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, TOLLGATE_CONFIG=srv.config,
                                    DATABASE_URL=env.db.url,
                                    TOLLGATE_PRICE_FILE=H.PRICE_FILE,
                                    WEBHOOK_URL=rec.url))
            return len([e for e in events() if e.get("event_group") == "key"]) >= 4
        H.wait_for(drained, timeout=20, interval=0.5)
        time.sleep(0.5)
        evs = events()
        tracked = [e for e in evs if e.get("event") == "spend_tracked"]
        t.is_eq(len(tracked), 4, "webhooks: one spend_tracked per charged call")
        t.ok(all(e.get("token") == token and e.get("key_alias") == "hooked-app"
                 and e.get("customer_id") == user and e.get("event_group") == "customer"
                 for e in tracked), "spend_tracked: token is the key's hash, key_alias its alias",
             repr(tracked[:1]))
        kev = [e for e in evs if e.get("event_group") == "key"]
        t.is_eq(sorted(e["event"] for e in kev),
                ["budget_crossed", "soft_budget_crossed", "threshold_crossed",
                 "threshold_crossed"],
                "the key's budget alerts, each once: 85%, 95%, 100% and soft budget")
        t.ok(all(e.get("customer_id") is None and e.get("token") == token
                 and e.get("key_alias") == "hooked-app" for e in kev),
             "key events: customer_id null, token and key_alias the key's", repr(kev[:1]))
        t.ok(all(e.get("event_message", "").startswith("Key ") and "Key=hooked-app" in
                 e.get("event_message", "") for e in kev), "key events say Key=<alias>",
             repr([e.get("event_message") for e in kev]))
        t.is_eq(sorted(x[0].split(":")[0] for x in env.sql(
                    "SELECT alert FROM alert_marks WHERE kind = 'key'"
                    " AND user_id = %s" % H.sql_quote(token))),
                ["budget_crossed", "soft_budget_crossed", "threshold_85", "threshold_95"],
                "the key's alert marks (each named with the limit it was measured against)")
        r = env.request("POST", "/chat/completions", body=b, key=key, server=srv)
        time.sleep(0.5)
        t.is_eq(len([e for e in events() if e.get("event_group") == "key"]), 4,
                "no second alert for the key in the period")
    finally:
        rec.down()


def crash_and_spool(t, env):
    """Part 13."""
    spool = os.path.join(env.tmp, "spool-keys")
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": {"hold_grace": 1, "reclaim_interval": 1,
                                                  "spool_dir": spool}})
    srv = env.start_lighttpd(env.write_config("crash", cfg), name="crash", max_procs=1)
    srv.expect_child_deaths = True

    # A chat worker killed while its call is at the upstream.
    user = "kc-killed"
    body, n = H.exact_chat_body("fake-gpt", user, 50, fake={"delay": 2})
    est = cost(n, 50)
    env.customer_new(user_id=user, max_budget="1", server=srv)
    key, token = new_key(t, env, srv, max_budget="1")
    env.upstream.reset()
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", env.request(
        "POST", "/chat/completions", body=body, key=key, server=srv, timeout=30)))
    th.start()
    t.ok(H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                                for q in env.upstream.requests()), timeout=10),
         "killed: the call reached the upstream")
    held = env.sql("SELECT user_id, key_token, amount FROM reservations")
    t.is_eq([(h[0], h[1], dec(h[2])) for h in held], [(user, token, est)],
            "killed: one hold row names the customer and the key")
    t.is_eq(((key_row(env, token) or {}).get("reserved"),
             (env.customer_row(user) or {}).get("reserved")), (est, est),
            "killed: both accounts hold the estimate")
    for pid in srv.program_pids("chat_completions"):
        os.kill(pid, signal.SIGKILL)
    th.join(30)

    def reclaimed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.ledger_rows(user)
    rows = H.wait_for(reclaimed, timeout=HOLD_TIMEOUT + 15, interval=0.5)
    t.is_eq([(x["status"], x["spend"], x["api_key"]) for x in rows],
            [("unsettled", est, token)], "killed: one unsettled row, charged at the hold")
    meta = rows[0]["metadata"] if rows else None
    t.ok(isinstance(meta, dict) and "key_period_end" in meta and "period_end" in meta,
         "killed: the row records both accounts' periods", repr(meta))
    t.is_eq(((key_row(env, token) or {}).get("spend"),
             (env.customer_row(user) or {}).get("spend")), (est, est),
            "killed: the reclaim charged both the key and the customer")
    check_key_books(t, env, token, "killed")
    check_customer_books(t, env, user, "killed")

    # A settlement spooled while MariaDB was down, replayed after the
    # reclaim charged its expired hold: both accounts get the real charge.
    user = "kc-spooled"
    aside = os.path.join(env.tmp, "spool-aside-keys")
    os.makedirs(aside, exist_ok=True)
    obj = json.loads(H.exact_chat_body("fake-gpt", user, 40, fake={"delay": 1.5})[0])
    obj["fake"]["usage"] = {"prompt_tokens": 9, "completion_tokens": 7}
    body = json.dumps(obj).encode()
    est, real = cost(len(body), 40), cost(9, 7)
    env.customer_new(user_id=user, max_budget="1", server=srv)
    key, token = new_key(t, env, srv, max_budget="1")
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", env.request(
        "POST", "/chat/completions", body=body, key=key, server=srv, timeout=30)))
    th.start()
    H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                           for q in env.upstream.requests()), timeout=10)
    env.db.stop()  # the answer arrives while the database is down
    th.join(30)
    r = out.get("r")
    t.is_eq((r and r.status, dec(r and r.header("x-litellm-response-cost"))), (200, real),
            "spooled: the client got its answer and its cost with the database down")
    files = H.spool_files(spool)
    t.is_eq(len(files), 1, "spooled: one settlement in the spool")
    if files:
        with open(files[0]) as f:
            spooled = json.load(f)
        t.is_eq(((spooled.get("account") or {}).get("key_token"),
                 (spooled.get("hold") or {}).get("key_token")), (token, token),
                "spooled: the file carries the key's account and hold")
    for f in files:  # this machine's spool is out of reach for a while
        shutil.move(f, os.path.join(aside, os.path.basename(f)))
    env.db.start()
    rows = H.wait_for(lambda: (env.request("GET", "/health/readiness", server=srv, key=None),
                               env.ledger_rows(user))[1], timeout=HOLD_TIMEOUT + 15, interval=0.5)
    t.is_eq([(x["status"], x["spend"]) for x in rows], [("unsettled", est)],
            "spooled: meanwhile the expired hold is charged as unsettled")
    t.is_eq(((key_row(env, token) or {}).get("spend"),
             (env.customer_row(user) or {}).get("spend")), (est, est),
            "spooled: to both accounts")
    for f in files:
        shutil.move(os.path.join(aside, os.path.basename(f)), f)

    def replayed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        rows = env.ledger_rows(user)
        return rows if rows and rows[0]["status"] != "unsettled" else None
    rows = H.wait_for(replayed, timeout=15, interval=0.5) or env.ledger_rows(user)
    t.is_eq([(x["status"], x["spend"], x["api_key"]) for x in rows], [("success", real, token)],
            "spooled: the replay replaced it with the real charge")
    t.is_eq(((key_row(env, token) or {}).get("spend"),
             (env.customer_row(user) or {}).get("spend")), (real, real),
            "spooled: both accounts corrected to the real charge")
    check_key_books(t, env, token, "spooled")
    check_customer_books(t, env, user, "spooled")
    t.ok(not H.spool_files(spool), "spooled: spool empty")


def main(t, env):
    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=8)
    key, token = generate_and_use(t, env, srv)
    management(t, env, srv, key, token)
    expiry(t, env, srv)
    models(t, env, srv)
    budgets(t, env, srv)
    race(t, env, srv)
    period_reset(t, env, srv)
    rate_limits(t, env, srv)
    try:
        sdk(t, env, srv)
    except H.Missing as e:  # node or the pinned SDK is not installed here
        t.skip("sdk: the OpenAI Node SDK with a key", str(e))
    webhooks(t, env)
    crash_and_spool(t, env)


if __name__ == "__main__":
    H.run(main)
