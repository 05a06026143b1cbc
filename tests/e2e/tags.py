#!/usr/bin/env python3
"""tags: tags as accounts, LiteLLM's /tag/* and tag budgets (issue 19).

A call names tags in metadata.tags and in the x-litellm-tags header, on
every LLM route.  A tag made with /tag/new is an account like a customer
or a key: it is admitted, held and charged in the same transaction as
them; a tag never made is recorded on the row and charged nothing.

1. /tag/new, /tag/info, /tag/update, /tag/list, /tag/delete in LiteLLM's
   shapes and messages; budget fields on a tag of a shared tier give it a
   copy of its own (the tier unchanged); bad input is a 4xx in the
   envelope and creates nothing.
2. 50 calls at once over two models, two tags (one with a per-model cap),
   five customers and a virtual key, every one of them near its limit:
   no limit passed, every account's spend = the sum of its rows, nothing
   left reserved; refusals name the tag.  Half the calls name their tags
   in the header, half in metadata, some both, some an unknown tag.
3. Every LLM route charges the tags it names; the upstream never sees
   metadata.tags; /spend/logs?tags= finds the rows, with request_tags.
4. A period ("2s"): a tag at its budget is refused, and served again in
   the next period, its spend starting from 0.
5. Blocked, models, rate limits: a blocked tag refuses (403) until
   unblocked; a tag's models list refuses other models (401); its
   rpm_limit refuses (429) in the tag's words.
6. A tag deleted while its call is in flight: the call is served and
   charged to its other accounts, nothing stays reserved; calls naming it
   later name an unknown tag; a tag made again under the name starts
   from 0.
7. A killed worker: the reclaim charges the hold to the tag (and to its
   model row) as unsettled, with the tag's period in the row; a spooled
   settlement of a hold reclaimed meanwhile corrects the tag to the real
   charge, once.
8. Alerts: a tag's soft budget and a refusal for its budget send the
   webhook's soft_budget_crossed and budget_crossed, event_group tag,
   naming the tag.
"""

import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import parallel  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

HOLD_TIMEOUT = 3  # the deployments' timeout: a hold lasts 3 + 1 s
USAGE = {"prompt_tokens": 10, "completion_tokens": 20}
CALL_COST = cost(10, 20)  # what each chat call is charged: 0.00005


def body(user, model="fake-gpt", tags=None, fake=None):
    b = H.Env.chat_body(user=user, model=model, fake=dict({"usage": USAGE}, **(fake or {})),
                        extra={"max_tokens": 20})
    if tags is not None:
        b["metadata"] = {"tags": tags}
    return b


def chat(env, srv, user, model="fake-gpt", tags=None, header=None, key=H._DEFAULT_KEY,
         fake=None, timeout=60):
    headers = {"x-litellm-tags": header} if header is not None else None
    return env.request("POST", "/chat/completions", body=body(user, model, tags, fake),
                       headers=headers, server=srv, key=key, timeout=timeout)


def tag_new(env, srv, **fields):
    return env.request("POST", "/tag/new", body=fields, server=srv)


def tag_row(env, name):
    rows = env.sql("SELECT spend, reserved, blocked FROM tags WHERE tag_name = %s"
                   % H.sql_quote(name))
    if not rows:
        return None
    return {"spend": dec(rows[0][0]), "reserved": dec(rows[0][1]), "blocked": rows[0][2]}


def tag_rows_sum(env, name, model=None):
    """The spend and count of the ledger rows indexed under tag name."""
    where = " AND s.model = %s" % H.sql_quote(model) if model else ""
    rows = env.sql("SELECT COALESCE(SUM(s.spend), 0), COUNT(*) FROM spend_logs s"
                   " JOIN spend_log_tags t ON t.request_id = s.request_id"
                   " WHERE t.tag = %s%s" % (H.sql_quote(name), where))
    return dec(rows[0][0]), int(rows[0][1])


def model_row(env, kind, account, model):
    rows = env.sql("SELECT spend, reserved FROM model_spend WHERE kind = %s AND"
                   " account_id = %s AND model = %s"
                   % (H.sql_quote(kind), H.sql_quote(account), H.sql_quote(model)))
    return {"spend": dec(rows[0][0]), "reserved": dec(rows[0][1])} if rows else None


