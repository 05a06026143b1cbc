#!/usr/bin/env python3
"""metrics: GET /metrics in Prometheus' text format (SPEC 15).

1. Only the master key and tollgate_settings' metrics_key may read it (a
   virtual key, another key, none: 401 in the envelope).
2. After a known load (chat, streamed chat and embeddings calls, refusals
   for a budget and for an unknown model) on three FastCGI processes, the
   exposition, parsed by a strict parser of the text format, says: calls
   by route, model and status as they were answered (an unknown model is
   no label: clients choose the name); tokens by route, model and type,
   and spend by model, equal to the ledger's sums to the last digit; one
   upstream observation per upstream request; histograms cumulative with
   +Inf equal to _count; no hold in flight, nothing spooled, no webhook
   backlog; no account families unless asked for.
3. With metrics_per_customer: each customer's and key's spend and what is
   left of its max_budget, equal to the accounts' rows; a customer id with
   a quote, a backslash and a line feed comes back whole.
4. What a scrape costs the database with 100,000 customers: without the
   accounts a bounded number of rows (the server's Handler_read_* counters), with them one
   line per customer, streamed.
"""

import math
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

METRICS_KEY = "sk-prometheus-scraper"
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
ROUTE_OF = {"acompletion": "/chat/completions", "aembedding": "/embeddings",
            "aresponses": "/responses", "atext_completion": "/completions",
            "anthropic_messages": "/v1/messages"}


class FormatError(ValueError):
    pass


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", s):
        raise FormatError("not a value: %r" % s)
    return Decimal(s)


def unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        if not m:
            raise FormatError("bad labels at %d: %r" % (pos, text))
        if m.group(1) in labels:
            raise FormatError("label %s twice" % m.group(1))
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
    return labels


