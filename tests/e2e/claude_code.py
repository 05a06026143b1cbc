#!/usr/bin/env python3
"""claude_code: tollgate in front of the Claude Code CLI (`claude -p`,
@anthropic-ai/claude-code pinned in tests/anthropic/package.json and
package-lock.json; its native binary comes in the platform package npm
installs as an optional dependency).

Claude Code runs with an empty environment but for PATH, a fresh HOME,
ANTHROPIC_BASE_URL (tollgate, served by lighttpd), ANTHROPIC_AUTH_TOKEN
(a virtual key, sent as "Authorization: Bearer"),
ANTHROPIC_CUSTOM_HEADERS ("x-litellm-customer-id: cc-user") and
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, so that the only call it makes
is the prompt's: one streamed POST /v1/messages?beta=true (max_tokens
32000, some 87 KB of tools, system prompt, thinking, context_management,
metadata.user_id).  CLAUDE_CODE_MAX_RETRIES is left at its default: the
refusal shows that Claude Code obeys tollgate's x-should-retry: false.
The deployment claude-sonnet-4-5 is an anthropic/ model on the fake
upstream priced from the shipped price file (model_info.base_model
claude-sonnet-4-5: 3e-06 per input token, 3e-07 per cache read, 3.75e-06
and 6e-06 per token written to the cache for 5 minutes and for an hour,
1.5e-05 per output token); the fake answers "Hello from the fake
upstream." with the usage of a Claude Code turn, queued for it (Claude
Code cannot send the "fake" field): 10 input tokens, 20,000 read from the
cache, 3,000 and 1,000 written to it, 20 output tokens.

1. The pinned version is installed and its native binary runs here (a
   machine where it cannot run fails this test, with the reason).
2. `claude -p "say hi" --model claude-sonnet-4-5` with a key (max_budget 5,
   models [the model]) for a customer with a budget: exit 0, the fake's
   text on stdout; the upstream saw exactly one POST /v1/messages, with
   the deployment's x-api-key (not the client's key, no Authorization),
   anthropic-version 2023-06-01, Claude Code's anthropic-beta passed on,
   the deployment's model name, "stream": true, max_tokens 32000, Claude
   Code's tools and metadata; one ledger row (call_type
   anthropic_messages, success, 24,010 prompt and 20 output tokens, the
   cache reads and writes by class in its metadata, api_key the key's
   token, the customer of the header, not of metadata.user_id), and the
   key's and the customer's spend are both exactly that usage at those
   prices; nothing is left reserved.
3. The same with a key whose max_budget, 0.01, is below the hold of Claude
   Code's request (about body bytes x 6e-06 + 32000 x 1.5e-05, some $1):
   claude prints tollgate's 429 and its message ("API Error: Request
   rejected (429) · <message>"), exits non-zero, without the minutes of
   retries it makes when a 429 does not say x-should-retry: false; the
   upstream received nothing, nothing was charged, held or written.

The command line, stdout, stderr, exit status and time of each session are
TAP diagnostics.

node_modules: TG_ANTHROPIC_NODE_MODULES, else tests/anthropic/node_modules
in the source tree, else the build tree's tests/anthropic/node_modules,
installed there with `npm ci` when missing (harness.npm_modules).
"""

import json
import os
import platform
import shlex
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

SRC = os.path.join(H.SRCDIR, "tests", "anthropic")
PACKAGE = "@anthropic-ai/claude-code"
PINNED = "2.1.328"
MODEL = "claude-sonnet-4-5"             # the model name Claude Code sends
UPSTREAM_MODEL = "fake-claude-upstream"  # what the deployment calls it
CUSTOMER = "cc-user"
ANSWER = "Hello from the fake upstream."
PROMPT = "say hi"
TIMEOUT = 240
# Claude Sonnet 4.5 in etc/model_prices.json, USD per token.
IN = Decimal("3e-06")
OUT = Decimal("1.5e-05")
READ = Decimal("3e-07")
WRITE_5M = Decimal("3.75e-06")
WRITE_1H = Decimal("6e-06")  # the dearest input-side rate: the hold's
TOOLS_OVERHEAD = 1024        # the hold's allowance for a request with tools
MAX_TOKENS = 32000           # what Claude Code asks for
# With a 429 that does not say x-should-retry: false, Claude Code 2.1.328
# retries 10 times with back-off, about 3 minutes in all; a session that
# ends well before that made no such series of retries.
RETRY_SERIES = 60


