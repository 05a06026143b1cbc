#!/usr/bin/env python3
"""lifecycle: the customer and budget lifecycle endpoints (SPEC 8, issue 7).

/customer/update (explicit false, 0 and null; private copies of a shared
tier; moving tiers), /customer/delete (all or nothing, the ledger kept),
/customer/list (paging, filters, search, x-total-count), /customer/block
and /customer/unblock (effective at once on every worker process),
/budget/update, /budget/info, /budget/list (with customer_count and
private_for), /budget/delete, budget periods that advance, and the
/end_user/... aliases.
"""

import datetime
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec, sql_quote  # noqa: E402

CUSTOMER_KEYS = {"user_id", "blocked", "alias", "spend", "allowed_model_region",
                 "default_model", "budget_id", "litellm_budget_table", "reserved",
                 "spend_reset_at"}
BUDGET_ROW_KEYS = {"budget_id", "max_budget", "soft_budget", "max_parallel_requests",
                   "tpm_limit", "rpm_limit", "model_max_budget", "budget_duration",
                   "budget_reset_at", "created_at", "created_by", "updated_at", "updated_by"}


def post(env, path, body, **kw):
    return env.request("POST", path, body=body, **kw)


def get(env, path, **kw):
    return env.request("GET", path, **kw)


def iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def customer_update(t, env):
    r = env.customer_new(user_id="up-1", alias="first", blocked=True, max_budget=5)
    t.is_eq(r.status, 200, "update: setup customer")
    r = post(env, "/customer/update", {"user_id": "up-1", "blocked": False, "max_budget": 0,
                                       "alias": "second"})
    t.is_eq(r.status, 200, "customer/update: 200")
    c = r.json if isinstance(r.json, dict) else {}
    t.ok(CUSTOMER_KEYS <= set(c), "customer/update returns the customer object",
         "missing %s" % sorted(CUSTOMER_KEYS - set(c)))
    t.ok(c.get("blocked") is False, "customer/update: explicit false honoured",
         "got %r" % (c.get("blocked"),))
    bt = c.get("litellm_budget_table") or {}
    t.is_eq(dec(bt.get("max_budget")), Decimal(0), "customer/update: explicit 0 honoured")
    t.is_eq(c.get("alias"), "second", "customer/update: alias changed")
    r = env.chat(user="up-1")
    t.is_eq(r.status, 429, "after max_budget 0 the customer is refused")
    # Fields not sent stay; null clears.
    r = post(env, "/customer/update", {"user_id": "up-1", "alias": None, "soft_budget": 1})
    c = r.json if isinstance(r.json, dict) else {}
    t.is_eq(r.status, 200, "customer/update alias null: 200")
    t.ok("alias" in c and c["alias"] is None, "customer/update: alias null clears it")
    bt = c.get("litellm_budget_table") or {}
    t.is_eq((dec(bt.get("max_budget")), dec(bt.get("soft_budget"))), (Decimal(0), Decimal(1)),
            "customer/update: unsent max_budget stays, soft_budget set")
    r = post(env, "/customer/update", {"user_id": "up-1", "max_budget": None})
    bt = (r.json or {}).get("litellm_budget_table") or {}
    t.ok("max_budget" in bt and bt["max_budget"] is None,
         "customer/update: max_budget null clears the limit")
    t.is_eq(env.chat(user="up-1").status, 200, "without a max_budget the customer chats again")
    budget_rows = env.sql("SELECT COUNT(*) FROM budgets WHERE private_for = 'up-1'")[0][0]
    t.is_eq(budget_rows, "1", "updates of a private budget change it in place (one row)")

    # A shared tier: the customer gets a private copy; the tier stays.
    r = env.budget_new(budget_id="shared-tier", max_budget=10, rpm_limit=100,
                       budget_duration="30d")
    t.is_eq(r.status, 200, "update: shared tier created")
    tier_before = r.json
    for u in ("sh-1", "sh-2"):
        env.customer_new(user_id=u, budget_id="shared-tier")
    r = post(env, "/end_user/update", {"user_id": "sh-1", "max_budget": 3})
    t.is_eq(r.status, 200, "/end_user/update is /customer/update")
    c = r.json if isinstance(r.json, dict) else {}
    bt = c.get("litellm_budget_table") or {}
    t.ok(c.get("budget_id") not in (None, "shared-tier"),
         "budget fields on a shared tier's customer give it a private budget",
         "budget_id %r" % (c.get("budget_id"),))
    t.is_eq((dec(bt.get("max_budget")), bt.get("rpm_limit"), bt.get("budget_duration")),
            (Decimal(3), 100, "30d"), "the private copy keeps the tier's other fields")
    r = post(env, "/budget/info", {"budgets": ["shared-tier"]})
    tier_after = (r.json or [None])[0] if isinstance(r.json, list) else None
    t.is_eq(tier_after, tier_before, "the shared tier itself is unchanged")
    r = env.customer_info("sh-2")
    t.is_eq(((r.json or {}).get("litellm_budget_table") or {}).get("max_budget"), 10,
            "another customer on the tier still sees the tier's max_budget")

    # Moving tiers; off a tier; unknown tier; both at once.
    r = post(env, "/customer/update", {"user_id": "sh-1", "budget_id": "shared-tier"})
    t.is_eq(((r.json or {}).get("budget_id"), r.status), ("shared-tier", 200),
            "budget_id moves the customer back to the tier")
    t.is_eq(env.sql("SELECT COUNT(*) FROM budgets WHERE private_for = 'sh-1'")[0][0], "0",
            "moving to a tier drops the private budget")
    r = post(env, "/customer/update", {"user_id": "sh-1", "budget_id": None})
    c = r.json if isinstance(r.json, dict) else {}
    t.ok(r.status == 200 and c.get("budget_id") is None and c.get("litellm_budget_table") is None,
         "budget_id null takes the customer off its tier", repr(c))
    r = post(env, "/customer/update", {"user_id": "sh-1", "budget_id": "no-such-tier"})
    env.check_error(r, 400, "invalid_request_error", param="budget_id",
                    what="customer/update unknown budget_id")
    t.is_eq(env.customer_row("sh-1")["budget_id"], None, "a refused move changes nothing")
    r = post(env, "/customer/update", {"user_id": "sh-1", "budget_id": "shared-tier",
                                       "tpm_limit": 5})
    env.check_error(r, 422, "invalid_request_error",
                    message="Set either 'max_budget' or 'budget_id', not both.",
                    param="tpm_limit", what="customer/update budget_id + a budget field")
    r = post(env, "/customer/update", {"user_id": "ghost-up", "alias": "x"})
    env.check_error(r, 404, "not_found", message="End User Id=ghost-up does not exist in db",
                    param="user_id", what="customer/update unknown customer")
    t.ok(env.customer_row("ghost-up") is None, "update of an unknown customer creates nothing")
    r = post(env, "/customer/update", {"alias": "x"})
    env.check_error(r, 422, "invalid_request_error", param="user_id",
                    what="customer/update without user_id")
    r = post(env, "/customer/update", {"user_id": "sh-2", "default_model": "no-such-model"})
    env.check_error(r, 422, "invalid_request_error", param="default_model",
                    what="customer/update unknown default_model")
    r = post(env, "/customer/update", {"user_id": "sh-2", "max_budget": -1})
    env.check_error(r, 422, "invalid_request_error", param="max_budget",
                    what="customer/update negative max_budget")
    r = post(env, "/customer/update", {"user_id": "sh-2", "allowed_model_region": "eu",
                                       "default_model": "fake-gpt"})
    c = r.json if isinstance(r.json, dict) else {}
    t.is_eq((c.get("allowed_model_region"), c.get("default_model"), c.get("budget_id")),
            ("eu", "fake-gpt", "shared-tier"),
            "customer/update region and default_model; the tier stays")
    r = get(env, "/customer/update")
    env.check_error(r, 405, "invalid_request_error", what="GET /customer/update")


