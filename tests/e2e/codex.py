#!/usr/bin/env python3
"""codex: tollgate behind the OpenAI Codex CLI (npm @openai/codex, pinned in
tests/codex/package.json and package-lock.json), on the Responses API.

`codex exec` runs non-interactively, as a user would run it against a
tollgate: its CODEX_HOME holds a config.toml naming a model provider whose
base_url is tollgate's /v1, wire_api "responses", the virtual key in the
environment variable its env_key names, and the customer in the
x-litellm-customer-id header (http_headers); retries off, analytics and
plugins off, so that it makes no call but tollgate's.  The fake upstream
answers with its defaults (Codex cannot send the "fake" field): the text
"Hello from the fake upstream.", usage 10 input and 20 output tokens.

1. The pinned version is installed and its native binary runs here (a
   machine where it cannot run fails this test, with the reason).
2. A session with a key (max_budget, models [the model]) for a customer
   with a budget: codex exits 0 and prints the fake's answer; the upstream
   saw exactly one POST /v1/responses, with the deployment's key (not the
   client's), the deployment's model name, "stream": true and Codex's
   tools (functions, a namespace, a web_search): the hosted web search
   priced by the default tool price and covered by the hold; tollgate's
   ledger has one row (call_type aresponses, success, 10 and 20 tokens,
   api_key the key's token), the customer's and the key's spend are both
   exactly the cost of 10 + 20 tokens, nothing is left reserved, and
   /spend/logs?request_id=<the upstream's resp_ id> finds the row.
3. The hold counts Codex's web_search tool (default_max_tool_calls, 10, at
   the default 0.01 per call): a key whose max_budget, 0.06, covers the
   tokens' part of the hold but not the searches is refused (429), the
   upstream sees nothing.
4. The same session with a key whose max_budget is 0: codex exits non-zero
   reporting the 429 (or the budget), the upstream saw nothing, nothing
   was charged, held or written.

The command line, stdout, stderr and timing of each session are TAP
diagnostics.

node_modules: TG_CODEX_NODE_MODULES, else tests/codex/node_modules in the
source tree, else the build tree's tests/codex/node_modules, installed
there with `npm ci` when missing (harness.npm_modules).
"""

import json
import os
import platform
import shlex
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

CODEX_SRC = os.path.join(H.SRCDIR, "tests", "codex")
PACKAGE = "@openai/codex"
PINNED = "0.169.0"
MODEL = "gpt-5-codex"                 # the model name Codex sends
UPSTREAM_MODEL = "fake-codex-upstream"  # what the deployment calls it
CUSTOMER = "codex-user"
ANSWER = "Hello from the fake upstream."
PROMPT = "Say hello."
TIMEOUT = 60
WEB_SEARCH_PRICE = Decimal("0.01")  # the shipped default per call
DEFAULT_MAX_TOOL_CALLS = 10


