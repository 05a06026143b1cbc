#!/usr/bin/env python3
"""ui: the admin UI (SPEC 14, issue 10) in real browsers.

The servers are started here (MariaDB, the fake upstream, lighttpd with
etc/lighttpd.conf.in serving the built UI at /ui/), with more than 10,000
customers inserted by SQL and two with spends a float cannot hold
(0.0000000001 and 123456789.0123456789).  Then:
  * the static files: /ui redirects to /ui/, each file's content type and
    caching headers, the security headers, the charting library built in;
  * tests/ui/ui-test.cjs drives Debian's chromium (headless, through the
    pinned playwright-core) through every flow: sign-in (wrong key refused
    with the API's message, right key accepted), paging and search over
    the 10,000+, the exact amounts, the seed's "+ Create Budget" (checked
    equal to what the seed's /budget/new curl makes), a customer on that
    tier, its spend after chats in the table and in the Usage chart,
    totals and top 10 equal to the API's, block (its next chat 403) and
    unblock, editing a budget and a customer, deleting with confirmation,
    keys (generate, copy, curl with it, block, delete), tags (create with
    a budget, a tagged call's spend in the table, block, delete), one
    flow by keyboard alone; the budget-use bars of customers, keys and
    tags made to spend either side of each alert threshold (85%, 95%,
    100%), a call in flight counted, a tier's customers counted at each;
    the Usage tab's period (a period without activity shows none), spend
    by model equal to the report's sums, the calls of no customer; the
    CSV export downloaded through its buttons, its spend adding up to the
    report's total to the last digit, and per customer; each tab at 1400
    and 390 px wide (no sideways scrolling of the page);
  * the same script drives Debian's firefox-esr through WebDriver BiDi
    (playwright-core's moz-firefox channel) over the main views, the
    exact amounts, the seed's dialog, a chart, the bars, the Usage tab's
    period and breakdowns, the export and the tabs at both widths.
Each check of the browser side is a test point here; screenshots of every
tab are saved under the build directory (tests/e2e/ui-screenshots).

chromium, firefox-esr and node come from apt, playwright-core and uPlot
from npm (script/test installs them).  A missing piece fails the test in
CI (CI=true) and wherever every suite is required (TG_REQUIRE_ALL=1, as
script/test sets it); elsewhere it skips what needs it, saying why.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

UI_TESTS = os.path.join(H.SRCDIR, "tests", "ui")
SCRIPT = os.path.join(UI_TESTS, "ui-test.cjs")
PINNED = "1.61.1"
SHOTS = os.path.join(H.BUILDDIR, "tests", "e2e", "ui-screenshots")
BULK = 10500
IN_CI = os.environ.get("CI") == "true"


def find(*names):
    for n in names:
        p = shutil.which(n) or (n if os.path.isabs(n) and os.access(n, os.X_OK) else None)
        if p:
            return p
    return None


def node_modules():
    """A node_modules holding the pinned playwright-core."""
    return H.npm_modules(UI_TESTS, "playwright-core", "TG_UI_NODE_MODULES")


def seed(env):
    """10,500 customers in one statement (MariaDB's sequence engine), and
    two whose spend (and ledger row, today) a double cannot hold."""
    env.sql("INSERT INTO customers (user_id, alias) SELECT CONCAT('bulk-', LPAD(seq, 5, '0')),"
            " CONCAT('Bulk customer ', seq) FROM seq_1_to_%d" % BULK)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    for user, spend, call_type in (("exact-big", "123456789.0123456789", "aresponses"),
                                   ("exact-tiny", "0.0000000001", "aembedding")):
        env.sql("INSERT INTO customers (user_id, spend) VALUES (%s, %s)" % (H.sql_quote(user), spend))
        env.sql("INSERT INTO spend_logs (request_id, end_user, model, call_type, status, spend,"
                " prompt_tokens, completion_tokens, total_tokens, start_time, end_time) VALUES"
                " (%s, %s, 'fake-gpt', %s, 'success', %s, 1, 1, 2, '%s', '%s')"
                % (H.sql_quote("seed-" + user), H.sql_quote(user), H.sql_quote(call_type), spend,
                   now, now))


def static_files(t, env, chart):
    """What the web server does for the UI, without a browser (without
    the charting library when chart says why it is missing)."""
    r = env.request("GET", "/ui", key=None)
    t.is_eq((r.status, r.header("location")), (301, "/ui/"), "/ui redirects to /ui/")
    want = {
        "/ui/": ("text/html; charset=utf-8", "no-cache"),
        "/ui/app.js": ("text/javascript; charset=utf-8", "no-cache"),
        "/ui/app.css": ("text/css; charset=utf-8", "no-cache"),
        "/ui/favicon.svg": ("image/svg+xml", "no-cache"),
        "/ui/vendor/uPlot.esm.js": ("text/javascript; charset=utf-8", "max-age=86400"),
        "/ui/vendor/uPlot.min.css": ("text/css; charset=utf-8", "max-age=86400"),
    }
    for path, (ctype, cache) in want.items():
        if chart is not None and "/vendor/" in path:
            t.skip("%s: content type and caching" % path, chart)
            continue
        r = env.request("GET", path, key=None)
        t.is_eq((r.status, r.header("content-type"), r.header("cache-control")), (200, ctype, cache),
                "%s: content type and caching" % path)
    r = env.request("GET", "/ui/", key=None)
    t.like(r.header("content-security-policy") or "", r"^default-src 'self';",
           "the UI may load and call its own server only (Content-Security-Policy)")
    t.is_eq(r.header("x-content-type-options"), "nosniff", "X-Content-Type-Options: nosniff")
    t.ok("<label for=\"master-key\">" in r.text or "Master key" in r.text or "app.js" in r.text,
         "index.html loads the app")
    r = env.request("GET", "/ui/vendor/uPlot.esm.js", key=None)
    if chart is not None:
        t.skip("the charting library (uPlot, from npm) is built into the UI", chart)
    else:
        t.ok(r.status == 200 and "uPlot" in r.text and len(r.body) > 50000,
             "the charting library (uPlot, from npm) is built into the UI",
             "got %d bytes: %r (run `npm ci` in ui/ and make)" % (len(r.body), r.text[:200]))
    r = env.request("GET", "/ui/no-such-file.js", key=None)
    t.is_eq(r.status, 404, "an unknown UI file is 404")
    r = env.request("GET", "/ui/../etc/passwd", key=None)
    t.ok(r.status in (400, 403, 404), "no way out of the UI directory (%d)" % r.status)
    r = env.request("GET", "/customer/list?page=1&page_size=1")
    t.is_eq(r.status, 200, "the API still answers beside the UI")


def run_browser(t, env, node, mods, browser, executable):
    """ui-test.cjs in one browser; each CHECK line is a test point."""
    os.makedirs(SHOTS, exist_ok=True)
    penv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.tmp, "TZ": "UTC",
            "LANG": "C.UTF-8", "NODE_PATH": mods,
            "TG_UI_BASE": "http://127.0.0.1:%d" % env.server.port,
            "TG_MASTER_KEY": H.MASTER_KEY, "TG_UI_BROWSER": browser,
            "TG_UI_EXECUTABLE": executable, "TG_UI_SHOTS": SHOTS,
            "TG_UI_TODAY": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    if os.environ.get("DISPLAY"):
        penv["DISPLAY"] = os.environ["DISPLAY"]
    t0 = time.monotonic()
    proc = subprocess.Popen([node, SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=penv, cwd=env.tmp, preexec_fn=H._pdeathsig)
    checks = 0
    rest = []
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("CHECK "):
                try:
                    c = json.loads(line[6:])
                except ValueError:
                    t.fail("a malformed check line", line)
                    continue
                checks += 1
                t.ok(c["ok"], c["name"], *c.get("diag", []))
            elif line.startswith("# "):
                t.diag(line[2:])
            else:
                rest.append(line)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    t.ok(proc.returncode == 0 and checks > 0, "%s: ui-test.cjs ran (%d checks, %.1f s)"
         % (browser, checks, time.monotonic() - t0), *rest[-40:])


def chart_missing():
    """Why the build has no charting library (a stub instead), or None."""
    lib = os.path.join(H.BUILDDIR, "ui", "www", "vendor", "uPlot.esm.js")
    if os.path.isfile(lib) and os.path.getsize(lib) > 50000:
        return None
    return ("the charting library is not built into the UI (uPlot: `npm ci` in ui/, "
            "then make; script/test does)")


def main(t, env):
    env.start_lighttpd(env.write_config("main", env.config()), max_procs=2)
    chart = chart_missing()
    static_files(t, env, chart)
    if chart is not None:
        t.skip("the browser tests", chart)
        return
    node = find("node", "nodejs")
    if node is None:
        raise H.Missing("node not found (install nodejs and npm; script/test does)")
    mods = node_modules()
    with open(os.path.join(mods, "playwright-core", "package.json")) as f:
        t.is_eq(json.load(f).get("version"), PINNED, "the pinned playwright-core is installed (%s)" % mods)
    seed(env)
    t.diag("screenshots: %s" % SHOTS)
    for browser, names in (("chromium", ("chromium", "/usr/bin/chromium")),
                           ("firefox", ("firefox-esr", "firefox", "/usr/bin/firefox-esr"))):
        exe = find(*names)
        if exe is None:
            why = "%s is not installed (apt-get install %s; script/test does)" % (browser, names[0])
            if IN_CI:
                t.fail("%s: the browser is installed" % browser, why)
            else:
                t.skip("%s: the browser tests" % browser, why)
            continue
        run_browser(t, env, node, mods, browser, exe)


if __name__ == "__main__":
    H.run(main)
