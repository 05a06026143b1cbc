#!/usr/bin/env python3
"""reports: /spend/logs and /customer/daily/activity over the ledger (SPEC 8).

Ledger rows are inserted on several days directly with SQL (and a few come
from real chats, on every call type); the reports must equal the ledger's
own sums per day, per model, per customer and per call type (the LLM
route), exactly, and their filters, paging and errors behave as SPEC 8
says.
"""

import collections
import json
import os
import random
import sys
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec, sql_quote  # noqa: E402

LOG_KEYS = {"request_id", "end_user", "model", "model_id", "api_key", "call_type", "status",
            "spend", "prompt_tokens", "completion_tokens", "total_tokens", "start_time",
            "end_time", "request_duration_ms", "api_base", "metadata"}
METRIC_KEYS = {"spend", "prompt_tokens", "completion_tokens", "total_tokens", "api_requests",
               "successful_requests", "failed_requests"}
DAYS = ["2026-03-%02d" % d for d in (1, 2, 4, 7, 8)]
USERS = ["rep-a", "rep-b", "rep-c", "rep-d"]
MODELS = ["fake-gpt", "fake-gpt-2", "other-model"]
CALL_TYPES = ["acompletion", "aresponses", "aembedding", "atext_completion"]


def q(path, **params):
    return path + ("?" + urllib.parse.urlencode(params) if params else "")


def seed_ledger(env):
    """Rows on several days; returns them as dicts."""
    rnd = random.Random(7)
    rows = []
    n = 0
    for day in DAYS:
        for _ in range(rnd.randint(3, 9)):
            n += 1
            user = rnd.choice(USERS)
            model = rnd.choice(MODELS)
            call_type = rnd.choice(CALL_TYPES)
            pt, ct = rnd.randint(1, 500), rnd.randint(0, 300)
            spend = Decimal(rnd.randint(0, 10 ** 7)) / Decimal(10 ** 10) * rnd.randint(1, 9)
            status = "success" if rnd.random() < 0.8 else "failure"
            hh, mm, ss = rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59)
            start = "%s %02d:%02d:%02d.%06d" % (day, hh, mm, ss, n)
            rows.append({"request_id": "rep-req-%04d" % n, "end_user": user, "model": model,
                         "call_type": call_type,
                         "status": status, "spend": spend, "prompt_tokens": pt,
                         "completion_tokens": ct, "total_tokens": pt + ct, "start": start,
                         "day": day})
    values = ",".join(
        "(%s, %s, %s, 'fake-id', 'hash', %s, %s, %s, %d, %d, %d, %s, %s, 5,"
        " 'http://up', %s)" % (
            sql_quote(r["request_id"]), sql_quote(r["end_user"]), sql_quote(r["model"]),
            sql_quote(r["call_type"]), sql_quote(r["status"]), str(r["spend"]), r["prompt_tokens"], r["completion_tokens"],
            r["total_tokens"], sql_quote(r["start"]), sql_quote(r["start"]),
            sql_quote(json.dumps({"n": r["request_id"]})))
        for r in rows)
    env.sql("INSERT INTO spend_logs (request_id, end_user, model, model_id, api_key, call_type,"
            " status, spend, prompt_tokens, completion_tokens, total_tokens, start_time,"
            " end_time, request_duration_ms, api_base, metadata) VALUES " + values)
    return rows


