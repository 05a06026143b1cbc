#!/usr/bin/env python3
"""apache: tollgate behind Apache httpd, in every shape of SPEC 10.

The same scenarios run behind a private Apache (etc/apache-main.conf.in)
in each shape, on one MariaDB and one fake upstream:

  apache-fcgid         mod_fcgid starts the programs (etc/apache-fcgid.conf.in)
  apache-proxy-fcgi    mod_proxy_fcgi to programs kept by tools/tollgate-spawn
  apache-cgi           plain CGI, one process per request
  htaccess-cgi         the shared-hosting layout of hosting/ (.htaccess files
  htaccess-fcgid       only, SetEnv for the settings) under a host config with
                       AllowOverride All and mod_deflate on, its cgi-bin/
                       handler cgi-script or fcgid-script

Each: the seed flow (budget/new, customer/new, a chat with `user`,
/customer/info with the spend, each served by a process of its own program
in the FastCGI shapes; a budget refusal), every route reaching its
program, the admin UI's static files at /ui/, a stream arriving event by
event while the upstream is still sending (through a host that compresses), the Authorization header passed
(a wrong key is 401 in the envelope), bodies over 1 MB (2 MiB accepted, over
the 10 MiB cap 413 in the envelope, over 16 MiB refused by the server, as
behind lighttpd), /health/readiness (the database reached by the web
user), and the workers and programs running as that user, never root.
Then, per shape: tollgate-spawn starting a killed program again,
replacing them all on SIGHUP, and stopping promptly; the .htaccess's no-gzip being what keeps a CGI stream
from being held back by mod_deflate.

Skipped as a whole only when apache2 is not installed (script/test
installs it: apache2, libapache2-mod-fcgid).
"""

import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402

# (label, shape, keyword arguments of start_apache)
SHAPES = [
    ("apache-fcgid", "apache-fcgid", {}),
    ("apache-proxy-fcgi", "apache-proxy-fcgi", {}),
    ("apache-cgi", "apache-cgi", {}),
    ("htaccess-cgi", "apache-htaccess", {"htaccess_handler": "cgi-script"}),
    ("htaccess-fcgid", "apache-htaccess", {"htaccess_handler": "fcgid-script"}),
]
EXCEEDED_RE = re.compile(r"^ExceededBudget: End User=(.*) over budget\. Spend=(\S+), Budget=(\S+)$")


def fastcgi(srv):
    """Whether srv runs the programs as FastCGI (not one process per
    request): lighttpd (tests/e2e/install.py runs seed() behind it too) and
    every Apache shape but the CGI ones."""
    shape = getattr(srv, "shape", "lighttpd")
    return shape in ("lighttpd", "apache-fcgid", "apache-proxy-fcgi") or (
        shape == "apache-htaccess" and srv.htaccess_handler == "fcgid-script")


def served_by(env, srv, tag, r, program, path):
    """r, the first request to path on srv, came from a process of program
    (FastCGI shapes: its first request logs "config loaded" under r's id;
    a CGI process logs none, and the CGI shapes name each program's file
    in the routing)."""
    if fastcgi(srv):
        env.check_served_by(srv, r, program, "%s: %s" % (tag, path))