def parse(text):
    """Prometheus' text format 0.0.4, strictly: {family: {"type", "help",
    "samples": [(name, labels, value)]}}.  Raises FormatError."""
    fams, current, seen_done = {}, None, set()
    if text and not text.endswith("\n"):
        raise FormatError("the last line has no line feed")
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not NAME_RE.match(parts[2]):
                raise FormatError("bad line: %r" % line)
            name = parts[2]
            if name in seen_done:
                raise FormatError("%s again after other families" % name)
            f = fams.setdefault(name, {"type": "untyped", "help": None, "samples": []})
            if f["samples"]:
                raise FormatError("%s: %s after its samples" % (name, parts[1]))
            key = parts[1].lower()
            if f.get(key + "_set"):
                raise FormatError("%s: two %s lines" % (name, parts[1]))
            f[key + "_set"] = True
            if key == "type":
                if parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise FormatError("unknown type %r" % parts[3])
                f["type"] = parts[3]
            else:
                f["help"] = parts[3]
            if current is not None and current != name:
                seen_done.add(current)
            current = name
            continue
        if line.startswith("#") or line == "":
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$", line)
        if not m:
            raise FormatError("bad sample: %r" % line)
        name, labels, value = m.group(1), parse_labels(m.group(3) or ""), parse_value(m.group(4))
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in fams and \
                    fams[name[:-len(suffix)]]["type"] == "histogram":
                fam = name[:-len(suffix)]
        if fam not in fams:
            raise FormatError("%s has no TYPE line" % name)
        if fam in seen_done:
            raise FormatError("%s: samples apart from its family" % name)
        if current is not None and current != fam:
            seen_done.add(current)
        current = fam
        fams[fam]["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] == "counter":
            for s in f["samples"]:
                if s[2] < 0:
                    raise FormatError("counter %s below 0" % name)
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
    return fams


def check_histogram(name, samples):
    series = {}
    for n, labels, v in samples:
        base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        s = series.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if n == name + "_bucket":
            if "le" not in labels:
                raise FormatError("%s bucket without le" % name)
            s["buckets"].append((parse_value(labels["le"]), v))
        elif n == name + "_sum":
            s["sum"] = v
        elif n == name + "_count":
            s["count"] = v
    for base, s in series.items():
        les = [b[0] for b in s["buckets"]]
        if les != sorted(les) or not les or les[-1] != math.inf:
            raise FormatError("%s%r: buckets not in order or no +Inf" % (name, base))
        counts = [b[1] for b in s["buckets"]]
        if counts != sorted(counts):
            raise FormatError("%s%r: buckets not cumulative" % (name, base))
        if s["count"] != counts[-1] or s["sum"] is None:
            raise FormatError("%s%r: +Inf %s != _count %s" % (name, base, counts[-1], s["count"]))


def value(fams, fam, name=None, **labels):
    """The sum of fam's samples named name (fam) whose labels include
    labels."""
    total = Decimal(0)
    for n, ls, v in (fams.get(fam) or {}).get("samples", []):
        if n == (name or fam) and all(ls.get(k) == x for k, x in labels.items()):
            total += v
    return total


def scrape(env, srv, key=METRICS_KEY):
    r = env.request("GET", "/metrics", server=srv, key=key, timeout=300)
    return r, (parse(r.body.decode("utf-8")) if r.status == 200 else None)


def rows_read(env):
    """The rows the server's handlers read, in all (Handler_read_*)."""
    return sum(int(v) for _, v in env.sql("SHOW GLOBAL STATUS LIKE 'Handler_read%'"))


def main(t, env):
    cfg = env.config(extra={"tollgate_settings": {"metrics_key": METRICS_KEY}})
    srv = env.start_lighttpd(env.write_config("main", cfg), max_procs=3)

    # 1. Who may read it.
    for what, key in (("no key", None), ("another key", "sk-nope")):
        r = env.request("GET", "/metrics", server=srv, key=key)
        env.check_error(r, 401, "auth_error", what="/metrics with %s" % what)
    vkey = (env.request("POST", "/key/generate", body={}, server=srv).json or {}).get("key")
    r = env.request("GET", "/metrics", server=srv, key=vkey)
    env.check_error(r, 401, "auth_error", what="/metrics with a virtual key")
    r = env.request("GET", "/metrics", server=srv, key=H.MASTER_KEY)
    t.is_eq((r.status, r.header("content-type")),
            (200, "text/plain; version=0.0.4; charset=utf-8"), "/metrics with the master key")

    # 2. A known load.
    env.customer_new(user_id="mt-a", max_budget="1", server=srv)
    env.customer_new(user_id="mt-poor", max_budget="0", server=srv)
    usage = {"usage": {"prompt_tokens": 11, "completion_tokens": 7}}
    statuses = []
    for i in range(12):
        statuses.append(env.chat(user="mt-a" if i % 2 else "mt-b", server=srv,
                                 model="fake-gpt" if i % 3 else "fake-gpt-2",
                                 fake=usage).status)
    for i in range(2):
        statuses.append(env.stream_chat(user="mt-a", fake=usage, server=srv).status)
    for i in range(4):
        statuses.append(env.request("POST", "/embeddings", server=srv,
                                    body={"model": "fake-gpt", "input": "word %d" % i,
                                          "user": "mt-b"}).status)
    refused = [env.chat(user="mt-poor", server=srv).status for _ in range(2)]
    unknown = env.chat(user="mt-a", model="no-such-model-%d" % os.getpid(), server=srv).status
    t.is_eq((statuses, refused, unknown), ([200] * 18, [429, 429], 400), "the load answered")
    calls = len(statuses) + len(refused) + 1

    def settled():
        r, fams = scrape(env, srv)
        return fams if fams and value(fams, "tollgate_requests_total") == calls else None
    t0 = time.monotonic()
    fams = H.wait_for(settled, timeout=30, interval=0.5)
    t.ok(fams is not None, "every process's counts reached the database (%.1f s)"
         % (time.monotonic() - t0))
    r, fams = scrape(env, srv)
    t.ok(fams is not None, "the exposition parses strictly", r.text[:300])
    fams = fams or {}
    t.diag("sample:\n" + "\n".join(r.text.splitlines()[:40]))
    for fam, typ in (("tollgate_requests_total", "counter"), ("tollgate_tokens_total", "counter"),
                     ("tollgate_spend_usd_total", "counter"),
                     ("tollgate_db_round_trip_seconds", "histogram"),
                     ("tollgate_upstream_seconds", "histogram"),
                     ("tollgate_holds_in_flight", "gauge"), ("tollgate_webhook_events", "gauge"),
                     ("tollgate_spool_settlements", "gauge")):
        t.is_eq((fams.get(fam) or {}).get("type"), typ, "%s is a %s with help"
                % (fam, typ)) and t.ok(fams[fam]["help"], "%s has help" % fam)
    req = lambda **kw: value(fams, "tollgate_requests_total", **kw)  # noqa: E731
    t.is_eq(req(route="/chat/completions", model="fake-gpt", status="200"), 10,
            "requests: chat, fake-gpt, 200 (streamed too)")
    t.is_eq(req(route="/chat/completions", model="fake-gpt-2", status="200"), 4,
            "requests: chat, fake-gpt-2, 200")
    t.is_eq(req(route="/embeddings", model="fake-gpt", status="200"), 4, "requests: embeddings")
    t.is_eq(req(route="/chat/completions", status="429"), 2, "requests: the budget's 429s")
    t.is_eq(req(route="/chat/completions", model="", status="400"), 1,
            "requests: the unknown model's 400, without its name")
    t.ok(not any("no-such-model" in str(s[1]) for f in fams.values() for s in f["samples"]),
         "a model the config does not have is no label")
    for call_type, model, prompt, completion in env.sql(
            "SELECT call_type, model, SUM(prompt_tokens), SUM(completion_tokens)"
            " FROM spend_logs GROUP BY call_type, model"):
        route = ROUTE_OF[call_type]
        t.is_eq((value(fams, "tollgate_tokens_total", route=route, model=model, type="prompt"),
                 value(fams, "tollgate_tokens_total", route=route, model=model,
                       type="completion")),
                (Decimal(prompt), Decimal(completion)),
                "tokens of %s %s == the ledger's" % (route, model))
    ledger = {m: dec(s) for m, s in env.sql("SELECT model, SUM(spend) FROM spend_logs"
                                             " GROUP BY model")}
    got = {s[1]["model"]: s[2] for s in fams["tollgate_spend_usd_total"]["samples"]}
    t.is_eq(got, ledger, "spend by model == the ledger's, to the last digit")
    t.is_eq(value(fams, "tollgate_upstream_seconds", "tollgate_upstream_seconds_count"),
            len(env.upstream.requests()), "one upstream observation per upstream request")
    t.is_eq(value(fams, "tollgate_upstream_seconds", "tollgate_upstream_seconds_count",
                  route="/embeddings"), 4, "... 4 of them embeddings")
    t.cmp_ok(value(fams, "tollgate_db_round_trip_seconds",
                   "tollgate_db_round_trip_seconds_count"), ">=", 18 * 2,
             "the database's round trips, at least two a call")
    t.is_eq((value(fams, "tollgate_holds_in_flight"),
             value(fams, "tollgate_spool_settlements", state="pending"),
             value(fams, "tollgate_webhook_events", state="pending")), (0, 0, 0),
            "no hold in flight, nothing spooled, no webhook backlog")
    t.ok("tollgate_customer_spend_usd" not in fams, "no account families unless asked for")
    srv.stop()

    # 3. Every customer and key.
    cfg["tollgate_settings"]["metrics_per_customer"] = True
    srv = env.start_lighttpd(env.write_config("accounts", cfg), name="accounts", max_procs=1)
    odd = 'mt-"odd"\\id\nline two'
    t.is_eq(env.customer_new(user_id=odd, max_budget="2", server=srv).status, 200,
            "a customer with a quote, a backslash and a line feed in its id")
    env.chat(user=odd, fake=usage, server=srv)
    r = env.request("POST", "/key/generate", body={"key_alias": "mt-key", "max_budget": 3},
                    server=srv)
    env.chat(user="mt-b", key=(r.json or {}).get("key"), fake=usage, server=srv)
    r, fams = scrape(env, srv)
    t.ok(fams is not None, "with the accounts: parses strictly")
    fams = fams or {}
    for user, spend, maxb in env.sql(
            "SELECT c.user_id, c.spend, b.max_budget FROM customers c"
            " LEFT JOIN budgets b ON b.budget_id = c.budget_id"):
        t.is_eq(value(fams, "tollgate_customer_spend_usd", customer=user), dec(spend),
                "customer %r: spend" % user)
        if maxb is not None:
            t.is_eq(value(fams, "tollgate_customer_budget_remaining_usd", customer=user),
                    dec(maxb) - dec(spend), "customer %r: what is left" % user)
    t.ok(any(s[1].get("customer") == odd for s in fams["tollgate_customer_spend_usd"]["samples"]),
         "the odd id comes back whole")
    token, kspend = env.sql("SELECT token, spend FROM api_keys WHERE key_alias = 'mt-key'")[0]
    t.is_eq(value(fams, "tollgate_key_spend_usd", key=token, key_alias="mt-key"), dec(kspend),
            "the key's spend, with its alias")
    t.is_eq(value(fams, "tollgate_key_budget_remaining_usd", key=token), 3 - dec(kspend),
            "what is left of the key's budget")

    # 4. What a scrape costs with 100,000 customers.
    env.sql("INSERT INTO customers (user_id, spend) SELECT CONCAT('mt-bulk-', seq), 0.25"
            " FROM seq_1_to_100000")

    def costly(label, server):
        before = rows_read(env)
        t0 = time.monotonic()
        r, fams = scrape(env, server)
        took = time.monotonic() - t0
        read = rows_read(env) - before
        t.diag("100,000 customers, %s: %d lines, %d KiB, %.3f s, %d rows read (Handler_read_*)"
               % (label, r.text.count("\n"), len(r.body) // 1024, took, read))
        t.ok(fams is not None, "100,000 customers, %s: parses strictly" % label)
        return r, fams or {}, read
    r, fams, _ = costly("with the accounts", srv)
    t.cmp_ok(len(fams.get("tollgate_customer_spend_usd", {}).get("samples", [])), ">", 100000,
             "with the accounts: a line per customer")
    t.is_eq(r.header("content-length"), None, "with the accounts: streamed, page by page")
    srv.stop()
    cfg["tollgate_settings"]["metrics_per_customer"] = False
    srv = env.start_lighttpd(env.write_config("main2", cfg), name="main2", max_procs=1)
    scrape(env, srv)  # the process started, its statements prepared
    r, fams, read = costly("without the accounts", srv)
    t.cmp_ok(read, "<", 2000, "without the accounts: the rows read do not grow with the "
             "customers")

if __name__ == "__main__":
    H.run(main)
