#!/usr/bin/env python3
"""install: `make install` gives a tree that works on its own (SPEC 10).

Under `make check`: `make install DESTDIR=<tmp>` from the build directory
(the objects already built; a fresh configure and build would cost a
minute more and prove nothing the distcheck does not), then, against the
installed tree only:
- what is installed, where configure said (make's own cgibindir, bindir,
  pkgdatadir): the programs in cgibindir and nothing else there, the three
  tools in bindir, every sql/*.sql, the price file, the demo config and
  the web server templates of etc/ and hosting/ (byte for byte), the
  admin UI (the build's ui/www, byte for byte, its chart library
  included), the spool directory; nothing outside the prefix, no test program; each tool
  answers --help;
- the installed tollgate-migrate creates the schema from the installed SQL
  directory on a fresh MariaDB;
- lighttpd (the project's template) runs the installed programs with the
  installed price file: the seed flow (budget/new, customer/new on the
  tier, a chat with `user`, /customer/info with the spend, a refusal over
  budget), every route, the installed UI at /ui/; the installed demo
  config's mock models priced from the installed price file.

Under `make installcheck` (TG_INSTALLED=1; `make distcheck` runs it on its
own prefix) the same against the tree already installed, and with the
compiled-in defaults instead of explicit paths: tollgate-migrate without
--sql-dir, the programs without TOLLGATE_PRICE_FILE.
"""

import filecmp
import glob
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402
import apache  # noqa: E402  (its seed flow and routes, behind any server)

INSTALLED = os.environ.get("TG_INSTALLED") == "1"
TOOLS = ("tollgate-migrate", "tollgate-deliver", "tollgate-spawn", "tollgate-prices",
         "tollgate-archive")
DIRS = ("prefix", "bindir", "cgibindir", "pkgdatadir", "sqldir", "spooldir")


def make_env():
    """The environment for a make of our own: not the jobserver of the
    make running the tests."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR"):
        env.pop(k, None)
    return env


def install_dirs():
    """The installation directories as the build directory's Makefile
    has them (configure's choices, expanded by make)."""
    rule = "tg-print-dirs:\n" + "".join('\t@echo "%s=$(%s)"\n' % (d, d) for d in DIRS)
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", H.BUILDDIR, "-f", "Makefile",
                        "-f", "-", "tg-print-dirs"], input=rule.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=make_env(), timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    dirs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if r.returncode != 0 or set(dirs) != set(DIRS) or not all(dirs.values()):
        raise H.SetupError("cannot read the install directories from %s/Makefile:\n%s"
                           % (H.BUILDDIR, out))
    return dirs


def installed_files(root):
    found = []
    for base, _dirs, files in os.walk(root):
        found += [os.path.join(base, f) for f in files]
    return sorted(found)


def shipped_templates():
    """The files `make install` copies from etc/ and hosting/ as they are,
    relative to the source tree."""
    rels = ["etc/config.demo.yaml", "etc/model_prices.json"]
    rels += [os.path.relpath(p, H.SRCDIR) for p in glob.glob(os.path.join(H.SRCDIR, "etc", "*.conf.in"))]
    for base, _dirs, files in os.walk(os.path.join(H.SRCDIR, "hosting")):
        rels += [os.path.relpath(os.path.join(base, f), H.SRCDIR) for f in files]
    return sorted(rels)