def seed(t, env, srv, tag):
    """The customer flow of the README walkthrough, each of its endpoints
    served by a process of its own program."""
    tier = tag + "-tier"
    r = env.budget_new(server=srv, budget_id=tier, max_budget=1)
    t.is_eq((r.status, (r.json or {}).get("budget_id")), (200, tier), "%s: budget/new" % tag)
    served_by(env, srv, tag, r, "budget_new", "/budget/new")
    user = tag + "-customer"
    r = env.customer_new(server=srv, user_id=user, budget_id=tier)
    t.is_eq((r.status, (r.json or {}).get("budget_id")), (200, tier),
            "%s: customer/new on the tier" % tag)
    served_by(env, srv, tag, r, "customer_new", "/customer/new")
    r = env.chat(server=srv, user=user, fake={"usage": {"prompt_tokens": 13, "completion_tokens": 17}})
    t.is_eq(r.status, 200, "%s: chat with user: 200" % tag, r.text[:300])
    served_by(env, srv, tag, r, "chat_completions", "/chat/completions")
    t.is_eq(dec(r.header("x-litellm-response-cost")), cost(13, 17), "%s: cost header" % tag)
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and (row["end_user"], row["spend"], row["status"]), (user, cost(13, 17), "success"),
            "%s: the call's ledger row" % tag)
    r = env.customer_info(user, server=srv)
    info = r.json if isinstance(r.json, dict) else {}
    t.is_eq((r.status, info.get("user_id"), dec(info.get("spend")), info.get("budget_id")),
            (200, user, cost(13, 17), tier), "%s: customer/info shows the spend" % tag, r.text[:300])
    served_by(env, srv, tag, r, "customer_info", "/customer/info")
    t.is_eq(dec((info.get("litellm_budget_table") or {}).get("max_budget")), Decimal(1),
            "%s: customer/info shows the tier's max_budget" % tag)
    row = env.customer_row(user) or {}
    t.is_eq((row.get("spend"), row.get("reserved")), (env.ledger_sum(user), Decimal(0)),
            "%s: spend == ledger sum, nothing reserved" % tag)

    r = env.customer_new(server=srv, user_id=tag + "-broke", max_budget="0")
    t.is_eq(r.status, 200, "%s: customer/new with max_budget 0" % tag)
    r = env.chat(server=srv, user=tag + "-broke")
    env.check_error(r, 429, "budget_exceeded", message=EXCEEDED_RE, what="%s: over budget" % tag)
    t.is_eq(r.header("x-should-retry"), "false", "%s: 429 with x-should-retry: false" % tag)