def spend_logs(t, env, rows):
    r = env.request("GET", q("/spend/logs", end_user="rep-c", page_size=1000))
    t.is_eq(r.status, 200, "spend/logs: 200")
    want = sorted((x for x in rows if x["end_user"] == "rep-c"),
                  key=lambda x: (x["start"], x["request_id"]), reverse=True)
    got = r.json if isinstance(r.json, list) else []
    t.is_eq([x.get("request_id") for x in got], [x["request_id"] for x in want],
            "spend/logs end_user: that customer's rows, newest first")
    t.ok(all(LOG_KEYS <= set(x) for x in got), "spend/logs rows carry the SPEC 3 fields",
         "missing %s" % (sorted(LOG_KEYS - set(got[0])) if got else "no rows"))
    t.is_eq([dec(x.get("spend")) for x in got], [x["spend"] for x in want],
            "spend/logs: money exact")
    if got:
        t.ok(isinstance(got[0]["spend"], (int, Decimal)), "spend is a JSON number",
             "got %r" % (got[0]["spend"],))
        t.is_eq(got[0]["metadata"], {"n": want[0]["request_id"]}, "metadata is the JSON object")
        t.is_eq(got[0]["start_time"], want[0]["start"][:10] + "T" + want[0]["start"][11:19] + "Z",
                "start_time in ISO 8601 UTC")
        t.is_eq(got[0]["total_tokens"], want[0]["total_tokens"], "token counts are integers")

    # date range: one day, inclusive on both ends
    r = env.request("GET", q("/spend/logs", start_date=DAYS[1], end_date=DAYS[2],
                             page_size=1000))
    want = sorted((x for x in rows if DAYS[1] <= x["day"] <= DAYS[2]),
                  key=lambda x: (x["start"], x["request_id"]), reverse=True)
    t.is_eq([x.get("request_id") for x in r.json or []], [x["request_id"] for x in want],
            "spend/logs start_date..end_date (days inclusive)")
    r = env.request("GET", q("/spend/logs", end_user="rep-b", start_date=DAYS[3],
                             end_date=DAYS[3]))
    want = [x["request_id"] for x in sorted(rows, key=lambda x: (x["start"], x["request_id"]),
                                            reverse=True)
            if x["end_user"] == "rep-b" and x["day"] == DAYS[3]]
    t.is_eq([x.get("request_id") for x in r.json or []], want, "spend/logs end_user + one day")
    r = env.request("GET", q("/spend/logs", request_id="rep-req-0003"))
    t.is_eq([x.get("request_id") for x in r.json or []], ["rep-req-0003"],
            "spend/logs request_id")
    r = env.request("GET", q("/spend/logs", request_id="rep-req-0003", end_user="nobody"))
    t.is_eq(r.json, [], "spend/logs request_id with another end_user: nothing")
    r = env.request("GET", q("/spend/logs", request_id="no-such-request"))
    t.is_eq((r.status, r.json), (200, []), "spend/logs unknown request_id: []")

    # paging: pages of 4 cover everything once, newest first
    allrows = sorted(rows + env_rows(env), key=lambda x: (x["start"], x["request_id"]),
                     reverse=True)
    seen = []
    for page in range(1, 200):
        r = env.request("GET", q("/spend/logs", page=page, page_size=4))
        if r.status != 200 or not r.json:
            break
        t.ok(len(r.json) <= 4, "spend/logs page %d <= page_size" % page)
        seen.extend(x["request_id"] for x in r.json)
    t.is_eq(seen, [x["request_id"] for x in allrows], "spend/logs pages cover the ledger once")
    r = env.request("GET", "/spend/logs")
    t.is_eq(len(r.json or []), min(100, len(allrows)), "spend/logs default page of 100")

    for params, param in (({"start_date": "2026-13-01"}, "start_date"),
                          ({"end_date": "yesterday"}, "end_date"),
                          ({"start_date": "2026-3-1"}, "start_date"),
                          ({"page": 0}, "page"), ({"page_size": 1001}, "page_size"),
                          ({"page_size": "x"}, "page_size"), ({"end_user": "x" * 256}, "end_user")):
        r = env.request("GET", q("/spend/logs", **params))
        env.check_error(r, 422, "invalid_request_error", param=param,
                        what="spend/logs %r" % (params,))
    r = env.request("POST", "/spend/logs", body={})
    env.check_error(r, 405, "invalid_request_error", what="POST /spend/logs")
    r = env.request("GET", "/spend/logs", key=None)
    env.check_error(r, 401, "auth_error", what="spend/logs without a key")


def env_rows(env):
    """Ledger rows written by the chats of this test (not seeded)."""
    out = []
    for rid, start in env.sql("SELECT request_id, DATE_FORMAT(start_time, '%Y-%m-%d %H:%i:%s.%f')"
                              " FROM spend_logs WHERE request_id NOT LIKE 'rep-req-%'"):
        out.append({"request_id": rid, "start": start})
    return out