def error_of(r):
    try:
        return json.loads(r.text).get("error", {})
    except ValueError:
        return {}


def check_tag_books(t, env, label, name, limit=None):
    row = tag_row(env, name) or {}
    total, n = tag_rows_sum(env, name)
    t.diag("%s: tag %s spend %s, reserved %s, limit %s, %d rows summing %s"
           % (label, name, row.get("spend"), row.get("reserved"), limit, n, total))
    if limit is not None:
        t.cmp_ok(row.get("spend"), "<=", limit, "%s: tag %s's spend <= its max_budget"
                 % (label, name))
    t.is_eq(row.get("spend"), total, "%s: tag %s's spend = the sum of its rows"
            % (label, name))
    t.is_eq(row.get("reserved"), Decimal(0), "%s: tag %s has nothing reserved"
            % (label, name))
    return row, n


# ---- 1. the routes ----

def routes(t, env, srv):
    r = tag_new(env, srv, name="eng", description="Engineering", models=["fake-gpt"],
                max_budget=500, budget_duration="30d")
    t.is_eq(r.status, 200, "new: /tag/new", r.text[:300])
    o = json.loads(r.text) if r.status == 200 else {}
    t.is_eq(o.get("message"), "Tag eng created successfully", "new: LiteLLM's message")
    tag = o.get("tag", {})
    t.is_eq((tag.get("name"), tag.get("description"), tag.get("models")),
            ("eng", "Engineering", ["fake-gpt"]), "new: the tag as made")
    budget = tag.get("litellm_budget_table") or {}
    t.is_eq((dec(budget.get("max_budget")), budget.get("budget_duration")),
            (Decimal(500), "30d"), "new: its budget", json.dumps(tag)[:300])
    t.is_eq((dec(tag.get("spend")), tag.get("blocked")), (Decimal(0), False),
            "new: nothing spent, not blocked")
    r = tag_new(env, srv, name="eng")
    t.ok(r.status == 400 and error_of(r).get("message") == "Tag eng already exists",
         "new: a second eng is 400 'Tag eng already exists'", r.text[:200])

    r = env.request("POST", "/tag/info", body={"names": ["eng"]}, server=srv)
    info = json.loads(r.text) if r.status == 200 else {}
    t.is_eq(list(info.keys()), ["eng"], "info: a map of the names asked", r.text[:200])
    r = env.request("POST", "/tag/info", body={"names": ["eng", "nope"]}, server=srv)
    t.ok(r.status == 404 and "Tags not found" in error_of(r).get("message", "")
         and "nope" in error_of(r).get("message", ""),
         "info: an unknown name is 404 naming it", r.text[:200])

    r = env.request("POST", "/tag/update", server=srv,
                    body={"name": "eng", "description": "R&D", "max_budget": 600})
    o = json.loads(r.text) if r.status == 200 else {}
    t.is_eq(o.get("message"), "Tag eng updated successfully", "update: LiteLLM's message",
            r.text[:200])
    tag = o.get("tag", {})
    t.is_eq((tag.get("description"), dec((tag.get("litellm_budget_table") or {})
                                         .get("max_budget")), tag.get("models")),
            ("R&D", Decimal(600), ["fake-gpt"]),
            "update: only what it gives changes (its own budget updated in place)")
    budgets = env.sql("SELECT COUNT(*) FROM budgets WHERE budget_id = %s"
                      % H.sql_quote(tag.get("budget_id") or ""))
    t.is_eq(budgets[0][0], "1", "update: the same budget row")
    r = env.request("POST", "/tag/update", body={"name": "ghost"}, server=srv)
    t.is_eq(r.status, 404, "update: an unknown tag is 404")

    env.budget_new(budget_id="tag-tier", max_budget=7, server=srv)
    r = tag_new(env, srv, name="ops", budget_id="tag-tier")
    t.is_eq(r.status, 200, "new: on a shared budget by budget_id", r.text[:200])
    r = env.request("GET", "/tag/list", server=srv)
    names = [x.get("name") for x in json.loads(r.text)] if r.status == 200 else []
    t.is_eq(names, ["eng", "ops"], "list: every tag, by name", r.text[:200])

    # Budget fields on a tag of a shared tier: a copy of its own, the tier
    # unchanged (as a customer's).
    r = env.request("POST", "/tag/update", body={"name": "ops", "rpm_limit": 100}, server=srv)
    ops = (json.loads(r.text).get("tag") or {}) if r.status == 200 else {}
    own_ops = ops.get("litellm_budget_table") or {}
    t.ok(ops.get("budget_id") not in (None, "tag-tier")
         and dec(own_ops.get("max_budget")) == Decimal(7) and own_ops.get("rpm_limit") == 100,
         "update: budget fields on a tag of a tier give it a copy with them", r.text[:300])
    tier = env.sql("SELECT max_budget, rpm_limit FROM budgets WHERE budget_id = 'tag-tier'")
    t.is_eq((dec(tier[0][0]), tier[0][1]), (Decimal(7), None), "update: the tier is unchanged")
    r = env.request("POST", "/tag/update", body={"name": "ops", "budget_id": "tag-tier"},
                    server=srv)
    t.ok(r.status == 200 and json.loads(r.text)["tag"]["budget_id"] == "tag-tier"
         and env.sql("SELECT COUNT(*) FROM budgets WHERE budget_id = %s"
                     % H.sql_quote(ops.get("budget_id") or ""))[0][0] == "0",
         "update: budget_id puts it back on the tier; its own budget goes", r.text[:200])
    r = env.request("POST", "/tag/delete", body={"name": "ops"}, server=srv)
    t.is_eq((r.status, json.loads(r.text).get("message") if r.status == 200 else None),
            (200, "Tag ops deleted successfully"), "delete: LiteLLM's message")
    t.is_eq(env.sql("SELECT COUNT(*) FROM budgets WHERE budget_id = 'tag-tier'")[0][0], "1",
            "delete: a shared budget stays")
    r = env.request("POST", "/tag/delete", body={"name": "ops"}, server=srv)
    t.is_eq(r.status, 404, "delete: again is 404")
    own = tag.get("budget_id")
    env.request("POST", "/tag/delete", body={"name": "eng"}, server=srv)
    t.is_eq(env.sql("SELECT COUNT(*) FROM budgets WHERE budget_id = %s"
                    % H.sql_quote(own or ""))[0][0], "0",
            "delete: a tag's own budget goes with it")

    bad = [
        ("no name", {"max_budget": 1}, 422, "name"),
        ("a name of 256 bytes", {"name": "x" * 256}, 422, "name"),
        ("max_budget negative", {"name": "b1", "max_budget": -1}, 422, "max_budget"),
        ("budget_duration unknown", {"name": "b2", "budget_duration": "fortnight"}, 422,
         "budget_duration"),
        ("models not a list", {"name": "b3", "models": "fake-gpt"}, 422, "models"),
        ("model_max_budget malformed", {"name": "b4", "model_max_budget":
                                        {"fake-gpt": {"budget_limit": "x"}}}, 422,
         "model_max_budget"),
        ("budget_id and max_budget", {"name": "b5", "budget_id": "tag-tier",
                                      "max_budget": 1}, 422, "max_budget"),
        ("an unknown budget_id", {"name": "b6", "budget_id": "no-such"}, 400, "budget_id"),
    ]
    for what, fields, status, param in bad:
        r = tag_new(env, srv, **fields)
        t.ok(r.status == status and error_of(r).get("param") == param,
             "bad input: %s is %d (param %s)" % (what, status, param),
             "%d %s" % (r.status, r.text[:200]))
    t.is_eq(env.sql("SELECT COUNT(*) FROM tags")[0][0], "0", "bad input: no tag created")
    r = chat(env, srv, "tg-bad", tags="eng")
    t.ok(r.status == 422 and error_of(r).get("param") == "metadata.tags",
         "bad input: metadata.tags not a list is 422", r.text[:200])
    r = chat(env, srv, "tg-bad", header=",".join("t%d" % i for i in range(17)))
    t.ok(r.status == 400 and "at most 16 tags" in error_of(r).get("message", ""),
         "bad input: 17 tags is 400", r.text[:200])
    t.is_eq(env.ledger_rows("tg-bad"), [], "bad input: no call made")