def platform_dirs():
    """The optional dependencies that may hold the native binary here."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64",
            "arm64": "arm64"}.get(platform.machine().lower(), platform.machine())
    base = "%s-%s" % (sys.platform, arch)
    return ["@anthropic-ai/claude-code-" + base, "@anthropic-ai/claude-code-%s-musl" % base]


def binary(mods):
    """The native claude binary: the wrapper's bin/claude.exe once its
    postinstall has copied the binary there, else the platform package's."""
    wrapper = os.path.join(mods, PACKAGE, "bin", "claude.exe")
    cands = [wrapper] + [os.path.join(mods, d, "claude") for d in platform_dirs()]
    for c in cands:
        try:
            with open(c, "rb") as f:
                if f.read(4) == b"\x7fELF" and os.access(c, os.X_OK):
                    return c, cands
        except OSError:
            continue
    return None, cands


def deployment(env):
    return {"model_name": MODEL,
            "litellm_params": {"model": "anthropic/" + UPSTREAM_MODEL,
                               "api_base": env.upstream.base, "api_key": H.UPSTREAM_KEY},
            "model_info": {"base_model": "claude-sonnet-4-5"}}


class Session:
    """One `claude -p` run: its command line, exit status, output, time."""

    def __init__(self, t, env, claude, name, key, port, customer=CUSTOMER):
        self.name = name
        root = os.path.join(env.tmp, "claude-" + name)
        home, work = os.path.join(root, "home"), os.path.join(root, "work")
        for d in (home, work):
            os.makedirs(d)
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
                   "TERM": "dumb",
                   "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % port,
                   "ANTHROPIC_AUTH_TOKEN": key,
                   "ANTHROPIC_CUSTOM_HEADERS": "x-litellm-customer-id: %s" % customer,
                   "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        self.cmd = [claude, "-p", PROMPT, "--model", MODEL]
        shown = dict(run_env, ANTHROPIC_AUTH_TOKEN=key[:7] + "...")
        t.diag("claude %s: env -i %s %s </dev/null (in %s)" % (
            name, " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(shown.items())),
            " ".join(shlex.quote(c) for c in self.cmd), work))
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
        t.diag("claude %s: exit %s after %.2f s" % (
            name, "timeout (%d s)" % TIMEOUT if self.rc is None else self.rc, self.elapsed))
        t.diag("---- claude %s stdout ----\n%s" % (name, self.stdout.rstrip("\n")))
        t.diag("---- claude %s stderr ----\n%s" % (name, self.stderr.rstrip("\n")))

    def outputs(self):
        return ("exit %s after %.2f s" % (self.rc, self.elapsed),
                "stdout: %s" % self.stdout[-1500:], "stderr: %s" % self.stderr[-2500:])


def key_row(env, token):
    rows = env.sql("SELECT spend, reserved FROM api_keys WHERE token = %s" % H.sql_quote(token))
    return (dec(rows[0][0]), dec(rows[0][1])) if rows else None


def generate_key(t, env, max_budget):
    r = env.request("POST", "/key/generate", body={"models": [MODEL], "max_budget": max_budget})
    js = r.json or {}
    t.ok(r.status == 200 and js.get("key") and js.get("token"),
         "key/generate (models [%s], max_budget %s)" % (MODEL, max_budget), r.text[:300])
    return js.get("key") or "", js.get("token") or ""