def platform_package():
    """The optional dependency holding Codex's native binary here."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64",
            "arm64": "arm64"}.get(platform.machine().lower(), platform.machine())
    return "@openai/codex-%s-%s" % (sys.platform, arch)


def config_toml(port, customer):
    return "\n".join([
        'model = "%s"' % MODEL,
        'model_provider = "tollgate"',
        "",
        "[model_providers.tollgate]",
        'name = "tollgate"',
        'base_url = "http://127.0.0.1:%d/v1"' % port,
        'env_key = "TG_KEY"',
        'wire_api = "responses"',
        'http_headers = { "x-litellm-customer-id" = "%s" }' % customer,
        "request_max_retries = 0",
        "stream_max_retries = 0",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[features]",
        "plugins = false",
        "",
    ])


class Session:
    """One `codex exec` run: its command line, exit status, output, time."""

    def __init__(self, t, env, node, mods, name, key, port, customer=CUSTOMER, args=None):
        self.name = name
        root = os.path.join(env.tmp, "codex-" + name)
        home, codex_home, work = (os.path.join(root, d) for d in ("home", "codex-home", "work"))
        for d in (home, codex_home, work):
            os.makedirs(d)
        with open(os.path.join(codex_home, "config.toml"), "w") as f:
            f.write(config_toml(port, customer))
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
                   "CODEX_HOME": codex_home, "TG_KEY": key, "LANG": "C.UTF-8",
                   "NO_COLOR": "1", "TMPDIR": root}
        self.cmd = [node, os.path.join(mods, PACKAGE, "bin", "codex.js")] + (
            args or ["exec", "--skip-git-repo-check", PROMPT])
        t.diag("codex %s: CODEX_HOME=%s HOME=%s TG_KEY=%s... %s </dev/null (in %s)" % (
            name, codex_home, home, key[:7], " ".join(shlex.quote(c) for c in self.cmd), work))
        start = time.monotonic()
        try:
            p = subprocess.run(self.cmd, env=run_env, cwd=work, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
            self.rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            self.rc, out, err = None, e.stdout or b"", e.stderr or b""
        except OSError as e:
            self.rc, out, err = None, b"", str(e).encode()
        self.elapsed = time.monotonic() - start
        self.stdout = out.decode("utf-8", "replace")
        self.stderr = err.decode("utf-8", "replace")
        t.diag("codex %s: exit %s after %.2f s" % (
            name, "timeout (%d s)" % TIMEOUT if self.rc is None else self.rc, self.elapsed))
        t.diag("---- codex %s stdout ----\n%s" % (name, self.stdout.rstrip("\n")))
        t.diag("---- codex %s stderr ----\n%s" % (name, self.stderr.rstrip("\n")))

    def outputs(self):
        return ("exit %s" % self.rc, "stdout: %s" % self.stdout[-1500:],
                "stderr: %s" % self.stderr[-2500:])


def key_row(env, token):
    rows = env.sql("SELECT spend, reserved FROM api_keys WHERE token = %s" % H.sql_quote(token))
    return (dec(rows[0][0]), dec(rows[0][1])) if rows else None


def generate_key(t, env, max_budget):
    r = env.request("POST", "/key/generate", body={"models": [MODEL], "max_budget": max_budget})
    js = r.json or {}
    t.ok(r.status == 200 and js.get("key") and js.get("token"),
         "key/generate (models [%s], max_budget %s)" % (MODEL, max_budget), r.text[:300])
    return js.get("key") or "", js.get("token") or ""


def check_binary(t, env, node, mods):
    """The pinned package is installed and its native binary runs here."""
    with open(os.path.join(mods, PACKAGE, "package.json")) as f:
        version = json.load(f).get("version")
    t.is_eq(version, PINNED, "the pinned %s is installed (%s)" % (PACKAGE, mods))
    plat = platform_package()
    t.ok(os.path.isfile(os.path.join(mods, plat, "package.json")),
         "its native binary for this machine is installed (%s)" % plat,
         "npm installs it as an optional dependency; the lock file lists it")
    try:
        p = subprocess.run([node, os.path.join(mods, PACKAGE, "bin", "codex.js"), "--version"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                "HOME": env.tmp, "CODEX_HOME": env.tmp})
        out, rc = p.stdout.decode("utf-8", "replace").strip(), p.returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        out, rc = repr(e), None
    t.diag("codex --version: %s" % out)
    last = out.splitlines()[-1] if out else ""
    return t.ok(rc == 0 and PINNED in last, "the Codex binary runs on this machine (%s)" % last,
                "exit %s" % rc, "output: %s" % out[-2000:])


def main(t, env):
    node = H.find_node()
    mods = H.npm_modules(CODEX_SRC, PACKAGE, "TG_CODEX_NODE_MODULES")
    if not check_binary(t, env, node, mods):
        return

    budget = 5  # generous: Codex's hold is about 0.15 (see below)
    cfg = env.write_config("main", env.config(
        models=[env.model(MODEL, upstream_model=UPSTREAM_MODEL)]))
    srv = env.start_lighttpd(cfg, max_procs=2)
    r = env.customer_new(user_id=CUSTOMER, max_budget=budget)
    t.is_eq(r.status, 200, "customer/new %s (max_budget %s)" % (CUSTOMER, budget), r.text[:200])
    key, token = generate_key(t, env, budget)
    env.upstream.reset()

    # -- a session, charged --
    s = Session(t, env, node, mods, "session", key, srv.port)
    t.is_eq(s.rc, 0, "codex exec exits 0", *s.outputs())
    t.is_eq(s.stdout.strip(), ANSWER, "codex prints the fake upstream's answer", *s.outputs())
    lines = s.stderr.splitlines()
    used = [lines[i + 1].strip() for i, ln in enumerate(lines[:-1]) if ln.strip() == "tokens used"]
    t.is_eq(used, ["30"], "codex reports the 30 tokens the upstream reported (relayed)",
            *s.outputs())

    reqs = env.upstream.requests()
    t.is_eq([(q["method"], q["path"]) for q in reqs], [("POST", "/v1/responses")],
            "the upstream saw exactly one call: POST /v1/responses")
    q = reqs[0] if len(reqs) == 1 else {"headers": {}, "json": {}}
    js = q.get("json") or {}
    t.is_eq(q["headers"].get("authorization"), "Bearer " + H.UPSTREAM_KEY,
            "the upstream got the deployment's key, not the client's")
    t.ok(key not in json.dumps(q), "the client's key went nowhere upstream")
    t.is_eq(js.get("model"), UPSTREAM_MODEL, "the upstream got the deployment's model name")
    t.is_eq(js.get("stream"), True, "Codex's call is streamed")
    body_len = len((q.get("body") or "").encode())
    types = sorted(set(str(x.get("type")) for x in js.get("tools") or [] if isinstance(x, dict)))
    t.diag("upstream body: %d bytes, store %r, max_output_tokens %r, tool types %s" % (
        body_len, js.get("store"), js.get("max_output_tokens"), types))
    t.ok("web_search" in types, "Codex's web_search tool reached the upstream", types)
    t.ok("function" in types and "namespace" in types,
         "its function and namespace tools too (passed through)", types)
    resp_id = "resp_fake_%d" % q["seq"] if q.get("seq") else None

    want = cost(10, 20)
    rows = env.ledger_rows(CUSTOMER)
    t.is_eq(len(rows), 1, "one ledger row for the customer", rows)
    row = rows[0] if rows else {}
    ct = env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                 % H.sql_quote(row.get("request_id") or "-"))
    t.is_eq(ct, [["aresponses"]], "the row's call_type is aresponses")
    t.is_eq((row.get("status"), row.get("prompt_tokens"), row.get("completion_tokens"),
             row.get("spend")), ("success", "10", "20", want),
            "the row: success, 10 input and 20 output tokens, their cost")
    t.is_eq(row.get("model"), MODEL, "the row names the model Codex asked for")
    t.is_eq(row.get("api_key"), token, "the row's api_key is the key's token")
    crow = env.customer_row(CUSTOMER) or {}
    t.is_eq(crow.get("spend"), want, "the customer's spend is exactly the cost (%s)" % want)
    t.is_eq(key_row(env, token), (want, Decimal(0)),
            "the key's spend is exactly the cost, nothing reserved")
    t.is_eq(crow.get("reserved"), Decimal(0), "nothing reserved for the customer")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM reservations")[0][0]), 0, "no hold left")
    got = env.request("GET", "/spend/logs?" + urllib.parse.urlencode(
        {"request_id": resp_id or "-"}))
    t.is_eq([x.get("request_id") for x in (got.json or [])], [row.get("request_id")],
            "/spend/logs?request_id=%s (the upstream's id) finds the row" % resp_id,
            got.text[:300])
    t.diag("the session's charge: %s USD (10 x %s + 20 x %s), ledger row %s" % (
        row.get("spend"), H.IN_PRICE, H.OUT_PRICE, row.get("request_id")))

    # -- the hold covers Codex's web search: a key whose budget covers the
    # tokens' part of the hold but not the 10 web searches is refused --
    # Its hold: the body's bytes (taken with 20 % to spare, as tollgate
    # got it) x IN_PRICE + the default output bound, 4096 tokens (the
    # price data has no gpt-5-codex) x OUT_PRICE, + the searches.
    small = Decimal("0.06")
    tokens_part = body_len * Decimal("1.2") * H.IN_PRICE + 4096 * H.OUT_PRICE
    t.ok(tokens_part + DEFAULT_MAX_TOOL_CALLS * WEB_SEARCH_PRICE < budget,
         "the hold of Codex's request (< %s) fits the budgets (%s)"
         % (tokens_part + DEFAULT_MAX_TOOL_CALLS * WEB_SEARCH_PRICE, budget))
    t.ok(tokens_part < small < tokens_part + DEFAULT_MAX_TOOL_CALLS * WEB_SEARCH_PRICE,
         "a budget of %s covers the tokens' part of the hold (< %s for a body of %d bytes) "
         "but not 10 web searches at %s" % (small, tokens_part, body_len, WEB_SEARCH_PRICE))
    key_s, token_s = generate_key(t, env, str(small))
    env.upstream.reset()
    ss = Session(t, env, node, mods, "web-search-hold", key_s, srv.port)
    t.ok(ss.rc not in (0, None) and "429" in ss.stderr,
         "max_budget %s: codex is refused (429): the hold counts its web_search tool "
         "(default_max_tool_calls x the default price)" % small, *ss.outputs())
    t.is_eq(env.upstream.requests(), [], "max_budget %s: the upstream saw nothing" % small)
    t.is_eq(key_row(env, token_s), (Decimal(0), Decimal(0)),
            "max_budget %s: nothing charged or held" % small)

    # -- a session refused: the key's budget is 0 --
    key0, token0 = generate_key(t, env, 0)
    env.upstream.reset()
    n_rows = env.sql("SELECT COUNT(*) FROM spend_logs")[0][0]
    s0 = Session(t, env, node, mods, "over-budget", key0, srv.port)
    t.ok(s0.rc not in (0, None), "over budget: codex exits non-zero (not a timeout)",
         *s0.outputs())
    both = (s0.stdout + "\n" + s0.stderr).lower()
    t.ok("budget" in both or "429" in both, "over budget: codex reports the 429 / budget",
         *s0.outputs())
    t.ok(ANSWER not in s0.stdout, "over budget: no answer printed")
    t.is_eq(env.upstream.requests(), [], "over budget: the upstream saw nothing")
    t.is_eq(env.sql("SELECT COUNT(*) FROM spend_logs")[0][0], n_rows,
            "over budget: no ledger row written")
    t.is_eq(key_row(env, token0), (Decimal(0), Decimal(0)),
            "over budget: the key is charged nothing, holds nothing")
    crow = env.customer_row(CUSTOMER) or {}
    t.is_eq((crow.get("spend"), crow.get("reserved")), (want, Decimal(0)),
            "over budget: the customer is charged nothing more")
    # What Codex was told, asked again directly (its output names only the status).
    r = env.request("POST", "/v1/responses", key=key0,
                    body={"model": MODEL, "input": "hi", "stream": True},
                    headers={"x-litellm-customer-id": CUSTOMER})
    t.is_eq((r.status, r.error.get("type"), r.header("x-should-retry")),
            (429, "budget_exceeded", "false"),
            "the same call by hand: 429 budget_exceeded, x-should-retry false", r.text[:300])
    t.diag("tollgate's answer to it: %d %s" % (r.status, r.text[:300]))
    t.is_eq(env.upstream.requests(), [], "the upstream still saw nothing")


if __name__ == "__main__":
    H.run(main)