def customer_delete(t, env):
    for u in ("del-1", "del-2"):
        env.customer_new(user_id=u, max_budget=1)
    r = env.chat(user="del-1", fake={"usage": {"prompt_tokens": 10, "completion_tokens": 10}})
    t.is_eq(r.status, 200, "delete: a chat before")
    rows_before = len(env.ledger_rows("del-1"))
    r = post(env, "/customer/delete", {"user_ids": ["del-1", "del-missing", "del-2", "del-gone"]})
    env.check_error(r, 404, "not_found",
                    message="End User Id(s)=['del-missing', 'del-gone'] do not exist in db",
                    what="customer/delete with missing ids")
    t.ok(env.customer_row("del-1") is not None and env.customer_row("del-2") is not None,
         "customer/delete is all or nothing")
    r = post(env, "/end_user/delete", {"user_ids": ["del-1", "del-2"]})
    t.is_eq(r.status, 200, "/end_user/delete: 200")
    t.is_eq(r.json, {"deleted_customers": 2,
                     "message": "Successfully deleted customers with ids: ['del-1', 'del-2']"},
            "customer/delete answer")
    t.ok(env.customer_row("del-1") is None, "the customer is gone")
    t.is_eq(env.sql("SELECT COUNT(*) FROM budgets WHERE private_for IN ('del-1', 'del-2')")[0][0],
            "0", "its private budget is gone too")
    t.is_eq(len(env.ledger_rows("del-1")), rows_before, "the ledger keeps its rows")
    r = env.customer_info("del-1")
    t.is_eq(r.status, 404, "customer/info of a deleted customer: 404")
    r = env.chat(user="del-1", fake={"usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    t.is_eq(r.status, 200, "a deleted customer who calls again is served")
    c = env.customer_info("del-1").json or {}
    t.is_eq((dec(c.get("spend")), c.get("litellm_budget_table")), (H.cost(1, 1), None),
            "... as a new customer (spend from 0, no old budget)")
    for body, what in (({}, "no user_ids"), ({"user_ids": []}, "empty list"),
                       ({"user_ids": "del-1"}, "a string"), ({"user_ids": [1]}, "a number")):
        r = post(env, "/customer/delete", body)
        env.check_error(r, 422, "invalid_request_error", param="user_ids",
                        what="customer/delete %s" % what)


def customer_list(t, env):
    r = env.budget_new(budget_id="list-tier", max_budget=2)
    ids = ["list-%02d" % i for i in range(7)]
    for i, u in enumerate(ids):
        fields = {"user_id": u}
        if i % 2 == 0:
            fields["budget_id"] = "list-tier"
        if i % 3 == 0:
            fields["blocked"] = True
        r = env.customer_new(**fields)
        t.is_eq(r.status, 200, "list: customer %s" % u)
    all_ids = sorted(x[0] for x in env.sql("SELECT user_id FROM customers"))
    r = get(env, "/customer/list")
    t.is_eq(r.status, 200, "customer/list: 200")
    got = [c.get("user_id") for c in r.json] if isinstance(r.json, list) else None
    t.is_eq(got, all_ids, "customer/list without paging returns every customer, by user_id")
    t.ok(isinstance(r.json, list) and all(CUSTOMER_KEYS <= set(c) for c in r.json),
         "customer/list: customer objects")
    pages = []
    for page in range(1, 100):
        r = get(env, "/customer/list?page=%d&page_size=3" % page)
        if r.status != 200 or not r.json:
            break
        t.ok(len(r.json) <= 3, "page %d holds at most page_size" % page)
        pages.extend(c["user_id"] for c in r.json)
    t.is_eq(pages, all_ids, "pages of 3 cover every customer once, in a stable order")
    r = get(env, "/end_user/list?budget_id=list-tier")
    t.is_eq([c["user_id"] for c in r.json or []], [u for i, u in enumerate(ids) if i % 2 == 0],
            "/end_user/list filter budget_id")
    r = get(env, "/customer/list?blocked=true&budget_id=list-tier")
    t.is_eq([c["user_id"] for c in r.json or []], [u for i, u in enumerate(ids) if i % 6 == 0],
            "customer/list filters blocked and budget_id together")
    r = get(env, "/customer/list?blocked=false")
    t.ok(isinstance(r.json, list) and r.json and all(c["blocked"] is False for c in r.json)
         and "list-01" in [c["user_id"] for c in r.json], "customer/list blocked=false")
    for q, param in (("page=0", "page"), ("page_size=0", "page_size"), ("page=x", "page"),
                     ("blocked=yes", "blocked"), ("page_size=-1", "page_size")):
        r = get(env, "/customer/list?" + q)
        env.check_error(r, 422, "invalid_request_error", param=param,
                        what="customer/list ?%s" % q)
    r = post(env, "/customer/list", {})
    env.check_error(r, 405, "invalid_request_error", what="POST /customer/list")


def block_unblock(t, env):
    cfg = env.write_config("block", env.config())
    srv = env.start_lighttpd(cfg, name="block", max_procs=4)
    env.customer_new(user_id="blk-1", server=srv)
    # Every chat worker serves the customer before the block.
    res = H.parallel(8, [lambda: env.chat(user="blk-1", server=srv) for _ in range(16)])
    t.is_eq([r.status for r in res], [200] * 16, "block: chats before the block pass")
    pids = srv.program_pids("chat_completions")
    t.cmp_ok(len(pids), ">=", 2, "block: several chat worker processes are running")
    r = post(env, "/customer/block", {"user_ids": ["blk-1", "blk-new"]}, server=srv)
    t.is_eq((r.status, r.json), (200, {"blocked_users": ["blk-1", "blk-new"]}),
            "customer/block answer")
    t.is_eq((env.customer_row("blk-new") or {}).get("blocked"), "1",
            "block creates a missing id, blocked")
    res = H.parallel(8, [lambda: env.chat(user="blk-1", server=srv) for _ in range(16)])
    t.is_eq([r.status for r in res], [403] * 16,
            "right after the block every worker process refuses the customer")
    for r in res[:1]:
        env.check_error(r, 403, "permission_error", what="blocked chat")
    t.is_eq(env.chat(user="blk-new", server=srv).status, 403, "the created id is blocked")
    r = post(env, "/end_user/unblock", {"user_ids": ["blk-1", "blk-never"]}, server=srv)
    t.is_eq((r.status, r.json), (200, {"unblocked_users": ["blk-1", "blk-never"]}),
            "/end_user/unblock answer")
    t.is_eq((env.customer_row("blk-1") or {}).get("blocked"), "0", "unblock clears the flag")
    t.ok(env.customer_row("blk-never") is None, "unblock creates nothing")
    res = H.parallel(8, [lambda: env.chat(user="blk-1", server=srv) for _ in range(16)])
    t.is_eq([r.status for r in res], [200] * 16, "after unblock every worker lets it through")
    r = post(env, "/customer/block", {"user_ids": []}, server=srv)
    env.check_error(r, 422, "invalid_request_error", param="user_ids", what="block empty list")


def budgets(t, env):
    r = env.budget_new(budget_id="bu-1", max_budget="1.5", tpm_limit=10, soft_budget=1)
    t.is_eq(r.status, 200, "budget: created")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "max_budget": "2.25", "tpm_limit": 0,
                                     "soft_budget": None})
    t.is_eq(r.status, 200, "budget/update: 200")
    b = r.json if isinstance(r.json, dict) else {}
    t.ok(BUDGET_ROW_KEYS <= set(b), "budget/update returns the budget row",
         "missing %s" % sorted(BUDGET_ROW_KEYS - set(b)))
    t.is_eq((dec(b.get("max_budget")), b.get("tpm_limit"), b.get("soft_budget")),
            (Decimal("2.25"), 0, None), "budget/update: sent fields change, 0 kept, null clears")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "rpm_limit": 7})
    b = r.json if isinstance(r.json, dict) else {}
    t.is_eq((dec(b.get("max_budget")), b.get("tpm_limit"), b.get("rpm_limit")),
            (Decimal("2.25"), 0, 7), "budget/update: unsent fields stay")
    r = post(env, "/budget/update", {"budget_id": "bu-none", "max_budget": 1})
    env.check_error(r, 404, "not_found", param="budget_id", what="budget/update unknown id")
    r = post(env, "/budget/update", {"max_budget": 1})
    env.check_error(r, 422, "invalid_request_error", param="budget_id",
                    what="budget/update without budget_id")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "budget_duration": "3x"})
    env.check_error(r, 422, "invalid_request_error", param="budget_duration",
                    what="budget/update bad duration")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "max_budget": "-2"})
    env.check_error(r, 422, "invalid_request_error", param="max_budget",
                    message="max_budget must be a non-negative finite number. Received: -2",
                    what="budget/update negative max_budget")

    # budget_duration: the budget's and its customers' next reset move.
    r = post(env, "/budget/update", {"budget_id": "bu-1", "tpm_limit": None})
    t.ok(r.status == 200 and "tpm_limit" in r.json and r.json["tpm_limit"] is None,
         "budget/update tpm_limit null clears it")
    env.customer_new(user_id="bu-c1", budget_id="bu-1")
    r = env.chat(user="bu-c1", fake={"usage": {"prompt_tokens": 3, "completion_tokens": 3}})
    t.is_eq(r.status, 200, "a chat on the budget")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "budget_duration": "1d"})
    b = r.json if isinstance(r.json, dict) else {}
    now = datetime.datetime.now(datetime.timezone.utc)
    midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    t.is_eq(b.get("budget_reset_at"), midnight.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "budget_duration 1d: budget_reset_at is the next midnight")
    c = env.customer_info("bu-c1").json or {}
    t.is_eq(c.get("spend_reset_at"), b.get("budget_reset_at"),
            "budget_duration change: the customer's next reset follows")
    t.ok(dec(c.get("spend")) > 0, "budget_duration change keeps the customer's spend")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "budget_duration": "1h"})
    b = r.json if isinstance(r.json, dict) else {}
    hour = (now + datetime.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    t.is_eq(b.get("budget_reset_at"), hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "budget_duration 1h: budget_reset_at is the next hour")
    c = env.customer_info("bu-c1").json or {}
    t.is_eq(c.get("spend_reset_at"), b.get("budget_reset_at"), "... and the customer's too")
    # The period passes: budgets.budget_reset_at advances.
    env.sql("UPDATE budgets SET budget_reset_at = '2020-01-01 00:00:00' WHERE budget_id = 'bu-1'")
    r = post(env, "/budget/info", {"budgets": ["bu-1"]})
    b = (r.json or [{}])[0] if isinstance(r.json, list) else {}
    t.is_eq(b.get("budget_reset_at"), hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "a passed budget_reset_at advances to the current period's end")
    stored = env.sql("SELECT budget_reset_at FROM budgets WHERE budget_id = 'bu-1'")[0][0]
    t.is_eq(stored[:19], hour.strftime("%Y-%m-%d %H:%M:%S"), "... in the database too")
    r = post(env, "/budget/update", {"budget_id": "bu-1", "budget_duration": None})
    b = r.json if isinstance(r.json, dict) else {}
    t.is_eq((b.get("budget_duration"), b.get("budget_reset_at")), (None, None),
            "budget_duration null: no period, no reset")
    t.is_eq((env.customer_info("bu-c1").json or {}).get("spend_reset_at"), None,
            "... for its customers either")

    # info, list
    env.budget_new(budget_id="bu-2", max_budget=9)
    r = post(env, "/budget/info", {"budgets": ["bu-2", "bu-unknown", "bu-1"]})
    t.is_eq([b.get("budget_id") for b in r.json] if isinstance(r.json, list) else r.json,
            ["bu-2", "bu-1"], "budget/info: the known ids, in the order asked")
    r = post(env, "/budget/info", {"budgets": []})
    env.check_error(r, 400, "invalid_request_error", param="budgets", what="budget/info []")
    r = post(env, "/budget/info", {"budgets": "bu-1"})
    env.check_error(r, 422, "invalid_request_error", param="budgets", what="budget/info a string")
    r = post(env, "/budget/info", {"budgets": [3]})
    env.check_error(r, 422, "invalid_request_error", param="budgets", what="budget/info [3]")
    r = post(env, "/budget/info", {})
    env.check_error(r, 422, "invalid_request_error", param="budgets", what="budget/info {}")
    r = get(env, "/budget/list")
    want = sorted(x[0] for x in env.sql("SELECT budget_id FROM budgets"))
    t.is_eq([b.get("budget_id") for b in r.json] if isinstance(r.json, list) else r.json, want,
            "budget/list: every budget, by budget_id")
    t.ok(isinstance(r.json, list) and all(BUDGET_ROW_KEYS <= set(b) for b in r.json),
         "budget/list: budget rows")

    # delete: its customers fall back to no budget, their spend stays.
    env.customer_new(user_id="bu-c2", budget_id="bu-2")
    env.chat(user="bu-c2", fake={"usage": {"prompt_tokens": 4, "completion_tokens": 4}})
    r = post(env, "/budget/delete", {"id": "bu-2"})
    t.is_eq(r.status, 200, "budget/delete: 200")
    t.is_eq(((r.json or {}).get("budget_id"), dec((r.json or {}).get("max_budget"))),
            ("bu-2", Decimal(9)), "budget/delete returns the deleted row")
    c = env.customer_info("bu-c2").json or {}
    t.is_eq((c.get("budget_id"), c.get("litellm_budget_table"), dec(c.get("spend"))),
            (None, None, H.cost(4, 4)), "budget/delete frees its customers; spend stays")
    r = post(env, "/budget/delete", {"id": "bu-2"})
    env.check_error(r, 404, "not_found", param="id", what="budget/delete unknown")
    r = post(env, "/budget/delete", {})
    env.check_error(r, 422, "invalid_request_error", param="id", what="budget/delete no id")
    r = get(env, "/budget/delete")
    env.check_error(r, 405, "invalid_request_error", what="GET /budget/delete")
    r = get(env, "/budget/nothing")
    env.check_error(r, 404, "not_found", what="unknown /budget/ path")
    r = get(env, "/customer/nothing")
    env.check_error(r, 404, "not_found", what="unknown /customer/ path")
    r = get(env, "/budget/list", key="sk-wrong")
    env.check_error(r, 401, "auth_error", what="budget/list with a wrong key")
    r = post(env, "/customer/block", {"user_ids": ["x"]}, key=None)
    env.check_error(r, 401, "auth_error", what="customer/block without a key")


def default_tier_shown(t, env):
    env.budget_new(budget_id="lc-default", max_budget=3)
    cfg = env.write_config("lc-default", env.config(
        litellm_settings={"max_end_user_budget_id": "lc-default"}))
    srv = env.start_lighttpd(cfg, name="lc-default", max_procs=1)
    r = env.customer_new(user_id="dt-shown", server=srv)
    t.is_eq(r.status, 200, "default tier: customer/new 200")
    created = r.json
    t.is_eq(((created or {}).get("litellm_budget_table") or {}).get("budget_id"), "lc-default",
            "customer/new shows the default tier")
    r = env.customer_info("dt-shown", server=srv)
    t.is_eq(r.json, created, "customer/info shows the default tier identically to customer/new")


def list_search(t, env):
    """/customer/list?search= (a substring of the id or the alias, in any
    case; SQL wildcards and quotes are data) and its x-total-count header,
    with which the admin UI finds and pages (issue 10)."""
    env.budget_new(budget_id="sc-tier", max_budget=5)
    made = [("sc-Zqx-1", "Acme Corp"), ("sc-zqx-2", None), ("sc-beta", "ZQX team"),
            ("sc-100%_x", "o'brien"), ("sc-gamma", None)]
    for u, alias in made:
        fields = {"user_id": u, "budget_id": "sc-tier"}
        if alias:
            fields["alias"] = alias
        r = env.customer_new(**fields)
        t.is_eq(r.status, 200, "search: customer %s" % u)
    post(env, "/customer/block", {"user_ids": ["sc-zqx-2"]})

    def listed(query, server=None):
        r = get(env, "/customer/list?" + query, server=server)
        got = [c.get("user_id") for c in r.json] if isinstance(r.json, list) else r.text[:300]
        return r.status, got, r.header("x-total-count")

    t.is_eq(listed("search=zQx"), (200, ["sc-Zqx-1", "sc-beta", "sc-zqx-2"], "3"),
            "search: a substring of the id or of the alias, in any case, by user_id")
    t.is_eq(listed("search=acme"), (200, ["sc-Zqx-1"], "1"), "search: by alias alone")
    t.is_eq(listed("search=%25"), (200, ["sc-100%_x"], "1"), "search: % is data, not a wildcard")
    t.is_eq(listed("search=0%25_"), (200, ["sc-100%_x"], "1"), "search: _ is data too")
    t.is_eq(listed("search=" + H.urllib.parse.quote("o'brien")), (200, ["sc-100%_x"], "1"),
            "search: a quote is data")
    t.is_eq(listed("search=no-such-customer-anywhere"), (200, [], "0"), "search: no match")
    t.is_eq(listed("search=zqx&page=2&page_size=2"), (200, ["sc-zqx-2"], "3"),
            "search with paging: the page, and the count of every match")
    t.is_eq(listed("search=zqx&page=9&page_size=2"), (200, [], "3"),
            "search: a page past the end is empty, the count stays")
    t.is_eq(listed("search=zqx&blocked=false&budget_id=sc-tier"),
            (200, ["sc-Zqx-1", "sc-beta"], "2"), "search with the other filters")
    r = get(env, "/customer/list?search=")
    env.check_error(r, 422, "invalid_request_error", param="search",
                    what="customer/list ?search= (empty)")
    n_all = int(env.sql("SELECT COUNT(*) FROM customers")[0][0])
    r = get(env, "/customer/list?page=1&page_size=2")
    t.is_eq((len(r.json or []), r.header("x-total-count")), (2, str(n_all)),
            "x-total-count: every customer, whatever the page size")
    r = get(env, "/customer/list")
    t.is_eq(r.header("x-total-count"), str(len(r.json or [])),
            "x-total-count without paging: those listed")
    r = get(env, "/customer/list?budget_id=sc-tier&page_size=1")
    t.is_eq(r.header("x-total-count"), "5", "x-total-count with a budget_id filter")


def budget_counts(t, env):
    """/budget/list's customer_count and private_for, which the admin UI
    shows (issue 10); after list_search (its sc-tier customers)."""
    r = env.customer_new(user_id="sc-own", max_budget=1)
    own = (r.json or {}).get("budget_id")
    env.budget_new(budget_id="sc-default", max_budget=2)
    env.customer_new(user_id="sc-d1", budget_id="sc-default")

    def rows(server=None):
        r = get(env, "/budget/list", server=server)
        return {b.get("budget_id"): b for b in r.json} if isinstance(r.json, list) else {}

    b = rows()
    t.is_eq((b.get("sc-tier", {}).get("customer_count"), b.get("sc-tier", {}).get("private_for")),
            (5, None), "budget/list: customer_count of a tier; private_for null")
    t.is_eq((b.get(own, {}).get("customer_count"), b.get(own, {}).get("private_for")),
            (1, "sc-own"), "budget/list: a private budget names its customer")
    t.is_eq(b.get("sc-default", {}).get("customer_count"), 1,
            "budget/list: without a default tier, only a budget's own customers count")
    t.ok(all(isinstance(x.get("customer_count"), int) and BUDGET_ROW_KEYS <= set(x)
             for x in b.values()), "budget/list: every row has its count")
    r = post(env, "/budget/info", {"budgets": ["sc-tier"]})
    t.is_eq([set(x) for x in r.json or []], [BUDGET_ROW_KEYS],
            "budget/info: the budget rows alone, as /budget/new made them")
    # As the default tier, it also has the customers without a budget_id.
    cfg = env.write_config("sc-default", env.config(
        litellm_settings={"max_end_user_budget_id": "sc-default"}))
    srv = env.start_lighttpd(cfg, name="sc-default", max_procs=1)
    no_budget = int(env.sql("SELECT COUNT(*) FROM customers WHERE budget_id IS NULL")[0][0])
    t.cmp_ok(no_budget, ">", 0, "some customers have no budget_id")
    b = rows(server=srv)
    t.is_eq(b.get("sc-default", {}).get("customer_count"), 1 + no_budget,
            "budget/list: the default tier counts the customers without a budget_id too")
    t.is_eq(b.get("sc-tier", {}).get("customer_count"), 5, "... and the other tiers as before")


def region_header(t, env):
    models = [env.model("fake-gpt", region_name="eu"), env.model("fake-gpt-2")]
    cfg = env.write_config("region", env.config(models=models))
    srv = env.start_lighttpd(cfg, name="region", max_procs=1)
    r = env.chat(user="rg-1", model="fake-gpt", server=srv)
    t.is_eq((r.status, r.header("x-litellm-model-region")), (200, "eu"),
            "x-litellm-model-region names the deployment's region_name")
    r = env.chat(user="rg-1", model="fake-gpt-2", server=srv)
    t.is_eq((r.status, r.header("x-litellm-model-region")), (200, None),
            "no x-litellm-model-region for a deployment without region_name")
    s = env.stream_chat(user="rg-1", model="fake-gpt", server=srv)
    t.is_eq((s.status, s.header("x-litellm-model-region")), (200, "eu"),
            "a streamed answer carries x-litellm-model-region too")
    r = post(env, "/customer/new", {"user_id": "rg-us", "allowed_model_region": "us"},
             server=srv)
    r = env.chat(user="rg-us", model="fake-gpt", server=srv)
    t.ok(r.status >= 400 and r.header("x-litellm-model-region") is None,
         "a refused call (region not allowed) has no region header", "status %d" % r.status)


def plain_cgi(t, env, cfg):
    """The grouped programs serve every route of theirs as plain CGI too."""
    r = env.cgi("customer", "POST", "/customer/block", body={"user_ids": ["cgi-blk"]}, config=cfg)
    t.is_eq((r.status, r.json), (200, {"blocked_users": ["cgi-blk"]}), "cgi customer: block")
    r = env.cgi("customer", "GET", "/end_user/list?blocked=true&page_size=1000", config=cfg)
    t.ok(r.status == 200 and "cgi-blk" in [c.get("user_id") for c in r.json or []],
         "cgi customer: /end_user/list")
    r = env.cgi("customer", "GET", "/spend/logs?page_size=1", config=cfg)
    t.is_eq((r.status, isinstance(r.json, list)), (200, True), "cgi customer: /spend/logs")
    r = env.cgi("budget", "GET", "/budget/list", config=cfg)
    t.is_eq((r.status, isinstance(r.json, list)), (200, True), "cgi budget: /budget/list")
    r = env.cgi("budget", "POST", "/budget/delete", body={"id": "cgi-none"}, config=cfg)
    env.check_error(r, 404, "not_found", param="id", what="cgi budget: delete unknown")


def main(t, env):
    cfg = env.write_config("main", env.config())
    env.start_lighttpd(cfg, max_procs=2)
    customer_update(t, env)
    customer_delete(t, env)
    customer_list(t, env)
    budgets(t, env)
    block_unblock(t, env)
    default_tier_shown(t, env)
    list_search(t, env)
    budget_counts(t, env)
    region_header(t, env)
    plain_cgi(t, env, cfg)


if __name__ == "__main__":
    H.run(main)