def sums(env, where):
    """The ledger's own sums per (day, model, end_user, call_type) under
    where; a NULL model or call type is reported under the name ""."""
    out = {}
    for day, model, user, call_type, spend, pt, ct, tt, n, ok in env.sql(
            "SELECT DATE(start_time), model, end_user, call_type, SUM(spend),"
            " SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens), COUNT(*),"
            " SUM(status = 'success') FROM spend_logs WHERE %s GROUP BY 1, 2, 3, 4" % where):
        key = (day, model if model is not None else "", user,
               call_type if call_type is not None else "")
        v = (dec(spend), int(pt), int(ct), int(tt), int(n), int(ok))
        old = out.get(key, (Decimal(0), 0, 0, 0, 0, 0))
        out[key] = tuple(a + b for a, b in zip(old, v))
    return out


def expected(groups):
    def add(acc, v):
        return tuple(a + b for a, b in zip(acc, v))
    zero = (Decimal(0), 0, 0, 0, 0, 0)
    per_day = collections.defaultdict(lambda: zero)
    per_model = collections.defaultdict(lambda: zero)
    per_user = collections.defaultdict(lambda: zero)
    per_call = collections.defaultdict(lambda: zero)
    for (day, model, user, call_type), v in groups.items():
        per_day[day] = add(per_day[day], v)
        per_model[(day, model)] = add(per_model[(day, model)], v)
        per_user[(day, user)] = add(per_user[(day, user)], v)
        per_call[(day, call_type)] = add(per_call[(day, call_type)], v)
    return per_day, per_model, per_user, per_call


def as_tuple(m):
    return (dec(m.get("spend")), m.get("prompt_tokens"), m.get("completion_tokens"),
            m.get("total_tokens"), m.get("api_requests"), m.get("successful_requests"))


def check_activity(t, env, what, params, where):
    params = dict(params)
    params.setdefault("page_size", 100)
    r = env.request("GET", q("/customer/daily/activity", **params))
    if not t.is_eq(r.status, 200, "%s: 200" % what):
        t.diag(r.text[:400])
        return None
    body = r.json if isinstance(r.json, dict) else {}
    per_day, per_model, per_user, per_call = expected(sums(env, where))
    results = body.get("results") or []
    t.is_eq([x.get("date") for x in results], sorted(per_day), "%s: one result per day, oldest"
            " first" % what)
    ok_day = ok_model = ok_user = ok_call = ok_failed = True
    for x in results:
        d = x.get("date")
        m = x.get("metrics") or {}
        ok_day &= set(m) >= METRIC_KEYS and as_tuple(m) == per_day.get(d)
        ok_failed &= m.get("failed_requests") == m.get("api_requests", 0) - m.get(
            "successful_requests", 0)
        models = (x.get("breakdown") or {}).get("models") or {}
        ok_model &= {(d, k): as_tuple(v.get("metrics") or {}) for k, v in models.items()} == \
            {k: v for k, v in per_model.items() if k[0] == d}
        ents = (x.get("breakdown") or {}).get("entities") or {}
        ok_user &= {(d, k): as_tuple(v.get("metrics") or {}) for k, v in ents.items()} == \
            {k: v for k, v in per_user.items() if k[0] == d}
        calls = (x.get("breakdown") or {}).get("call_types") or {}
        ok_call &= {(d, k): as_tuple(v.get("metrics") or {}) for k, v in calls.items()} == \
            {k: v for k, v in per_call.items() if k[0] == d}
    t.ok(ok_day, "%s: each day's metrics equal the ledger's sums" % what)
    t.ok(ok_model, "%s: per-model breakdown equals the ledger's sums" % what)
    t.ok(ok_user, "%s: per-customer breakdown equals the ledger's sums" % what)
    t.ok(ok_call, "%s: per-call-type (route) breakdown equals the ledger's sums" % what)
    t.ok(ok_failed, "%s: failed = requests - successful" % what)
    meta = body.get("metadata") or {}
    tot = (Decimal(0), 0, 0, 0, 0, 0)
    for v in per_day.values():
        tot = tuple(a + b for a, b in zip(tot, v))
    t.is_eq((dec(meta.get("total_spend")), meta.get("total_prompt_tokens"),
             meta.get("total_completion_tokens"), meta.get("total_tokens"),
             meta.get("total_api_requests"), meta.get("total_successful_requests")), tot,
            "%s: metadata totals equal the ledger's" % what)
    return body