def check_tree(t, dest, dirs):
    """What is installed, and where."""
    at = {k: dest + v for k, v in dirs.items()}
    progs = sorted(os.listdir(at["cgibindir"])) if os.path.isdir(at["cgibindir"]) else []
    t.is_eq(progs, sorted(H.PROGRAMS), "cgibindir %s holds the programs, nothing else" % dirs["cgibindir"])
    t.ok(all(os.access(os.path.join(at["cgibindir"], p), os.X_OK) for p in progs),
         "the programs are executable")
    tools = sorted(f for f in os.listdir(at["bindir"]) if f.startswith("tollgate")) \
        if os.path.isdir(at["bindir"]) else []
    t.is_eq(tools, sorted(TOOLS), "bindir %s holds the tools" % dirs["bindir"])
    for tool in TOOLS:
        path = os.path.join(at["bindir"], tool)
        r = subprocess.run([path, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=dict(os.environ, **H.SANITIZER_ENV), timeout=30) \
            if os.access(path, os.X_OK) else None
        t.ok(r is not None and r.returncode == 0 and b"usage:" in r.stdout,
             "installed %s --help answers" % tool, r and r.stdout.decode("utf-8", "replace"))
        if tool == "tollgate-migrate" and r is not None:
            t.ok(dirs["sqldir"].encode() in r.stdout,
                 "tollgate-migrate's default SQL directory is the installed one (%s)" % dirs["sqldir"],
                 r.stdout.decode("utf-8", "replace"))
    sql = sorted(os.path.basename(p) for p in glob.glob(os.path.join(H.SQL_DIR, "*.sql")))
    got = sorted(os.listdir(at["sqldir"])) if os.path.isdir(at["sqldir"]) else []
    t.is_eq(got, sql, "every migration of sql/ is installed in %s" % dirs["sqldir"])
    differ = [f for f in sql if f in got and not filecmp.cmp(os.path.join(H.SQL_DIR, f),
                                                             os.path.join(at["sqldir"], f),
                                                             shallow=False)]
    t.is_eq(differ, [], "the installed migrations are the source tree's")
    missing, differ = [], []
    for rel in shipped_templates():
        # The price file sits at the top (the programs' default path).
        inst = os.path.join(at["pkgdatadir"], os.path.basename(rel) if rel == "etc/model_prices.json"
                            else rel)
        if not os.path.isfile(inst):
            missing.append(rel)
        elif not filecmp.cmp(os.path.join(H.SRCDIR, rel), inst, shallow=False):
            differ.append(rel)
    t.is_eq(missing, [], "the price file, the demo config and the templates of etc/ and "
            "hosting/ are installed under %s" % dirs["pkgdatadir"])
    t.is_eq(differ, [], "the installed templates are the source tree's")
    ui_built = installed_files(H.UI_DIR)
    ui_rel = [os.path.relpath(p, H.UI_DIR) for p in ui_built]
    ui_dir = os.path.join(at["pkgdatadir"], "ui")
    got = [os.path.relpath(p, ui_dir) for p in installed_files(ui_dir)]
    t.ok(ui_rel and "index.html" in ui_rel and "vendor/uPlot.esm.js" in ui_rel and got == ui_rel,
         "the admin UI is installed in %s/ui, chart library included" % dirs["pkgdatadir"],
         "built: %r" % ui_rel, "installed: %r" % got)
    differ = [r for r in ui_rel if r in got and not filecmp.cmp(
        os.path.join(H.UI_DIR, r), os.path.join(ui_dir, r), shallow=False)]
    t.is_eq(differ, [], "the installed UI is the built one")
    t.ok(os.path.isdir(at["spooldir"]), "the spool directory %s is made" % dirs["spooldir"])
    # The price file's index, made beside the installed file (it names
    # the file's inode and time, so it is made there, not copied).
    prices = os.path.join(at["pkgdatadir"], "model_prices.json")
    r = subprocess.run([os.path.join(at["bindir"], "tollgate-prices"), "check", "--no-config",
                        prices], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, **H.SANITIZER_ENV), timeout=120)
    t.ok(r.returncode == 0 and b"model_prices.json.idx: valid" in r.stdout,
         "the installed price file has a valid index beside it",
         r.stdout.decode("utf-8", "replace")[-2000:])
    if not INSTALLED:
        outside = [p for p in installed_files(dest) if not p.startswith(at["prefix"] + "/")]
        t.is_eq(outside, [], "nothing is installed outside the prefix")
        tests = [p for p in installed_files(dest) if "/test-" in p or "/fuzz-" in p]
        t.is_eq(tests, [], "no test program is installed")
    return at


