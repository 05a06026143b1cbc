#!/usr/bin/env python3
"""flow: the customer flow of seeds/customers.md against an installed
tollgate (tests/packaging/run runs it against the Debian package behind
Apache and lighttpd, and against the bundle behind .htaccess files).

  flow.py BASE_URL LABEL [ID_PREFIX]

The server's config must have the mock models of packaging/config.yaml
(azure-gpt-3.5, gpt-3.5-turbo, mistral) and master key sk-1234.  Prints
one "ok N - ..." or "not ok N - ..." line per check, the answers of the
seed's calls as "#" lines, and ends with "# flow LABEL: N passed, N failed";
exits 1 when a check failed.  Python's standard library only.
"""

import http.client
import json
import sys
import urllib.parse
from decimal import Decimal

MASTER_KEY = "sk-1234"
# USD per token (input, output): the price map's entries the mock models'
# base_model names (packaging/config.yaml).
PRICES = {
    "azure-gpt-3.5": (Decimal("5e-07"), Decimal("1.5e-06")),
    "gpt-3.5-turbo": (Decimal("5e-07"), Decimal("1.5e-06")),
    "mistral": (Decimal("6e-08"), Decimal("1.8e-07")),
}


class Flow:
    def __init__(self, base, label):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.label = label
        self.n = 0
        self.failed = 0

    def request(self, method, path, body=None, key=MASTER_KEY, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        hdrs = dict(headers or {})
        data = None
        if key is not None:
            hdrs["Authorization"] = "Bearer " + key
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        conn.close()
        try:
            parsed = json.loads(raw, parse_float=Decimal)
        except ValueError:
            parsed = None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, raw, parsed

    def ok(self, cond, what, *diag):
        self.n += 1
        print("%sok %d - %s: %s" % ("" if cond else "not ", self.n, self.label, what))
        if not cond:
            self.failed += 1
            for d in diag:
                for line in str(d).splitlines() or [""]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def show(self, what, raw):
        text = raw.decode("utf-8", "replace")
        print("# %s -> %s" % (what, text if len(text) <= 400 else text[:400] + "..."))

    def chat(self, model, user, content="what time is it", **extra):
        body = dict(extra, model=model, user=user,
                    messages=[{"role": "user", "content": content}])
        return self.request("POST", "/chat/completions", body)


def cost(model, usage):
    pin, pout = PRICES[model]
    return usage["prompt_tokens"] * pin + usage["completion_tokens"] * pout


def dec(v):
    try:
        return Decimal(str(v)) if v is not None else None
    except ArithmeticError:
        return None


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: flow.py BASE_URL LABEL [ID_PREFIX]")
    f = Flow(sys.argv[1], sys.argv[2])
    p = sys.argv[3] if len(sys.argv) == 4 else ""

    st, _, raw, js = f.request("GET", "/health/liveliness", key=None)
    f.ok(st == 200 and js == "I'm alive!", "/health/liveliness without a key", st, raw)
    st, _, raw, js = f.request("GET", "/health/readiness", key=None)
    f.ok(st == 200 and isinstance(js, dict) and js.get("db") == "connected",
         "/health/readiness: the database is connected", st, raw)
    f.show("GET /health/readiness", raw)

    # 1. A call with a customer id creates the customer and charges it.
    user = p + "ishaan3"
    st, h, raw, js = f.chat("azure-gpt-3.5", user)
    f.show("POST /chat/completions (azure-gpt-3.5, user %s)" % user, raw)
    usage = (js or {}).get("usage") or {}
    first = cost("azure-gpt-3.5", usage) if "prompt_tokens" in usage else None
    f.ok(st == 200 and first is not None and first > 0, "chat with user: 200 with usage", st, raw)
    f.ok(first is not None and dec(h.get("x-litellm-response-cost")) == first,
         "x-litellm-response-cost is the exact price of the usage (%s)" % first, h)
    # 2. Its spend; a second call adds to it.
    st, _, raw, js = f.request("GET", "/customer/info?end_user_id=" + urllib.parse.quote(user))
    f.show("GET /customer/info?end_user_id=" + user, raw)
    f.ok(st == 200 and (js or {}).get("user_id") == user and dec(js.get("spend")) == first,
         "/customer/info shows the customer and its spend", st, raw)
    st, h, raw, js = f.chat("azure-gpt-3.5", user)
    second = cost("azure-gpt-3.5", (js or {}).get("usage") or {}) if st == 200 else None
    st, _, raw, js = f.request("GET", "/customer/info?end_user_id=" + urllib.parse.quote(user))
    f.ok(second is not None and st == 200 and first is not None and
         dec((js or {}).get("spend")) == first + second,
         "a second call adds to the spend", st, raw)

    # 3. max_budget "0" refuses every priced call before it goes upstream.
    broke = p + "my-customer-id"
    st, _, raw, js = f.request("POST", "/customer/new", {"user_id": broke, "max_budget": "0"})
    f.show("POST /customer/new (%s, max_budget \"0\")" % broke, raw)
    f.ok(st == 200 and (js or {}).get("user_id") == broke and
         dec(((js or {}).get("litellm_budget_table") or {}).get("max_budget")) == 0,
         "/customer/new with max_budget \"0\"", st, raw)
    st, h, raw, js = f.chat("mistral", broke, "What's the weather like in Boston today?")
    f.show("POST /chat/completions (mistral, user %s)" % broke, raw)
    err = (js or {}).get("error") or {}
    f.ok(st == 429 and err.get("type") == "budget_exceeded" and
         h.get("x-should-retry") == "false",
         "over budget: 429 budget_exceeded, x-should-retry: false", st, h, raw)

    # 4. Pricing tiers: a budget made once, shared by customers.
    tier = p + "my-free-tier"
    st, _, raw, js = f.request("POST", "/budget/new", {"budget_id": tier, "max_budget": 4})
    f.show("POST /budget/new (%s, 4)" % tier, raw)
    f.ok(st == 200 and (js or {}).get("budget_id") == tier and dec(js.get("max_budget")) == 4,
         "/budget/new", st, raw)
    member = p + "my-tier-customer"
    st, _, raw, js = f.request("POST", "/customer/new", {"user_id": member, "budget_id": tier})
    f.show("POST /customer/new (%s on %s)" % (member, tier), raw)
    f.ok(st == 200 and (js or {}).get("budget_id") == tier, "/customer/new on the tier", st, raw)
    st, h, raw, js = f.chat("gpt-3.5-turbo", member, "Hello!")
    charged = cost("gpt-3.5-turbo", (js or {}).get("usage") or {}) if st == 200 else None
    st, _, raw, js = f.request("GET", "/customer/info?end_user_id=" + urllib.parse.quote(member))
    f.show("GET /customer/info?end_user_id=" + member, raw)
    f.ok(charged is not None and st == 200 and dec((js or {}).get("spend")) == charged and
         (js or {}).get("budget_id") == tier and
         dec(((js or {}).get("litellm_budget_table") or {}).get("max_budget")) == 4,
         "the tier's customer is charged, with the tier's budget", st, raw)

    # A small budget: calls are admitted while their worst case fits, then
    # refused; the spend never passes the budget.
    small = p + "small-budget"
    limit = Decimal("0.0001")
    st, _, raw, _ = f.request("POST", "/customer/new", {"user_id": small, "max_budget": 0.0001})
    f.ok(st == 200, "/customer/new with max_budget 0.0001", st, raw)
    admitted, refused = 0, None
    for _ in range(60):
        st, h, raw, js = f.chat("azure-gpt-3.5", small, max_tokens=20)
        if st != 200:
            refused = (st, ((js or {}).get("error") or {}).get("type"))
            break
        admitted += 1
    st, _, raw, js = f.request("GET", "/customer/info?end_user_id=" + small)
    spend = dec((js or {}).get("spend"))
    f.ok(admitted >= 1 and refused == (429, "budget_exceeded") and spend is not None and
         0 < spend <= limit,
         "a budget admits calls until the next one could pass it, then refuses "
         "(%d admitted, spend %s of %s)" % (admitted, spend, limit), refused, raw)

    # A blocked customer is refused with 403.
    blocked = p + "blocked-customer"
    st, _, raw, _ = f.request("POST", "/customer/block", {"user_ids": [blocked]})
    f.ok(st == 200, "/customer/block", st, raw)
    st, _, raw, js = f.chat("azure-gpt-3.5", blocked)
    f.show("POST /chat/completions (user %s, blocked)" % blocked, raw)
    f.ok(st == 403 and isinstance((js or {}).get("error"), dict), "a blocked customer: 403", st, raw)

    # The key is checked (the Authorization header reaches the programs).
    st, _, raw, js = f.request("GET", "/customer/info?end_user_id=" + user, key="sk-wrong")
    f.ok(st == 401 and isinstance((js or {}).get("error"), dict), "a wrong key: 401", st, raw)

    # A stream arrives as server-sent events and ends with [DONE].
    st, h, raw, _ = f.chat("mistral", user, "hi", stream=True)
    f.ok(st == 200 and h.get("content-type", "").startswith("text/event-stream") and
         raw.rstrip().endswith(b"data: [DONE]"), "a stream ends with data: [DONE]", st, h, raw[-300:])

    # The admin UI's page.
    st, h, raw, _ = f.request("GET", "/ui/", key=None)
    f.ok(st == 200 and b"<title>tollgate admin</title>" in raw, "/ui/ serves the admin UI", st, raw[:200])

    print("# flow %s: %d passed, %d failed" % (f.label, f.n - f.failed, f.failed))
    sys.exit(1 if f.failed else 0)


if __name__ == "__main__":
    main()