def check_binary(t, env, mods):
    """The pinned package is installed and its native binary runs here."""
    with open(os.path.join(mods, PACKAGE, "package.json")) as f:
        version = json.load(f).get("version")
    t.is_eq(version, PINNED, "the pinned %s is installed (%s)" % (PACKAGE, mods))
    claude, cands = binary(mods)
    if not t.ok(claude is not None, "its native binary for this machine is installed (%s)"
                % (claude or "not found"), "none of %s is an executable ELF file" % cands,
                "npm installs it as an optional dependency (the lock file lists it); the "
                "wrapper's postinstall copies it over bin/claude.exe"):
        return None
    try:
        p = subprocess.run([claude, "--version"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT,
                           cwd=env.tmp, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                             "HOME": env.tmp, "TERM": "dumb",
                                             "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
        out, rc = p.stdout.decode("utf-8", "replace").strip(), p.returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        out, rc = repr(e), None
    t.diag("%s --version: %s" % (claude, out))
    last = out.splitlines()[-1] if out else ""
    ok = t.ok(rc == 0 and PINNED in last, "the Claude Code binary runs on this machine (%s)"
              % last, "exit %s" % rc, "output: %s" % out[-2000:])
    return claude if ok else None


def main(t, env):
    mods = H.npm_modules(SRC, PACKAGE, "TG_ANTHROPIC_NODE_MODULES")
    claude = check_binary(t, env, mods)
    if not claude:
        return

    budget = 5  # generous: Claude Code's hold is about $1 (see below)
    cfg = env.write_config("main", env.config(models=[deployment(env)]))
    srv = env.start_lighttpd(cfg, max_procs=2)
    r = env.customer_new(user_id=CUSTOMER, max_budget=budget)
    t.is_eq(r.status, 200, "customer/new %s (max_budget %s)" % (CUSTOMER, budget), r.text[:200])
    key, token = generate_key(t, env, budget)
    env.upstream.reset()
    # What a Claude Code turn costs: its system prompt and tools read from
    # the prompt cache, some written to it for 5 minutes and for an hour.
    # Claude Code cannot send the fake's directives: they are queued.
    usage = {"input_tokens": 10, "cache_read_input_tokens": 20000,
             "cache_creation_5m": 3000, "cache_creation_1h": 1000, "output_tokens": 20}
    env.upstream.next({"usage": usage})

    # -- a session, charged --
    s = Session(t, env, claude, "session", key, srv.port)
    t.is_eq(s.rc, 0, "claude -p exits 0", *s.outputs())
    t.is_eq(s.stdout.strip(), ANSWER, "claude prints the fake upstream's answer", *s.outputs())

    reqs = env.upstream.requests()
    t.is_eq([(q["method"], q["path"]) for q in reqs], [("POST", "/v1/messages")],
            "the upstream saw exactly one call: POST /v1/messages")
    q = reqs[0] if len(reqs) == 1 else {"headers": {}, "json": {}}
    hd, js = q.get("headers") or {}, q.get("json") or {}
    body_len = len((q.get("body") or "").encode())
    t.diag("upstream call: %s %s%s, %d bytes, headers x-api-key %s, anthropic-version %s, "
           "anthropic-beta %s; body keys %s, max_tokens %r, stream %r, metadata %s" % (
               q.get("method"), q.get("path"), "?" + q["query"] if q.get("query") else "",
               body_len, hd.get("x-api-key"), hd.get("anthropic-version"),
               hd.get("anthropic-beta"), sorted(js), js.get("max_tokens"), js.get("stream"),
               json.dumps(js.get("metadata"))))
    t.is_eq((hd.get("x-api-key"), hd.get("authorization"), hd.get("anthropic-version")),
            (H.UPSTREAM_KEY, None, "2023-06-01"),
            "upstream: the deployment's x-api-key, no Authorization, anthropic-version "
            "2023-06-01")
    t.ok(key not in json.dumps(q), "the client's key went nowhere upstream")
    t.ok("claude-code-20250219" in (hd.get("anthropic-beta") or "").split(","),
         "upstream: Claude Code's anthropic-beta passed on (%s)" % hd.get("anthropic-beta"))
    t.is_eq(js.get("model"), UPSTREAM_MODEL, "upstream: the deployment's model name")
    t.is_eq((js.get("stream"), js.get("max_tokens")), (True, MAX_TOKENS),
            "Claude Code's call: streamed, max_tokens %d" % MAX_TOKENS)
    t.ok(isinstance(js.get("tools"), list) and len(js["tools"]) > 0
         and isinstance(js.get("system"), list),
         "Claude Code's tools and system prompt reached the upstream (%d tools)"
         % len(js.get("tools") or []))
    try:
        meta_user = json.loads((js.get("metadata") or {}).get("user_id") or "null")
    except ValueError:
        meta_user = None
    t.ok(isinstance(meta_user, dict) and "session_id" in meta_user,
         "its metadata.user_id (a JSON text with session_id) passed on",
         js.get("metadata"))

    want = 10 * IN + 20000 * READ + 3000 * WRITE_5M + 1000 * WRITE_1H + 20 * OUT
    rows = env.ledger_rows(CUSTOMER)
    t.is_eq(len(rows), 1, "one ledger row for the customer", rows)
    row = rows[0] if rows else {}
    ct = env.sql("SELECT call_type FROM spend_logs WHERE request_id = %s"
                 % H.sql_quote(row.get("request_id") or "-"))
    t.is_eq(ct, [["anthropic_messages"]], "the row's call_type is anthropic_messages")
    t.is_eq((row.get("status"), row.get("prompt_tokens"), row.get("completion_tokens"),
             row.get("spend")), ("success", "24010", "20", want),
            "the row: success, 24,010 prompt tokens (10 + 20,000 read + 4,000 written) and "
            "20 output tokens, their cost")
    meta = row.get("metadata") or {}
    t.is_eq((meta.get("cache_read_input_tokens"), meta.get("cache_creation_5m_input_tokens"),
             meta.get("cache_creation_1h_input_tokens")), (20000, 3000, 1000),
            "the row's metadata: the prompt's tokens by class")
    t.diag("the spend_logs row: %s" % json.dumps(
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}))
    t.is_eq(row.get("model"), MODEL, "the row names the model Claude Code asked for")
    t.is_eq(row.get("api_key"), token, "the row's api_key is the key's token")
    t.is_eq((row.get("metadata") or {}).get("response_id"), "msg_fake_%s" % q.get("seq"),
            "the row records the upstream's message id")
    t.is_eq([r_[0] for r_ in env.sql("SELECT user_id FROM customers ORDER BY user_id")],
            [CUSTOMER], "the header named the customer (metadata.user_id made none)")
    crow = env.customer_row(CUSTOMER) or {}
    t.is_eq(crow.get("spend"), want, "the customer's spend is exactly 10 x %s + 20,000 x %s + "
            "3,000 x %s + 1,000 x %s + 20 x %s = %s"
            % (IN, READ, WRITE_5M, WRITE_1H, OUT, want))
    t.is_eq(key_row(env, token), (want, Decimal(0)),
            "the key's spend is exactly %s, nothing reserved" % want)
    t.is_eq(crow.get("reserved"), Decimal(0), "nothing reserved for the customer")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM reservations")[0][0]), 0, "no hold left")
    t.diag("the session's charge: %s USD, ledger row %s" % (
        row.get("spend"), row.get("request_id")))

    # -- a session refused: the key's budget is below the hold --
    small = Decimal("0.01")
    hold = (body_len + TOOLS_OVERHEAD) * WRITE_1H + MAX_TOKENS * OUT
    t.ok(small < hold < budget, "the hold of Claude Code's request (about %s for %d bytes "
         "and max_tokens %d) is above %s and fits the budgets (%s)"
         % (hold, body_len, MAX_TOKENS, small, budget))
    key_s, token_s = generate_key(t, env, str(small))
    env.upstream.reset()
    n_rows = env.sql("SELECT COUNT(*) FROM spend_logs")[0][0]
    s0 = Session(t, env, claude, "over-budget", key_s, srv.port)
    t.ok(s0.rc not in (0, None), "over budget: claude exits non-zero (not a timeout)",
         *s0.outputs())
    t.like(s0.stdout, r"^API Error: Request rejected \(429\) · ",
           "over budget: claude reports tollgate's 429")
    t.ok(ANSWER not in s0.stdout, "over budget: no answer printed")
    t.ok(s0.elapsed < RETRY_SERIES, "over budget: claude gives up at once (%.1f s), obeying "
         "x-should-retry: false (its retries of a 429 take minutes)" % s0.elapsed,
         *s0.outputs())
    t.is_eq(env.upstream.requests(), [], "over budget: the upstream received nothing")
    t.is_eq(env.sql("SELECT COUNT(*) FROM spend_logs")[0][0], n_rows,
            "over budget: no ledger row written")
    t.is_eq(key_row(env, token_s), (Decimal(0), Decimal(0)),
            "over budget: the key is charged nothing, holds nothing")
    crow = env.customer_row(CUSTOMER) or {}
    t.is_eq((crow.get("spend"), crow.get("reserved")), (want, Decimal(0)),
            "over budget: the customer is charged nothing more")
    t.is_eq(int(env.sql("SELECT COUNT(*) FROM reservations")[0][0]), 0, "no hold left")
    # What Claude Code was told, asked again directly: the same key, a body
    # whose hold (max_tokens alone) is above the key's budget too.
    r = env.request("POST", "/v1/messages?beta=true", key=key_s,
                    headers={"x-litellm-customer-id": CUSTOMER},
                    body={"model": MODEL, "max_tokens": MAX_TOKENS, "stream": True,
                          "messages": [{"role": "user", "content": PROMPT}]})
    err = (r.json or {}).get("error") if isinstance(r.json, dict) else None
    err = err if isinstance(err, dict) else {}
    t.diag("tollgate's answer to the same call by hand: %d x-should-retry: %s %s"
           % (r.status, r.header("x-should-retry"), r.text[:300]))
    t.is_eq((r.status, (r.json or {}).get("type"), err.get("type"), r.header("x-should-retry")),
            (429, "error", "rate_limit_error", "false"),
            "the same call by hand: 429 rate_limit_error, x-should-retry false", r.text[:300])
    t.is_eq(s0.stdout.strip(), "API Error: Request rejected (429) · %s" % err.get("message"),
            "over budget: the message claude prints is tollgate's", *s0.outputs())
    t.is_eq(env.upstream.requests(), [], "the upstream still received nothing")


if __name__ == "__main__":
    H.run(main)