# ---- 2. fifty calls near every limit ----

def fifty(t, env, srv):
    limits = {"tg-a": Decimal("0.0008"), "tg-b": Decimal("0.004")}
    cap_b = Decimal("0.0004")  # tg-b's cap on fake-gpt
    r = tag_new(env, srv, name="tg-a", max_budget=float(limits["tg-a"]))
    t.is_eq(r.status, 200, "fifty: tag tg-a", r.text[:200])
    r = tag_new(env, srv, name="tg-b", max_budget=float(limits["tg-b"]),
                model_max_budget={"fake-gpt": {"budget_limit": float(cap_b),
                                               "time_period": "1d"}})
    t.is_eq(r.status, 200, "fifty: tag tg-b, capped on fake-gpt", r.text[:200])
    cust_limit = Decimal("0.0006")
    users = ["tg-u%d" % i for i in range(5)]
    for u in users:
        env.customer_new(user_id=u, max_budget=float(cust_limit), server=srv)
    key_limit = Decimal("0.0009")
    r = env.request("POST", "/key/generate", server=srv,
                    body={"key_alias": "tg-key", "max_budget": float(key_limit)})
    key = json.loads(r.text).get("key") if r.status == 200 else None
    token = json.loads(r.text).get("token") if r.status == 200 else None
    t.ok(key is not None, "fifty: a virtual key with a budget", r.text[:200])

    def job(i):
        # Every way of naming tags with both models.
        model = "fake-gpt" if (i // 4) % 2 == 0 else "fake-gpt-2"
        user = users[i % 5]
        which = i % 4
        tags = header = None
        if which == 0:
            tags = ["tg-a"]
        elif which == 1:
            header = "tg-b"
        elif which == 2:
            tags, header = ["tg-a", "tg-unknown"], " tg-b , tg-a"
        else:
            header = "tg-a,tg-b"
        r = chat(env, srv, user, model, tags, header, key=key if i % 3 == 0 else H._DEFAULT_KEY)
        return (i, model, r)

    results = parallel(25, [lambda i=i: job(i) for i in range(50)])
    errors = [x for x in results if isinstance(x, Exception)]
    t.is_eq(errors, [], "fifty: every call answered")
    ok = [x for x in results if not isinstance(x, Exception) and x[2].status == 200]
    refused = [x for x in results if not isinstance(x, Exception) and x[2].status != 200]
    t.diag("fifty: %d served, %d refused" % (len(ok), len(refused)))
    t.ok(len(ok) > 0 and len(refused) > 0, "fifty: some served, some refused at a limit")
    t.ok(all(x[2].status == 429 for x in refused), "fifty: every refusal is 429",
         [(x[2].status, x[2].text[:120]) for x in refused if x[2].status != 429][:3])
    msgs = [error_of(x[2]).get("message", "") for x in refused]
    t.ok(any(m.startswith("ExceededBudget: Tag=tg-") for m in msgs),
         "fifty: a tag's refusal names the tag", msgs[:3])
    known = ("ExceededBudget: Tag=", "ExceededBudget: End User=",
             "Budget has been exceeded!", "LiteLLM Virtual Key")
    t.ok(all(m.startswith(known) for m in msgs), "fifty: every refusal says whose budget",
         [m for m in msgs if not m.startswith(known)][:3])
    check_tag_books(t, env, "fifty", "tg-a", limits["tg-a"])
    row_b, _ = check_tag_books(t, env, "fifty", "tg-b", limits["tg-b"])
    mb = model_row(env, "tag", "tg-b", "fake-gpt") or {}
    total, n_b = tag_rows_sum(env, "tg-b", "fake-gpt")
    t.ok(n_b > 0, "fifty: tg-b served fake-gpt calls (%d)" % n_b)
    t.cmp_ok(mb.get("spend"), "<=", cap_b, "fifty: tg-b's fake-gpt spend <= its cap")
    t.is_eq((mb.get("spend"), mb.get("reserved")), (total, Decimal(0)),
            "fifty: tg-b's fake-gpt spend = its fake-gpt rows, nothing reserved")
    t.is_eq(tag_row(env, "tg-unknown"), None, "fifty: an unknown tag is no account")
    _, n_unknown = tag_rows_sum(env, "tg-unknown")
    t.is_eq(n_unknown, len([x for x in ok if x[0] % 4 == 2]),
            "fifty: every served call naming the unknown tag is indexed under it")
    for u in users:
        c = env.customer_row(u)
        t.ok(c["spend"] <= cust_limit and c["spend"] == env.ledger_sum(u)
             and c["reserved"] == 0,
             "fifty: customer %s within its budget, spend = its rows, none reserved" % u,
             repr(c))
    k = env.sql("SELECT spend, reserved FROM api_keys WHERE token = %s" % H.sql_quote(token))
    ks = env.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE api_key = %s"
                 % H.sql_quote(token))
    t.ok(k and dec(k[0][0]) <= key_limit and dec(k[0][0]) == dec(ks[0][0])
         and dec(k[0][1]) == 0, "fifty: the key within its budget, spend = its rows",
         repr(k), repr(ks))
    held = env.sql("SELECT COUNT(*) FROM reservations")
    t.is_eq(held[0][0], "0", "fifty: no hold left")
    # The rows say their tags: every one named, the unknown ones apart.
    rows = env.sql("SELECT metadata FROM spend_logs WHERE end_user = 'tg-u2'")
    metas = [json.loads(x[0]) for x in rows if x[0]]
    t.ok(metas and all("tags" in m for m in metas), "fifty: each row's metadata has its tags")
    mixed = [m for m in metas if "tg-unknown" in m.get("tags", [])]
    t.ok(all(m.get("tags") == ["tg-a", "tg-unknown", "tg-b"]
             and m.get("unknown_tags") == ["tg-unknown"] for m in mixed),
         "fifty: metadata then header, once each; the unknown one recorded as such",
         repr(mixed[:1]))