def routes(t, env, srv, tag):
    """Every path reaches its program, as etc/lighttpd.conf.in maps them."""
    user = tag + "-customer"
    r = env.request("GET", "/v1/models", server=srv)
    t.is_eq((r.status, [m.get("id") for m in (r.json or {}).get("data", [])][:1]),
            (200, ["fake-gpt"]), "%s: /v1/models (models)" % tag, r.text[:200])
    r = env.request("GET", "/models", server=srv)
    t.is_eq(r.status, 200, "%s: /models (models)" % tag)
    r = env.customer_info(user, server=srv, path="/end_user/info")
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, user),
            "%s: /end_user/info (customer_info)" % tag)
    r = env.request("POST", "/end_user/new", body={"user_id": tag + "-eu"}, server=srv)
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, tag + "-eu"),
            "%s: /end_user/new (customer_new)" % tag, r.text[:200])
    r = env.request("POST", "/end_user/update", body={"user_id": tag + "-eu", "alias": "eu"},
                    server=srv)
    t.is_eq((r.status, (r.json or {}).get("alias")), (200, "eu"),
            "%s: /end_user/update (customer)" % tag, r.text[:200])
    r = env.request("POST", "/budget/update", body={"budget_id": tag + "-tier", "max_budget": 1},
                    server=srv)
    t.is_eq(r.status, 200, "%s: /budget/update (budget)" % tag, r.text[:200])
    r = env.request("GET", "/spend/logs?end_user=" + user, server=srv)
    t.is_eq((r.status, len(r.json) if isinstance(r.json, list) else None), (200, 1),
            "%s: /spend/logs (customer): the call's row" % tag, r.text[:200])
    r = env.request("GET", "/budget/list", server=srv)
    t.ok(r.status == 200 and any(b.get("budget_id") == tag + "-tier" for b in r.json or []),
         "%s: /budget/list (budget)" % tag, r.text[:200])
    r = env.request("POST", "/key/generate", body={"key_alias": tag + "-app"}, server=srv)
    key = (r.json or {}).get("key")
    t.ok(r.status == 200 and key, "%s: /key/generate (key)" % tag, r.text[:200])
    r = env.chat(server=srv, user=user, key=key)
    t.is_eq(r.status, 200, "%s: a chat with the virtual key" % tag)
    r = env.request("GET", "/key/info", server=srv, key=key)
    t.ok(r.status == 200 and dec(((r.json or {}).get("info") or {}).get("spend")) > 0,
         "%s: /key/info of the key itself shows its spend" % tag, r.text[:200])
    r = env.chat(server=srv, user=user, path="/v1/chat/completions")
    t.is_eq(r.status, 200, "%s: /v1/chat/completions (chat_completions)" % tag)
    # The other LLM APIs reach their programs, charged to the customer.
    for path, body in (("/v1/responses", {"model": "fake-gpt", "input": "hi"}),
                       ("/responses", {"model": "fake-gpt", "input": "hi"}),
                       ("/v1/embeddings", {"model": "fake-gpt", "input": ["a", "b"]}),
                       ("/embeddings", {"model": "fake-gpt", "input": "a"}),
                       ("/v1/completions", {"model": "fake-gpt", "prompt": "hi"}),
                       ("/completions", {"model": "fake-gpt", "prompt": "hi"})):
        r = env.request("POST", path, server=srv, body=dict(body, user=user))
        row = env.ledger_row(r.header("x-litellm-call-id") or "") or {}
        t.is_eq((r.status, row.get("end_user")), (200, user),
                "%s: %s (%s), charged to the customer" % (tag, path, path.split("/")[-1]),
                r.text[:200])
        if path == "/v1/responses":
            rid = (r.json or {}).get("id")
            g = env.request("GET", "/v1/responses/%s/input_items" % rid, server=srv)
            t.is_eq(g.status, 200, "%s: GET /v1/responses/<id>/input_items (responses)"
                    % tag, g.text[:200])
    # Anthropic's Messages API reaches its program (its errors in
    # Anthropic's envelope), charged to the customer named in a header.
    r = env.request("POST", "/v1/messages", server=srv, headers={"x-litellm-customer-id": user},
                    body={"model": "fake-claude", "max_tokens": 10,
                          "messages": [{"role": "user", "content": "hi"}]})
    row = env.ledger_row(r.header("x-litellm-call-id") or "") or {}
    t.is_eq((r.status, row.get("end_user")), (200, user),
            "%s: /v1/messages (messages), charged to the customer" % tag, r.text[:200])
    r = env.request("POST", "/v1/messages", server=srv, body={"model": "fake-claude"})
    t.is_eq((r.status, (r.json or {}).get("type")), (400, "error"),
            "%s: /v1/messages without max_tokens: 400 in Anthropic's envelope" % tag,
            r.text[:200])
    r = env.request("GET", "/chat/completions", server=srv)
    env.check_error(r, 405, "invalid_request_error", what="%s: GET /chat/completions" % tag)
    r = env.request("GET", "/no/such/path?x=1", server=srv)
    env.check_error(r, 404, "not_found", what="%s: unknown path (health)" % tag)
    r = env.request("GET", "/health/liveliness", server=srv, key=None)
    t.is_eq((r.status, r.json), (200, "I'm alive!"), "%s: /health/liveliness" % tag)
    # Control characters are ordinary in ids, read back percent-encoded
    # (README "Customer ids": Apache passes the query on undecoded).
    odd = tag + "\tid\x7f"
    r = env.customer_new(server=srv, user_id=odd)
    t.is_eq(r.status, 200, "%s: customer/new with a tab and DEL in the id" % tag)
    r = env.customer_info(odd, server=srv)
    t.is_eq((r.status, (r.json or {}).get("user_id")), (200, odd),
            "%s: customer/info reads it back percent-encoded" % tag, r.text[:200])