def demo_flow(t, env, at, price_file):
    """The installed demo config: its mock models are priced by base_model
    from the installed price file."""
    with open(os.path.join(at["pkgdatadir"], "model_prices.json")) as f:
        prices = json.load(f, parse_float=Decimal)
    srv = env.start_lighttpd(os.path.join(at["pkgdatadir"], "etc", "config.demo.yaml"),
                             name="demo", max_procs=1, bindir=at["cgibindir"],
                             price_file=price_file)
    r = env.chat(user="installed-demo", model="gpt-3.5-turbo", content="what time is it",
                 server=srv)
    usage = (r.json or {}).get("usage") or {}
    entry = prices.get("gpt-3.5-turbo") or {}
    want = None
    if isinstance(usage.get("prompt_tokens"), int) and "input_cost_per_token" in entry:
        want = cost(usage["prompt_tokens"], usage["completion_tokens"],
                    dec(entry["input_cost_per_token"]), dec(entry["output_cost_per_token"]))
    t.is_eq((r.status, dec(r.header("x-litellm-response-cost"))), (200, want),
            "installed demo config: a mock model priced from the installed price file", r.text[:300])


def main(t, env):
    dirs = install_dirs()
    if INSTALLED:
        dest = os.environ.get("TG_INSTALL_DESTDIR", "")
        t.diag("installed tree (make installcheck): DESTDIR=%r prefix %s" % (dest, dirs["prefix"]))
    else:
        dest = os.path.join(env.tmp, "destdir")
        t0 = time.monotonic()
        r = subprocess.run(["make", "-C", H.BUILDDIR, "install", "DESTDIR=" + dest],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=make_env(),
                           timeout=300)
        if not t.is_eq(r.returncode, 0, "make install DESTDIR=... from the build directory",
                       r.stdout.decode("utf-8", "replace")[-3000:]):
            return
        t.diag("make install DESTDIR=%s: %.1f s" % (dest, time.monotonic() - t0))
    at = check_tree(t, dest, dirs)

    # The database, made by the installed tools from the installed SQL.
    env.db = H.MariaDB(env.tmp)
    env.db.init()
    env.db.start()
    migrate = os.path.join(at["bindir"], "tollgate-migrate")
    out = env.migrate(migrate=migrate, sql_dir="" if INSTALLED else at["sqldir"])
    t.like(out, r"schema is now at version \d+",
           "the installed tollgate-migrate creates the schema from %s" % (
               "its default SQL directory" if INSTALLED else "the installed SQL directory"))

    # Explicit paths, as a DESTDIR tree needs; the compiled-in defaults
    # when installed for real.
    price_file = "" if INSTALLED else os.path.join(at["pkgdatadir"], "model_prices.json")
    cfg = env.write_config("main", apache.config(env))
    srv = env.start_lighttpd(cfg, name="installed", bindir=at["cgibindir"], price_file=price_file,
                             uidir=os.path.join(at["pkgdatadir"], "ui"))
    pids = srv.program_pids("chat_completions")
    t.ok(pids and all(H._cmdline(p).startswith(at["cgibindir"] + "/") for p in pids),
         "lighttpd runs the installed programs", [H._cmdline(p) for p in srv.children()])
    apache.seed(t, env, srv, "installed")
    apache.routes(t, env, srv, "installed")
    r = env.request("GET", "/ui/", key=None, server=srv)
    t.ok(r.status == 200 and b"<title>tollgate admin</title>" in r.body and
         (r.header("content-type") or "").startswith("text/html"),
         "installed: /ui/ serves the installed UI", r.status, r.text[:200])
    demo_flow(t, env, at, price_file)


if __name__ == "__main__":
    H.run(main, db=False)