# ---- 3. every route ----

def every_route(t, env, srv):
    tag_new(env, srv, name="tg-routes", max_budget=1)
    env.upstream.reset()
    calls = [
        ("/v1/chat/completions", {"model": "fake-gpt", "user": "tg-r",
                                  "messages": [{"role": "user", "content": "hi"}],
                                  "metadata": {"tags": ["tg-routes"], "note": "kept"}}),
        ("/v1/completions", {"model": "fake-gpt", "user": "tg-r", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "fake-gpt", "user": "tg-r", "input": "hi"}),
        ("/v1/responses", {"model": "fake-gpt", "user": "tg-r", "input": "hi"}),
        ("/v1/messages", {"model": "fake-gpt", "max_tokens": 10,
                          "metadata": {"user_id": "tg-r", "tags": ["tg-routes"]},
                          "messages": [{"role": "user", "content": "hi"}]}),
    ]
    for path, b in calls:
        headers = None if "metadata" in b else {"x-litellm-tags": "tg-routes"}
        r = env.request("POST", path, body=b, headers=headers, server=srv)
        t.is_eq(r.status, 200, "routes: %s with a tag" % path, r.text[:200])
    row, n = check_tag_books(t, env, "routes", "tg-routes")
    t.is_eq(n, len(calls), "routes: one row per route under the tag")
    t.ok(row.get("spend", 0) > 0, "routes: the tag was charged")
    sent = [q.get("json") or {} for q in env.upstream.requests()]
    t.ok(sent and all("tags" not in (x.get("metadata") or {}) for x in sent),
         "routes: the upstream never gets metadata.tags",
         [x.get("metadata") for x in sent])
    t.ok(any((x.get("metadata") or {}).get("note") == "kept" for x in sent),
         "routes: the rest of metadata goes as it came")
    r = env.request("GET", "/spend/logs?tags=tg-routes", server=srv)
    logs = json.loads(r.text) if r.status == 200 else []
    t.is_eq(len(logs), len(calls), "routes: /spend/logs?tags= finds each row", r.text[:200])
    t.ok(all(x.get("request_tags") == ["tg-routes"] for x in logs),
         "routes: each with request_tags")
    r = env.request("GET", "/spend/logs?tags=tg-routes&end_user=nobody", server=srv)
    t.is_eq(r.text.strip(), "[]", "routes: with other filters too")
    r = env.request("GET", "/spend/logs?tags=tg-nothing,tg-routes&page_size=2", server=srv)
    t.is_eq(len(json.loads(r.text)) if r.status == 200 else None, 2,
            "routes: a comma list, paged")