def daily_activity(t, env, rows):
    check_activity(t, env, "activity, everything", {}, "1")
    check_activity(t, env, "activity, one customer", {"end_user_ids": "rep-a"},
                   "end_user = 'rep-a'")
    check_activity(t, env, "activity, two customers", {"end_user_ids": "rep-a,rep-c,rep-a"},
                   "end_user IN ('rep-a', 'rep-c')")
    check_activity(t, env, "activity, a date range",
                   {"start_date": DAYS[1], "end_date": DAYS[3]},
                   "start_time >= '%s' AND start_time < '%s' + INTERVAL 1 DAY"
                   % (DAYS[1], DAYS[3]))
    check_activity(t, env, "activity, a model and a customer",
                   {"model": "fake-gpt-2", "end_user_ids": "rep-b"},
                   "model = 'fake-gpt-2' AND end_user = 'rep-b'")
    body = check_activity(t, env, "activity, /end_user alias", {"end_user_ids": "rep-b"},
                          "end_user = 'rep-b'")
    t.ok(body is not None, "/end_user/daily/activity answers")
    r = env.request("GET", q("/end_user/daily/activity", end_user_ids="rep-b"))
    t.is_eq(r.status, 200, "/end_user/daily/activity: 200")

    # paging over days
    ndays = len(expected(sums(env, "1"))[0])
    dates = []
    for page in range(1, 20):
        r = env.request("GET", q("/customer/daily/activity", page=page, page_size=2))
        body = r.json if isinstance(r.json, dict) else {}
        meta = body.get("metadata") or {}
        t.is_eq((meta.get("page"), meta.get("total_pages"), meta.get("has_more")),
                (page, (ndays + 1) // 2, page < (ndays + 1) // 2),
                "activity page %d: page, total_pages, has_more" % page)
        dates.extend(x["date"] for x in body.get("results") or [])
        if not meta.get("has_more"):
            break
    t.is_eq(dates, sorted(expected(sums(env, "1"))[0]), "activity pages cover every day once")
    r = env.request("GET", q("/customer/daily/activity", end_user_ids="nobody-at-all"))
    body = r.json if isinstance(r.json, dict) else {}
    t.is_eq((body.get("results"), (body.get("metadata") or {}).get("total_spend"),
             (body.get("metadata") or {}).get("total_pages")), ([], 0, 0),
            "activity of a customer without rows: empty")
    for params, param in (({"start_date": "2026-02-30"}, "start_date"),
                          ({"end_date": "03/01/2026"}, "end_date"),
                          ({"page": 0}, "page"), ({"page_size": 0}, "page_size"),
                          ({"end_user_ids": "a," + "x" * 256}, "end_user_ids")):
        r = env.request("GET", q("/customer/daily/activity", **params))
        env.check_error(r, 422, "invalid_request_error", param=param,
                        what="activity %r" % (params,))


ODD_DAY = "2026-03-10"
ODD_USERS = ['rep-"q"', "rep-back\\slash", "rep-\u00e9t\u00e9", "rep-tab\there", "rep-ctl\x01",
             "rep-\u65e5\u672c"]
ODD_MODELS = ['we"ird\\model', "m\u00f6del-\u00fc", None, "ctl\x1fmodel", "fake-gpt", "a/b"]


def odd_names(t, env):
    """Names that JSON must escape or that are not ASCII, a NULL model, and
    exact bounds inside a day: the report's text keeps every name, in strcmp
    order, and its sums stay the ledger's."""
    rnd = random.Random(11)
    values = []
    for n in range(40):
        # Every name, and most pairs of them.
        user = ODD_USERS[n % len(ODD_USERS)]
        model = ODD_MODELS[(n // 3) % len(ODD_MODELS)]
        pt, ct = rnd.randint(1, 500), rnd.randint(0, 300)
        start = "%s %02d:%02d:00.%06d" % (ODD_DAY, rnd.randint(0, 23), rnd.randint(0, 59), n)
        values.append("(%s, %s, %s, 'fake-id', 'hash', 'completion', %s, %s, %d, %d, %d, %s, %s,"
                      " 5, 'http://up', NULL)" % (
                          sql_quote("rep-odd-%03d" % n), sql_quote(user),
                          "NULL" if model is None else sql_quote(model),
                          sql_quote("success" if n % 5 else "failure"),
                          str(Decimal(rnd.randint(0, 10 ** 6)) / Decimal(10 ** 10)),
                          pt, ct, pt + ct, sql_quote(start), sql_quote(start)))
    env.sql("INSERT INTO spend_logs (request_id, end_user, model, model_id, api_key, call_type,"
            " status, spend, prompt_tokens, completion_tokens, total_tokens, start_time,"
            " end_time, request_duration_ms, api_base, metadata) VALUES " + ",".join(values))

    day_where = "start_time >= '%s' AND start_time < '%s' + INTERVAL 1 DAY" % (ODD_DAY, ODD_DAY)
    check_activity(t, env, "activity, odd names", {"start_date": ODD_DAY, "end_date": ODD_DAY},
                   day_where)
    r = env.request("GET", q("/customer/daily/activity", start_date=ODD_DAY, end_date=ODD_DAY))
    pairs = {}
    try:
        # Keys in the order of the text, and a strict parse: a raw control
        # character in a string would be refused.
        doc = json.loads(r.text, object_pairs_hook=lambda kv: kv, parse_float=Decimal)
        day = dict(dict(doc)["results"][0])
        bd = dict(day["breakdown"])
        pairs = {"models": [k for k, _ in bd["models"]], "entities": [k for k, _ in bd["entities"]]}
    except (ValueError, KeyError, IndexError, TypeError) as e:
        t.fail("activity, odd names: the answer parses", str(e), r.text[:300])
    groups = sums(env, day_where)
    want_models = sorted(set(k[1] for k in groups), key=lambda x: x.encode())
    want_users = sorted(set(k[2] for k in groups), key=lambda x: x.encode())
    t.is_eq(pairs.get("models"), want_models,
            "activity, odd names: every model once, in byte order (NULL as \"\")")
    t.is_eq(pairs.get("entities"), want_users,
            "activity, odd names: every end user once, in byte order")
    t.ok(b'"rep-ctl\\u0001"' in r.body and b'"rep-\\"q\\""' in r.body and
         b'"rep-tab\\there"' in r.body and b'"ctl\\u001fmodel"' in r.body and
         '"rep-\u00e9t\u00e9"'.encode() in r.body and b'"a/b"' in r.body,
         "activity, odd names: control characters as \\u00xx, quotes and backslashes"
         " escaped, '/' and UTF-8 as they are")

    # Bounds inside days: the days touched, only the rows within.
    check_activity(t, env, "activity, times within days",
                   {"start_date": DAYS[1] + "T12:00:00Z", "end_date": DAYS[3] + "T06:30:00Z"},
                   "start_time >= '%s 12:00:00' AND start_time < '%s 06:30:01'"
                   % (DAYS[1], DAYS[3]))
    check_activity(t, env, "activity, a model of everyone", {"model": "fake-gpt"},
                   "model = 'fake-gpt'")
    check_activity(t, env, "activity, one model named with a '/', one day",
                   {"start_date": ODD_DAY, "end_date": ODD_DAY, "model": "a/b"},
                   day_where + " AND model = 'a/b'")


def main(t, env):
    cfg = env.write_config("main", env.config())
    env.start_lighttpd(cfg, max_procs=2)
    for user in ("rep-a", "rep-live"):
        r = env.chat(user=user, fake={"usage": {"prompt_tokens": 11, "completion_tokens": 7}})
        t.is_eq(r.status, 200, "a real chat for %s" % user)
    rows = seed_ledger(env)
    spend_logs(t, env, rows)
    odd_names(t, env)
    daily_activity(t, env, rows)


if __name__ == "__main__":
    H.run(main)