def admin_ui(t, env, srv, tag):
    """The admin UI's static files, as behind lighttpd (tests/e2e/ui.py
    drives it in browsers there): /ui redirected, the content types a
    browser needs for modules, the caching and security headers."""
    r = env.request("GET", "/ui", server=srv, key=None)
    t.ok(r.status == 301 and (r.header("location") or "").endswith("/ui/"),
         "%s: /ui redirects to /ui/" % tag, "%s %r" % (r.status, r.header("location")))
    for path, ctype, cache in (("/ui/", "text/html; charset=utf-8", "no-cache"),
                               ("/ui/app.js", "text/javascript; charset=utf-8", "no-cache"),
                               ("/ui/app.css", "text/css; charset=utf-8", "no-cache"),
                               ("/ui/vendor/uPlot.esm.js", "text/javascript; charset=utf-8",
                                "max-age=86400")):
        r = env.request("GET", path, server=srv, key=None)
        t.is_eq((r.status, r.header("content-type"), r.header("cache-control")),
                (200, ctype, cache), "%s: %s, its type and caching" % (tag, path))
    r = env.request("GET", "/ui/", server=srv, key=None)
    t.ok("app.js" in r.text and (r.header("content-security-policy") or "").startswith(
        "default-src 'self';"), "%s: index.html, with its Content-Security-Policy" % tag)
    r = env.request("GET", "/ui/no-such-file.js", server=srv, key=None)
    t.is_eq(r.status, 404, "%s: an unknown UI file is 404" % tag)


def readiness(t, env, srv, tag):
    r = env.request("GET", "/health/readiness", server=srv, key=None)
    js = r.json if isinstance(r.json, dict) else {}
    t.is_eq((r.status, js.get("status"), js.get("db")), (200, "healthy", "connected"),
            "%s: /health/readiness: healthy, the web user reaches the database" % tag, r.text[:300])


def auth(t, env, srv, tag):
    r = env.chat(server=srv, user=tag + "-customer", key="sk-wrong")
    env.check_error(r, 401, "auth_error",
                    message="Authentication Error, Invalid proxy server token passed.",
                    what="%s: wrong key" % tag)
    r = env.customer_info(tag + "-customer", server=srv, key=None)
    env.check_error(r, 401, "auth_error", message="Authentication Error, No api key passed in.",
                    what="%s: no key" % tag)
    r = env.request("GET", "/customer/info?end_user_id=" + tag + "-customer", server=srv, key=None,
                    headers={"x-litellm-api-key": H.MASTER_KEY})
    t.is_eq(r.status, 200, "%s: key in x-litellm-api-key" % tag)


def bodies(t, env, srv, tag):
    """Bodies over 1 MB: as behind lighttpd."""
    r = env.chat(server=srv, user=None, content="w" * (2 * 1024 * 1024))
    t.is_eq(r.status, 200, "%s: a 2 MiB chat body is accepted" % tag, r.text[:200])
    r = env.chat(server=srv, user=None, content="w" * (10 * 1024 * 1024 + 100))
    env.check_error(r, 413, "invalid_request_error", what="%s: chat body over 10 MiB" % tag)
    r = env.chat(server=srv, user=None, content="w" * (17 * 1024 * 1024))
    t.is_eq(r.status, 413, "%s: a body over 16 MiB is refused by the web server" % tag,
            r.text[:200])
    r = env.customer_new(server=srv, user_id=tag + "-big", alias="x" * (64 * 1024 + 10))
    env.check_error(r, 413, "invalid_request_error", what="%s: customer/new body over 64 KiB" % tag)