# ---- 4. a period ----

def period(t, env, srv):
    b = body("tg-period", tags=["tg-period"])
    raw = json.dumps(b).encode()
    hold = cost(len(raw), 20)
    # One call's hold fits; after its charge, a second's does not.
    tag_new(env, srv, name="tg-period", max_budget=float(hold + CALL_COST / 2),
            budget_duration="2s")
    while int(time.time()) % 2 != 0:
        time.sleep(0.05)
    first = env.request("POST", "/chat/completions", body=raw, server=srv)
    second = env.request("POST", "/chat/completions", body=raw, server=srv)
    t.is_eq((first.status, second.status), (200, 429),
            "period: served once, then refused within the period",
            second.text[:200])
    t.ok(error_of(second).get("message", "").startswith("ExceededBudget: Tag=tg-period over "
                                                        "budget."),
         "period: the refusal names the tag", second.text[:200])
    time.sleep(2.2)
    third = env.request("POST", "/chat/completions", body=raw, server=srv)
    t.is_eq(third.status, 200, "period: served again in the next period", third.text[:200])
    row = tag_row(env, "tg-period") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (CALL_COST, Decimal(0)),
            "period: its spend started again from 0 (one call in it)")


# ---- 5. blocked, models, rate limits ----

def gates(t, env, srv):
    tag_new(env, srv, name="tg-block", blocked=True)
    r = chat(env, srv, "tg-g", tags=["tg-block"])
    t.ok(r.status == 403 and error_of(r).get("message") ==
         "Tag blocked from making LLM API Calls. Tag=tg-block",
         "blocked: 403 naming the tag", r.text[:200])
    r = chat(env, srv, "tg-g", header="tg-block")
    t.is_eq(r.status, 403, "blocked: by the header too")
    env.request("POST", "/tag/update", body={"name": "tg-block", "blocked": False}, server=srv)
    r = chat(env, srv, "tg-g", tags=["tg-block"])
    t.is_eq(r.status, 200, "blocked: served once unblocked", r.text[:200])

    tag_new(env, srv, name="tg-models", models=["fake-gpt"])
    r = chat(env, srv, "tg-g", model="fake-gpt-2", header="tg-models")
    t.ok(r.status == 401 and "tag=tg-models not allowed to access model=fake-gpt-2"
         in error_of(r).get("message", ""), "models: another model is 401", r.text[:200])
    r = chat(env, srv, "tg-g", model="fake-gpt", header="tg-models")
    t.is_eq(r.status, 200, "models: its model is served")

    tag_new(env, srv, name="tg-rpm", rpm_limit=2)
    while time.time() % 60 > 55:  # not across a minute
        time.sleep(0.5)
    got = [chat(env, srv, "tg-g", header="tg-rpm").status for _ in range(3)]
    t.is_eq(got, [200, 200, 429], "rpm: the tag's rpm_limit refuses the third call")
    r = chat(env, srv, "tg-g", header="tg-rpm")
    t.ok("Rate limit exceeded for tag: tg-rpm" in error_of(r).get("message", ""),
         "rpm: in the tag's words", r.text[:200])
    check_tag_books(t, env, "gates", "tg-rpm")


# ---- 6. deleted in flight ----

def deleted(t, env, srv):
    tag_new(env, srv, name="tg-del", max_budget=1,
            model_max_budget={"fake-gpt": {"budget_limit": 1}})
    out = {}
    env.upstream.reset()
    th = threading.Thread(target=lambda: out.setdefault(
        "r", chat(env, srv, "tg-del-u", tags=["tg-del"], fake={"delay": 1.5})))
    th.start()
    H.wait_for(lambda: any(q.get("json", {}).get("user") == "tg-del-u"
                           for q in env.upstream.requests()), timeout=10)
    held = env.sql("SELECT tags FROM reservations WHERE user_id = 'tg-del-u'")
    t.is_eq([json.loads(x[0]) for x in held], [{"tg-del": 3}],
            "deleted: the hold names the tag (budgeted, on its model row)")
    r = env.request("POST", "/tag/delete", body={"name": "tg-del"}, server=srv)
    t.is_eq(r.status, 200, "deleted: /tag/delete while its call is in flight")
    th.join(30)
    t.is_eq(out.get("r") and out["r"].status, 200, "deleted: the call is served")
    c = env.customer_row("tg-del-u")
    t.is_eq((c["spend"], c["reserved"]), (CALL_COST, Decimal(0)),
            "deleted: charged to its customer, nothing held")
    t.is_eq(model_row(env, "tag", "tg-del", "fake-gpt"), None,
            "deleted: the tag's model row went with it")
    r = chat(env, srv, "tg-del-u", tags=["tg-del"])
    meta = (env.ledger_rows("tg-del-u") or [{}])[-1].get("metadata") or {}
    t.ok(r.status == 200 and meta.get("unknown_tags") == ["tg-del"],
         "deleted: a later call names an unknown tag", repr(meta))
    tag_new(env, srv, name="tg-del")
    t.is_eq((tag_row(env, "tg-del") or {}).get("spend"), Decimal(0),
            "deleted: made again, it starts from 0")