def stream(t, env, srv, tag, gzip=True):
    """Events relayed as the upstream sends them (200 ms apart), also when
    the client accepts gzip and the host compresses."""
    user = tag + "-customer"
    headers = {"Accept-Encoding": "gzip"} if gzip else None
    r = env.stream_chat(server=srv, user=user, headers=headers,
                        fake={"chunks": 5, "stream_interval": 0.2,
                              "usage": {"prompt_tokens": 11, "completion_tokens": 7}})
    t.is_eq((r.status, r.header("content-type", "")[:17]), (200, "text/event-stream"),
            "%s: stream: 200, an event stream" % tag, r.text[:300])
    t.ok(r.header("content-encoding") is None, "%s: stream: not compressed" % tag,
         "content-encoding %r" % r.header("content-encoding"))
    ev = r.events
    data = r.data_events()
    t.ok(bool(ev) and ev[-1]["done"] and len(data) == 7,
         "%s: stream: role + 5 content + finish events, then [DONE]" % tag,
         "events: %r" % [e["data"][:60] for e in ev])
    if len(data) >= 7:
        t.diag("%s: events arrived at %s s" % (tag, ", ".join("%.2f" % e["t"] for e in ev)))
        # The upstream sends its content events 0.2 s apart, the last 0.8 s
        # after the first: relayed unbuffered, the first arrives at least
        # 0.5 s before the last (measured between events, so that a slow
        # start under load does not count).
        t.cmp_ok(data[5]["t"] - data[1]["t"], ">=", 0.5, "%s: stream: the first content "
                 "event arrives while the upstream is still sending" % tag)
        steps = sum(1 for a, b in zip(data, data[1:]) if b["t"] - a["t"] >= 0.1)
        t.cmp_ok(steps, ">=", 4, "%s: stream: relayed event by event (%d gaps >= 0.1 s)"
                 % (tag, steps))
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and (row["status"], row["spend"]), ("success", cost(11, 7)),
            "%s: stream: charged the upstream's usage" % tag)
    # A Responses stream, event by event too, its terminal event after
    # the charge.
    r = env.stream_chat(server=srv, path="/v1/responses", headers=headers, body={
        "model": "fake-gpt", "input": "hi", "user": user, "stream": True,
        "fake": {"chunks": 4, "stream_interval": 0.2,
                 "usage": {"input_tokens": 5, "output_tokens": 6}}})
    types = [(e["json"] or {}).get("type") for e in r.events]
    t.ok(r.status == 200 and types and types[-1] == "response.completed"
         and types.count("response.output_text.delta") == 4,
         "%s: responses stream: 4 deltas, then response.completed" % tag, repr(types))
    deltas = [e for e in r.events if (e["json"] or {}).get("type") ==
              "response.output_text.delta"]
    if len(deltas) == 4:
        t.cmp_ok(deltas[3]["t"] - deltas[0]["t"], ">=", 0.4, "%s: responses stream: relayed "
                 "while the upstream is still sending" % tag)
    row = env.ledger_row(r.header("x-litellm-call-id") or "")
    t.is_eq(row and (row["status"], row["spend"]), ("success", cost(5, 6)),
            "%s: responses stream: charged the upstream's usage" % tag)