# ---- 8. alerts ----

def alerts(t, env):
    rec = H.Receiver().up()
    cfg = env.config(models=[env.model("fake-gpt")],
                     general_settings={"alerting": ["webhook"]})
    srv = env.start_lighttpd(env.write_config("alerts", cfg), name="alerts", max_procs=2,
                             extra_env={"WEBHOOK_URL": rec.url})
    b = body("tg-alert-u", tags=["tg-alert"])
    raw = json.dumps(b).encode()
    hold = cost(len(raw), 20)
    tag_new(env, srv, name="tg-alert", max_budget=float(hold + CALL_COST / 2),
            soft_budget=float(CALL_COST / 2))
    first = env.request("POST", "/chat/completions", body=raw, server=srv)
    second = env.request("POST", "/chat/completions", body=raw, server=srv)
    t.is_eq((first.status, second.status), (200, 429), "alerts: served, then refused")

    def tag_events():
        return [e for e, _ in rec.events() if e.get("event_group") == "tag"]
    got = H.wait_for(lambda: len(tag_events()) >= 2 and tag_events(), timeout=15) or []
    kinds = sorted(e.get("event") for e in got)
    t.is_eq(kinds, ["budget_crossed", "soft_budget_crossed"],
            "alerts: the tag's soft budget and its refusal raise its events", repr(got)[:400])
    t.ok(all(e.get("tag") == "tg-alert" and "Tag=tg-alert" in e.get("event_message", "")
             and e.get("customer_id") is None for e in got),
         "alerts: each names the tag (event_group tag)", repr(got)[:400])
    srv.stop()
    rec.down()


# ---- 7. a killed worker, a spooled settlement ----

def killed_worker(t, env):
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": {"hold_grace": 1, "reclaim_interval": 1}})
    srv = env.start_lighttpd(env.write_config("kill", cfg), name="kill", max_procs=1)
    srv.expect_child_deaths = True
    tag_new(env, srv, name="tg-kill", max_budget=1, budget_duration="1d",
            model_max_budget={"fake-gpt": {"budget_limit": 1, "time_period": "1d"}})
    env.upstream.reset()
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", chat(env, srv, None, tags=["tg-kill"], fake={"delay": 2}, timeout=30)))
    th.start()
    reached = H.wait_for(lambda: env.upstream.requests(), timeout=10)
    t.ok(reached, "killed: the call reached the upstream")
    held = env.sql("SELECT amount, tags, user_id FROM reservations")
    t.is_eq([(json.loads(x[1]), x[2]) for x in held], [({"tg-kill": 3}, "")],
            "killed: one hold, of the tag alone (no customer, no key)")
    amount = dec(held[0][0]) if held else None
    t.is_eq((tag_row(env, "tg-kill") or {}).get("reserved"), amount,
            "killed: held on the tag")
    for pid in srv.program_pids("chat_completions"):
        os.kill(pid, signal.SIGKILL)
    th.join(30)

    def reclaimed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.sql("SELECT status, spend, metadata FROM spend_logs s JOIN"
                       " spend_log_tags t ON t.request_id = s.request_id"
                       " WHERE t.tag = 'tg-kill'")
    rows = H.wait_for(reclaimed, timeout=HOLD_TIMEOUT + 15, interval=0.5) or []
    t.is_eq([(x[0], dec(x[1])) for x in rows], [("unsettled", amount)],
            "killed: one unsettled row, indexed under the tag")
    row = tag_row(env, "tg-kill") or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (amount, Decimal(0)),
            "killed: the tag charged the hold and released it")
    mrow = model_row(env, "tag", "tg-kill", "fake-gpt") or {}
    t.is_eq((mrow.get("spend"), mrow.get("reserved")), (amount, Decimal(0)),
            "killed: ... on its model row too")
    meta = json.loads(rows[0][2]) if rows else {}
    t.ok("tg-kill" in (meta.get("tag_period_end") or {})
         and "tg-kill" in (meta.get("tag_model_period_end") or {})
         and meta.get("tags") == ["tg-kill"],
         "killed: the row records the tag and its periods", repr(meta))
    srv.stop()