def web_user_only(t, env, srv, tag):
    """Below the root main process, everything runs as the web user."""
    if os.geteuid() != 0:
        t.skip("%s: workers and programs run as the web user" % tag, "not root: Apache runs as us")
        return
    uids = {}
    for pid in srv.children():
        try:
            with open("/proc/%d/status" % pid) as f:
                m = re.search(r"^Uid:\s+(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            uids[pid] = int(m.group(1))
    t.ok(uids and all(u == srv.uid for u in uids.values()),
         "%s: the %d workers and programs run as %s (uid %d), not root"
         % (tag, len(uids), srv.user, srv.uid),
         "uids: %r" % ({p: (u, H._cmdline(p)[:80]) for p, u in uids.items()},))


def spawn_restarts(t, env, srv, tag):
    """tollgate-spawn starts a killed program again."""
    pids = srv.program_pids("chat_completions")
    t.is_eq(len(pids), srv.max_procs, "%s: tollgate-spawn runs %d chat_completions"
            % (tag, srv.max_procs), "pids %r" % pids)
    if not pids:
        return
    srv.expect_child_deaths = True
    os.kill(pids[0], signal.SIGKILL)
    again = H.wait_for(lambda: len(srv.program_pids("chat_completions")) == srv.max_procs
                       and pids[0] not in srv.program_pids("chat_completions"), timeout=5)
    t.ok(again, "%s: a killed chat_completions is started again" % tag,
         "now %r" % srv.program_pids("chat_completions"))
    r = env.chat(server=srv, user=tag + "-customer")
    t.is_eq(r.status, 200, "%s: chats go on after the restart" % tag)
    # SIGHUP: every process replaced, one after the other.
    before = set()
    for p in H.PROGRAMS:
        before |= set(srv.program_pids(p))
    os.kill(srv.spawn_proc.pid, signal.SIGHUP)

    def replaced():
        now = set()
        for p in H.PROGRAMS:
            now |= set(srv.program_pids(p))
        return len(now) == len(before) and not (now & before)
    t.ok(H.wait_for(replaced, timeout=10), "%s: SIGHUP to tollgate-spawn replaces all %d "
         "processes" % (tag, len(before)))
    r = env.chat(server=srv, user=tag + "-customer")
    t.is_eq(r.status, 200, "%s: chats go on after SIGHUP" % tag)


def deflate_holds_cgi_streams(t, env, srv, tag):
    """Without the .htaccess's no-gzip, the host's mod_deflate holds a CGI
    stream back to its end: why the line is there (README)."""
    path = os.path.join(srv.docroot, ".htaccess")
    with open(path) as f:
        text = f.read()
    try:
        with open(path, "w") as f:  # read again by Apache on every request
            f.write(text.replace("SetEnv no-gzip 1", "# SetEnv no-gzip 1"))
        body = (b'{"model": "fake-gpt", "stream": true, "messages": [{"role": "user", '
                b'"content": "x"}], "fake": {"chunks": 5, "stream_interval": 0.2}}')
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                  b"Authorization: Bearer " + H.MASTER_KEY.encode() + b"\r\n"
                  b"Accept-Encoding: gzip\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        t0, arrivals, raw = time.monotonic(), [], b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            arrivals.append(time.monotonic() - t0)
            raw += d
        s.close()
        t.ok(b"content-encoding: gzip" in raw.lower(), "%s without no-gzip: the stream is "
             "compressed" % tag, raw[:300])
        t.cmp_ok(arrivals[0] if arrivals else 0, ">=", 0.9, "%s without no-gzip: nothing "
                 "arrives before the upstream has finished (first bytes at %.2f s)"
                 % (tag, arrivals[0] if arrivals else 0))
    finally:
        with open(path, "w") as f:
            f.write(text)


def config(env):
    """The standard test config, with an anthropic/ model (fake-claude) for
    /v1/messages: what seed() and routes() call."""
    return env.config(models=[
        env.model("fake-gpt"), env.model("fake-gpt-2"),
        {"model_name": "fake-claude",
         "litellm_params": {"model": "anthropic/fake-claude", "api_base": env.upstream.base,
                            "api_key": H.UPSTREAM_KEY},
         "model_info": {"input_cost_per_token": H.IN_PRICE,
                        "output_cost_per_token": H.OUT_PRICE}}])


def main(t, env):
    cfg = env.write_config("main", config(env))
    for tag, shape, kw in SHAPES:
        why = H.apache_missing(shape)
        if why:
            t.skip("%s: every scenario" % tag, why)
            continue
        t0 = time.monotonic()
        srv = env.start_apache(cfg, shape=shape, name=tag, max_procs=2, **kw)
        t.diag("%s: Apache on port %d, started in %.2f s" % (tag, srv.port, time.monotonic() - t0))
        seed(t, env, srv, tag)
        routes(t, env, srv, tag)
        admin_ui(t, env, srv, tag)
        readiness(t, env, srv, tag)
        auth(t, env, srv, tag)
        stream(t, env, srv, tag)
        bodies(t, env, srv, tag)
        web_user_only(t, env, srv, tag)
        H.keepalive_checks(t, env, srv, tag)
        if shape == "apache-proxy-fcgi":
            spawn_restarts(t, env, srv, tag)
        if tag == "htaccess-cgi":
            deflate_holds_cgi_streams(t, env, srv, tag)
        t1 = time.monotonic()
        srv.stop()
        t.cmp_ok(time.monotonic() - t1, "<", 10, "%s: stops within 10 s (%.2f s)"
                 % (tag, time.monotonic() - t1))
        t.diag("%s: %.1f s in all" % (tag, time.monotonic() - t0))


if __name__ == "__main__":
    missing = H.apache_missing()
    if missing and not os.path.exists("/usr/sbin/apache2"):
        H.skip_all("apache2 not installed (script/test installs apache2 and "
                   "libapache2-mod-fcgid): " + missing)
    H.run(main)