def spooled_after_reclaim(t, env):
    spool = os.path.join(env.tmp, "spool")
    aside = os.path.join(env.tmp, "spool-aside")
    os.makedirs(aside, exist_ok=True)
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT)],
                     extra={"tollgate_settings": {"hold_grace": 1, "reclaim_interval": 1,
                                                  "spool_dir": spool}})
    srv = env.start_lighttpd(env.write_config("spool", cfg), name="spool", max_procs=2)
    tag_new(env, srv, name="tg-spool", max_budget=1, budget_duration="1d")
    user = "tg-spooled"
    b = body(user, tags=["tg-spool"], fake={"delay": 1.5})
    raw = json.dumps(b).encode()
    hold = cost(len(raw), 20)
    env.upstream.reset()
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", env.request("POST", "/chat/completions", body=raw, server=srv, timeout=30)))
    th.start()
    H.wait_for(lambda: any(q.get("json", {}).get("user") == user
                           for q in env.upstream.requests()), timeout=10)
    env.db.stop()
    th.join(30)
    t.is_eq(out.get("r") and out["r"].status, 200, "spooled: answered with the database down")
    files = H.spool_files(spool)
    t.is_eq(len(files), 1, "spooled: one settlement in the spool")
    for f in files:
        os.rename(f, os.path.join(aside, os.path.basename(f)))
    env.db.start()

    def charged():
        env.request("GET", "/health/readiness", server=srv, key=None)
        return env.ledger_rows(user)
    rows = H.wait_for(charged, timeout=HOLD_TIMEOUT + 15, interval=0.5) or []
    t.is_eq([(x["status"], x["spend"]) for x in rows], [("unsettled", hold)],
            "spooled: meanwhile the expired hold is charged as unsettled")
    t.is_eq((tag_row(env, "tg-spool") or {}).get("spend"), hold,
            "spooled: ... to the tag too")
    for f in files:
        os.rename(os.path.join(aside, os.path.basename(f)), f)

    def replayed():
        env.request("GET", "/health/readiness", server=srv, key=None)
        rows = env.ledger_rows(user)
        return rows if rows and rows[0]["status"] != "unsettled" else None
    rows = H.wait_for(replayed, timeout=15, interval=0.5) or env.ledger_rows(user)
    t.is_eq([(x["status"], x["spend"]) for x in rows], [("success", CALL_COST)],
            "spooled: the replay replaced it with the real charge")
    env.request("GET", "/health/readiness", server=srv, key=None)
    check_tag_books(t, env, "spooled", "tg-spool")
    t.is_eq((tag_row(env, "tg-spool") or {}).get("spend"), CALL_COST,
            "spooled: the tag corrected once, to the real charge")
    t.ok(not H.spool_files(spool), "spooled: spool empty")
    srv.stop()


def main(t, env):
    cfg = env.config(models=[env.model("fake-gpt", timeout=HOLD_TIMEOUT),
                             env.model("fake-gpt-2")])
    srv = env.start_lighttpd(env.write_config("main", cfg), max_procs=6)
    for name, case in (("the routes", routes), ("fifty calls", fifty),
                       ("every route", every_route), ("a period", period),
                       ("blocked, models, rate limits", gates),
                       ("deleted in flight", deleted)):
        t.diag("case: %s" % name)
        case(t, env, srv)
    srv.stop()
    t.diag("case: a killed worker")
    killed_worker(t, env)
    t.diag("case: a spooled settlement whose hold was reclaimed")
    spooled_after_reclaim(t, env)
    t.diag("case: alerts")
    alerts(t, env)


if __name__ == "__main__":
    H.run(main)
