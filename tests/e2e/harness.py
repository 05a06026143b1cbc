"""harness: the end-to-end test rig of tollgate (Python 3 standard library only).

Each e2e test is a Python program that imports this module and speaks TAP.
The harness starts real servers on loopback, in a temporary directory:

  * a private MariaDB (mariadbd --no-defaults, unix socket only), its
    datadir copied from a pristine one cached under the build directory
    (mariadb-install-db runs once per build tree);
  * the fake OpenAI upstream (fake_upstream.py);
  * lighttpd with the project's own etc/lighttpd.conf.in, spawning the
    built programs as FastCGI;

and runs tools/tollgate-migrate.  Everything it starts is stopped again,
by pid, whatever happens (try/finally, atexit, SIGTERM/SIGINT/SIGHUP), and
at the end the web server's logs are scanned for sanitizer reports and
crashed programs (a failing TAP test if any).

Paths: TG_BUILDDIR (built programs) and TG_SRCDIR (templates, sql/, price
file), both set by `make check`, falling back to the repository root.
TG_KEEP_TMP=1 keeps the temporary directory for inspection.
TG_VALGRIND=1 runs every plain CGI program and tollgate-migrate under
valgrind (memcheck; every leak kind is an error, tests/valgrind.supp): each
run is a test point that fails on any valgrind error (make check-valgrind).
TG_LEDGER_MODE picks the ledger's mode (issue 22): "direct" (the default),
"spool" or "lease"; every config written by Env.write_config gets the
mode's keys in tollgate_settings (a test's own values win), and
Env.settle() waits until the settlements the mode defers have landed.

A test looks like:

    import harness as H
    def main(t, env):
        env.start_lighttpd(env.write_config("main", env.config()))
        r = env.chat(user="alice")
        t.is_eq(r.status, 200, "chat works")
    H.run(main)

Setup failures are never skips: they are failing tests with the reason.
"""

import atexit
import ctypes
import decimal
import fcntl
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(HERE))
SRCDIR = os.path.abspath(os.environ.get("TG_SRCDIR") or _REPO)
BUILDDIR = os.path.abspath(os.environ.get("TG_BUILDDIR") or SRCDIR)

BINDIR = os.path.join(BUILDDIR, "cgi-bin")
MIGRATE = os.path.join(BUILDDIR, "tools", "tollgate-migrate")
DELIVER = os.path.join(BUILDDIR, "tools", "tollgate-deliver")
# The build's copy of the price map, which has its index beside it (a
# VPATH build copies the map into the build tree to make one), else the
# source tree's (correct, but read whole by every process).
PRICE_FILE = next((p for p in (os.path.join(BUILDDIR, "etc", "model_prices.json"),
                               os.path.join(SRCDIR, "etc", "model_prices.json"))
                   if os.path.exists(p)))
PRICES_TOOL = os.path.join(BUILDDIR, "tools", "tollgate-prices")
SQL_DIR = os.path.join(SRCDIR, "sql")
LIGHTTPD_TEMPLATE = os.path.join(SRCDIR, "etc", "lighttpd.conf.in")
DEMO_CONFIG = os.path.join(SRCDIR, "etc", "config.demo.yaml")
# The admin UI as the build makes it (Makefile.am, ui/build-www).
UI_DIR = os.path.join(BUILDDIR, "ui", "www")
FAKE_UPSTREAM = os.path.join(HERE, "fake_upstream.py")

PROGRAMS = ("chat_completions", "responses", "messages", "embeddings", "completions",
            "customer_new", "customer_info", "customer", "budget_new", "budget", "health",
            "models", "key")
MASTER_KEY = "sk-1234"
UPSTREAM_KEY = "sk-fake-upstream"

# Prices of the test models (USD per token): exact decimals, so expected
# costs are exact too.
IN_PRICE = Decimal("0.000001")
OUT_PRICE = Decimal("0.000002")

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
# Lines in a server log that mean a program misbehaved.  lighttpd logs
# "child signalled: N" / "child exited: N" when a FastCGI program dies;
# tollgate's programs only end on SIGTERM at shutdown (not logged).
BAD_LOG_PATTERNS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                    "child signalled", "child exited")

decimal.getcontext().prec = 60

VALGRIND = os.environ.get("TG_VALGRIND") == "1"
VALGRIND_SUPP = os.path.join(SRCDIR, "tests", "valgrind.supp")

# The ledger's modes (issue 22) and the tollgate_settings each sets:
# "direct", each call admitted and settled in the database; "spool", a
# call's settlement appended to its process's journal (journal.* in the
# spool directory) and moved into the database in batches; "lease", the
# spool's journal, and calls admitted against a slice of the account's
# budget that the process holds (a reservations row).  The lease mode takes
# a lease after one call of an account (rather than two within
# lease_idle_ms), so that the suites' one-call customers take and give back
# leases under their faults too.
LEDGER_MODES = {
    "direct": {},
    "spool": {"spool_settlements": True},
    "lease": {"spool_settlements": True, "budget_leases": True, "lease_after_calls": 1},
}


class SetupError(Exception):
    """A server or tool could not be started: the test fails with this reason."""


# Every suite must run (script/test sets it, so CI fails on a skip): a
# skip is then a failure.  Elsewhere what needs a missing tool skips, with
# the reason.
REQUIRE_ALL = os.environ.get("TG_REQUIRE_ALL") == "1"
# The names of the tests run() is running (skip_all() inside raises).
_RUNNING = []


class Missing(SetupError):
    """A tool or package this test needs is not installed here: what
    needs it is skipped, with this reason (a failure under REQUIRE_ALL)."""


def _which(name):
    """A tool's path: PATH, then the sbin directories (where Debian puts
    lighttpd, mariadbd and apache2, outside a user's PATH); PATH alone with
    TG_PATH_ONLY=1 (tests/notools/run hides the optional tools so)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if os.environ.get("TG_PATH_ONLY") != "1":
        path += os.pathsep + os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if not found:
        raise Missing("%s not found in PATH or /usr/sbin" % name)
    return found


def find_node():
    for name in ("node", "nodejs"):
        p = shutil.which(name)
        if p:
            return p
    raise Missing("node not found (install nodejs and npm; script/test does)")


def npm_modules(src, package, env_var):
    """A node_modules holding the npm package pinned by src's package.json
    and package-lock.json (src: a folder of the source tree, such as
    tests/sdk): $env_var if set, src's own node_modules, or the build
    tree's copy of src, where it is installed with `npm ci` if missing."""
    rel = os.path.relpath(src, SRCDIR)
    dest = os.path.join(BUILDDIR, rel)
    for c in (os.environ.get(env_var) or "", os.path.join(src, "node_modules"),
              os.path.join(dest, "node_modules")):
        if c and os.path.isfile(os.path.join(c, package, "package.json")):
            return c
    npm = shutil.which("npm")
    if not npm:
        raise Missing("%s is not installed and npm is missing; run `npm ci` in %s"
                      % (package, rel))
    os.makedirs(dest, exist_ok=True)
    # In an in-tree build the build tree's copy is src itself.
    if not os.path.samefile(src, dest):
        for f in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(src, f), os.path.join(dest, f))
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=dest, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    if r.returncode != 0:
        raise Missing("%s is not installed and `npm ci` in %s failed:\n%s"
                      % (package, dest, r.stdout.decode()[-2000:]))
    return os.path.join(dest, "node_modules")


def _pdeathsig():
    """Child side of Popen: die with the harness (SIGTERM) even if it is
    killed hard, so no server outlives a test run."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_HELD = []


def refused_port():
    """A loopback port where connections are refused, for as long as the
    test runs: bound (so no other server can take it) but not listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _children_of(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == ppid:
                kids.append(int(d))
        except (OSError, ValueError):
            continue
    return kids


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _stop_process(proc, name, timeout=20):
    """SIGTERM proc (a Popen), wait, then SIGKILL.  Only our own pid."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.stdout.write("# %s (pid %d) ignored SIGTERM, killing\n" % (name, proc.pid))
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------
# TAP

class Tap:
    """TAP producer.  Every failure names the test file and line."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.planned = None
        self.lock = threading.Lock()

    @staticmethod
    def _where():
        """file:line of the nearest caller outside this module."""
        me = os.path.abspath(__file__)
        fr = sys._getframe(1)
        while fr is not None:
            if os.path.abspath(fr.f_code.co_filename) != me:
                return "%s:%d" % (os.path.basename(fr.f_code.co_filename), fr.f_lineno)
            fr = fr.f_back
        return "?"

    def _out(self, line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def plan(self, n):
        self.planned = n
        self._out("1..%d" % n)

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            self._out("# " + line)

    def ok(self, cond, name, *diags, where=None):
        with self.lock:
            self.n += 1
            name = str(name).replace("#", "\\#").replace("\n", " ")
            self._out("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
            if not cond:
                self.failed += 1
                self.diag("  Failed test '%s'" % name)
                self.diag("  at %s" % (where or self._where()))
                for d in diags:
                    self.diag("  " + str(d).replace("\n", "\n    "))
        return bool(cond)

    def is_eq(self, got, expected, name, *diags):
        return self.ok(got == expected, name, "     got: %r" % (got,),
                       "expected: %r" % (expected,), *diags, where=self._where())

    def like(self, got, pattern, name):
        cond = isinstance(got, str) and re.search(pattern, got) is not None
        return self.ok(cond, name, "     got: %r" % (got,),
                       "expected to match: %r" % (pattern,), where=self._where())

    def cmp_ok(self, got, op, expected, name):
        ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
               "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
        try:
            cond = ops[op](got, expected)
        except TypeError:
            cond = False
        return self.ok(cond, name, "%r %s %r is false" % (got, op, expected),
                       where=self._where())

    def fail(self, name, *diags):
        return self.ok(False, name, *diags, where=self._where())

    def skip(self, name, reason):
        """A test point that could not run here, and why (TAP SKIP); a
        failure where every suite is required (REQUIRE_ALL)."""
        if REQUIRE_ALL:
            return self.fail("%s: required here (TG_REQUIRE_ALL=1), but skipped" % name,
                             reason)
        with self.lock:
            self.n += 1
            self._out("ok %d - %s # SKIP %s" % (self.n, str(name).replace("#", "\\#"),
                                                 str(reason).replace("\n", " ")))

    def done(self):
        """Print the plan if none was given; return the exit status."""
        if self.planned is None:
            self._out("1..%d" % self.n)
        elif self.planned != self.n:
            self.diag("planned %d tests but ran %d" % (self.planned, self.n))
            return 1
        return 1 if self.failed else 0


# ---------------------------------------------------------------------------
# HTTP

class Resp:
    """An HTTP (or CGI) answer: status, headers (lower-case names), body,
    json (parsed with exact Decimals, None if not JSON)."""

    def __init__(self, status, headers, body, elapsed=0.0):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text, parse_float=Decimal) if self.text else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        """The envelope's inner object, or {}."""
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"]
        return {}

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return "<Resp %s %s>" % (self.status, self.text[:300])


_DEFAULT_KEY = object()


def keepalive_checks(t, env, srv, tag, idle=10.5):
    """What clients of every web server shape rely on (issue: LiteLLM's
    tests/test_keys.py got ServerDisconnectedError): a kept-alive connection
    is still served after idle seconds (the shipped templates keep idle
    connections 120 s; the servers' defaults are 5 s), and a GET that
    carries a body is answered by the program, in JSON, not by the web
    server's HTML 400 page."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("GET", "/health/liveliness")
        first = conn.getresponse()
        first.read()
        sock, name = conn.sock, conn.sock.getsockname()
        time.sleep(idle)
        try:
            conn.request("GET", "/health/liveliness")
            again = conn.getresponse()
            got = (again.status, again.read())
        except (http.client.HTTPException, OSError) as e:
            got = repr(e)
        t.is_eq(got, (200, b'"I\'m alive!"'),
                "%s: a kept-alive connection is served after %.1f s idle" % (tag, idle))
        t.ok(conn.sock is sock and conn.sock.getsockname() == name,
             "%s: ... on the same connection" % tag)
    finally:
        conn.close()
    for path in ("/customer/list", "/key/list", "/spend/logs"):
        r = http_request(srv.port, "GET", path, body={"page": 1},
                         headers={"Content-Type": "application/json"})
        t.is_eq((r.status, r.header("content-type", "")[:16]), (200, "application/json"),
                "%s: GET %s with a JSON body: answered in JSON" % (tag, path))
    r = http_request(srv.port, "GET", "/chat/completions", body={"model": "fake-gpt"})
    t.ok(r.status == 405 and isinstance((r.json or {}).get("error"), dict),
         "%s: GET /chat/completions with a body: 405 in the error envelope" % tag,
         "got %d %r" % (r.status, r.body[:200]))


def http_request(port, method, path, body=None, headers=None, key=_DEFAULT_KEY,
                 timeout=60, host="127.0.0.1"):
    """One request on a fresh connection.  body: dict/list (sent as JSON),
    str or bytes (sent as is) or None.  key: the master key by default, sent
    as "Authorization: Bearer <key>"; None sends no key."""
    hdrs = {}
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    if key is _DEFAULT_KEY:
        key = MASTER_KEY
    if key is not None:
        hdrs["Authorization"] = "Bearer " + key
    for k, v in (headers or {}).items():
        # an explicit header replaces a default one (case-insensitively)
        for dk in list(hdrs):
            if dk.lower() == k.lower():
                del hdrs[dk]
        if v is not None:
            hdrs[k] = v
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        out = {}
        for k, v in r.getheaders():
            k = k.lower()
            out[k] = out[k] + ", " + v if k in out else v
        return Resp(r.status, out, data, time.monotonic() - t0)
    finally:
        conn.close()


class StreamResp:
    """A streamed answer read event by event.

    status, headers (lower-case names), elapsed (seconds until the last byte
    or the close), t_headers (seconds until the headers), raw (the body bytes
    as received), events: a list of SSE events in order, each a dict
    {"t": seconds since the request was sent, "data": the data text,
    "json": data parsed (Decimals) or None, "done": data == "[DONE]"}.
    When the answer is not a stream (an error), json/error/text hold the
    body as in Resp.  closed_early: the reader closed the connection itself.
    """

    def __init__(self):
        self.status = 0
        self.headers = {}
        self.events = []
        self.raw = b""
        self.elapsed = 0.0
        self.t_headers = 0.0
        self.closed_early = False
        self.read_error = None
        self.json = None

    @property
    def text(self):
        return self.raw.decode("utf-8", "replace")

    @property
    def error(self):
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"]
        return {}

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def data_events(self):
        """Events other than [DONE], parsed."""
        return [e for e in self.events if not e["done"]]

    def __repr__(self):
        return "<StreamResp %s %d events %r>" % (self.status, len(self.events), self.raw[:300])


def parse_sse_block(block):
    """The data of one SSE block (lines joined by LF), or None if it has no
    data line."""
    data = []
    for line in block.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("data:"):
            v = line[5:]
            data.append(v[1:] if v.startswith(" ") else v)
    return "\n".join(data) if data else None


def http_stream(port, path, body, headers=None, key=_DEFAULT_KEY, timeout=60,
                close_after=None, on_event=None, host="127.0.0.1"):
    """POST body and read the answer incrementally, timing each SSE event.
    close_after=N: shut the connection down once N events have arrived (a
    client that goes away mid-stream).  on_event(resp, event) is called as
    each event arrives, before the next byte is read (resp.headers is set)."""
    hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if key is _DEFAULT_KEY:
        key = MASTER_KEY
    if key is not None:
        hdrs["Authorization"] = "Bearer " + key
    hdrs.update(headers or {})
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    out = StreamResp()
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=hdrs)
        r = conn.getresponse()
        out.t_headers = time.monotonic() - t0
        out.status = r.status
        for k, v in r.getheaders():
            k = k.lower()
            out.headers[k] = out.headers[k] + ", " + v if k in out.headers else v
        ctype = out.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            out.raw = r.read()
            try:
                out.json = json.loads(out.text, parse_float=Decimal) if out.raw else None
            except ValueError:
                out.json = None
            return out
        buf = b""
        raw = []
        while True:
            try:
                line = r.readline()
            except (http.client.IncompleteRead, OSError, ValueError) as e:
                out.read_error = repr(e)
                break
            if not line:
                break
            raw.append(line)
            if line in (b"\n", b"\r\n"):
                data = parse_sse_block(buf.decode("utf-8", "replace"))
                buf = b""
                if data is None:
                    continue
                try:
                    js = json.loads(data, parse_float=Decimal)
                except ValueError:
                    js = None
                out.events.append({"t": time.monotonic() - t0, "data": data, "json": js,
                                   "done": data == "[DONE]"})
                if on_event is not None:
                    on_event(out, out.events[-1])
                if close_after is not None and len(out.events) >= close_after:
                    out.closed_early = True
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    except (OSError, AttributeError):
                        pass
                    break
            else:
                buf += line
        if buf.strip():  # an unterminated last block
            data = parse_sse_block(buf.decode("utf-8", "replace"))
            if data is not None:
                try:
                    js = json.loads(data, parse_float=Decimal)
                except ValueError:
                    js = None
                out.events.append({"t": time.monotonic() - t0, "data": data, "json": js,
                                   "done": data == "[DONE]", "unterminated": True})
        out.raw = b"".join(raw)
        return out
    finally:
        out.elapsed = time.monotonic() - t0
        conn.close()


# ---------------------------------------------------------------------------
# YAML (block style, enough for tollgate's config)

def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format(Decimal(repr(v)), "f")
    return json.dumps(str(v))  # a double-quoted YAML string


def yaml_dump(obj, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(yaml_dump(v, indent + 1))
            elif isinstance(v, (dict, list)):
                lines.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                lines.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                sub = yaml_dump(v, indent + 1).splitlines()
                lines.append("%s- %s" % (pad, sub[0].lstrip()))
                lines.extend(sub[1:])
            elif isinstance(v, list) and v:
                lines.append("%s-" % pad)
                lines.append(yaml_dump(v, indent + 1))
            else:
                lines.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# money helpers

def cost(prompt_tokens, completion_tokens, in_price=IN_PRICE, out_price=OUT_PRICE):
    return Decimal(prompt_tokens) * in_price + Decimal(completion_tokens) * out_price


def dec(v):
    """A JSON number / header / SQL cell as an exact Decimal (None stays None)."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise TypeError("bool is not money")
    return Decimal(str(v))


def exact_chat_body(model, user, max_tokens, content="hi", extra=None, fake=None):
    """A chat body whose admission estimate (SPEC 4.3: body bytes x input
    price + max_tokens x output price) equals its actual cost: the fake is
    told to report prompt_tokens = the body's byte length and
    completion_tokens = max_tokens.  Returns (bytes, prompt_tokens)."""
    n = 0
    for _ in range(20):
        obj = {"model": model, "messages": [{"role": "user", "content": content}],
               "max_tokens": max_tokens}
        if user is not None:
            obj["user"] = user
        obj.update(extra or {})
        obj["fake"] = dict(fake or {})
        obj["fake"]["usage"] = {"prompt_tokens": n, "completion_tokens": max_tokens}
        body = json.dumps(obj).encode("utf-8")
        if len(body) == n:
            return body, n
        n = len(body)
    raise RuntimeError("exact_chat_body did not converge")


def relay_tap(t, program, label, env=None, timeout=120):
    """Run a C test program (tests/tap.h) and make each of its checks a
    check of t, named "<label>: <its name>"; its comments become diag lines.
    A skip, a crash, a short plan or a non-zero exit fails."""
    penv = dict(os.environ, **(env or {}))
    penv.update(SANITIZER_ENV)
    name = os.path.basename(program)
    r = subprocess.run([program], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=penv, timeout=timeout)
    out = r.stdout.decode("utf-8", "replace")
    plan, n = None, 0
    for line in out.splitlines():
        m = re.match(r"^(not ok|ok) \d+ - (.*)$", line)
        if m:
            n += 1
            t.ok(m.group(1) == "ok", "%s: %s" % (label, m.group(2)))
        elif re.match(r"^1\.\.\d+", line):
            plan = line
        elif line.startswith("#"):
            t.diag("%s: %s" % (label, line[1:].strip()))
    t.is_eq(r.returncode, 0, "%s: %s exits with 0" % (label, name), out[-2000:])
    t.ok(plan is not None and plan == "1..%d" % n and n > 0,
         "%s: %s ran its %d checks (plan %r)" % (label, name, n, plan))


def parallel(n_workers, jobs):
    """Run the callables in jobs on n_workers threads, released together."""
    go = threading.Event()

    def wrap(job):
        go.wait()
        try:
            return job()
        except Exception as e:  # a transport error is a result too
            return e

    with ThreadPoolExecutor(max_workers=n_workers) as ex:
        futs = [ex.submit(wrap, j) for j in jobs]
        go.set()
        return [f.result() for f in futs]


def spool_files(base):
    """The settlements waiting under a spool directory (tollgate keeps
    one subdirectory per database), as paths."""
    found = []
    for root, _dirs, files in os.walk(base):
        found += [os.path.join(root, f) for f in files if f.endswith(".json")]
    return sorted(found)


def journal_files(base):
    """The journals under a spool directory that still hold settlements
    (the spool and lease modes: a non-empty file journal.*), as paths."""
    found = []
    for root, _dirs, files in os.walk(base):
        for f in files:
            path = os.path.join(root, f)
            try:
                if f.startswith("journal.") and os.path.getsize(path) > 0:
                    found.append(path)
            except OSError:  # moved meanwhile
                pass
    return sorted(found)


def pending_files(base):
    """What a spool directory holds that the database has not taken yet:
    spooled settlements and non-empty journals."""
    return sorted(spool_files(base) + journal_files(base))


def ledger_mode():
    """The ledger's mode the tests run in: TG_LEDGER_MODE, "direct" by
    default (LEDGER_MODES)."""
    mode = os.environ.get("TG_LEDGER_MODE") or "direct"
    if mode not in LEDGER_MODES:
        raise SetupError("TG_LEDGER_MODE=%s: not one of %s" % (mode, ", ".join(LEDGER_MODES)))
    return mode


def with_ledger_mode(cfg):
    """cfg (a config dict) with the keys of the ledger's mode added to its
    tollgate_settings; a key cfg sets itself keeps its value."""
    keys = LEDGER_MODES[ledger_mode()]
    if not keys:
        return cfg
    cfg = dict(cfg)
    ts = dict(cfg.get("tollgate_settings") or {})
    for k, v in keys.items():
        ts.setdefault(k, v)
    cfg["tollgate_settings"] = ts
    return cfg


def config_spool_dir(path, cwd):
    """The tollgate_settings.spool_dir a config file sets (relative to
    cwd, where its programs run), or None."""
    m = re.search(r"^\s+spool_dir:\s*(\S.*?)\s*$", _read(path), re.M)
    if not m:
        return None
    v = m.group(1)
    if v.startswith('"'):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    elif v.startswith("'") and v.endswith("'"):
        v = v[1:-1].replace("''", "'")
    return os.path.join(cwd, v)


def wait_for(fn, timeout=10.0, interval=0.1):
    """Call fn until it returns something true (returned) or timeout
    seconds pass (the last value is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def sql_quote(s):
    return "'" + str(s).replace("\\", "\\\\").replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# A webhook receiver

class Receiver:
    """A local HTTP server that records every request it gets (method,
    path, headers, raw body, arrival time) and answers as scripted:
    mode "ok" (200), "fail" (500), "hang" (waits hang_s, then 200), or,
    after down(), not at all (the port refuses connections until up())."""

    def __init__(self):
        import http.server
        self.requests = []
        self.mode = "ok"
        self.hang_s = 10.0
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = None
        self.thread = None
        rec = self

        self.conns = set()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # The status line and the body leave in separate writes:
                # without this, Nagle holds the body for the sender's
                # delayed ACK (40 ms a request), which no real receiver
                # behind Apache or nginx costs.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with rec.lock:
                    rec.conns.add(self.connection)

            def finish(self):
                with rec.lock:
                    rec.conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with rec.lock:
                    mode = rec.mode
                    rec.requests.append({
                        "path": self.path, "headers": dict(self.headers.items()),
                        "body": body, "time": time.monotonic(), "mode": mode})
                if mode == "hang":
                    time.sleep(rec.hang_s)
                status = 500 if mode == "fail" else 200
                text = b'{"ok":false}' if status == 500 else b'{"ok":true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the sender gave up waiting

        self.handler = Handler

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def up(self):
        import http.server

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), self.handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def down(self):
        """Stop listening and cut the connections kept alive."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def got(self, path=None):
        """The requests so far (to path only, if given)."""
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def events(self, path=None, ok_only=True):
        """The JSON bodies received (answered 200 only, by default), with
        their headers: [(event dict, headers)]."""
        out = []
        for r in self.got(path):
            if ok_only and r["mode"] != "ok":
                continue
            out.append((json.loads(r["body"].decode("utf-8"), parse_float=Decimal),
                        r["headers"]))
        return out

    def clear(self):
        with self.lock:
            self.requests = []


# ---------------------------------------------------------------------------
# MariaDB

class MariaDB:
    """A private mariadbd on a unix socket in dir (no TCP)."""

    SERVER_OPTS = ["--skip-networking", "--innodb-log-file-size=8M",
                   "--innodb-buffer-pool-size=64M",
                   "--innodb-flush-log-at-trx-commit=2",
                   "--max-connections=500", "--skip-name-resolve",
                   "--character-set-server=utf8mb4"]

    def __init__(self, base):
        self.dir = os.path.join(base, "db")
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysql.sock")
        self.pidfile = os.path.join(self.dir, "mysqld.pid")
        self.errlog = os.path.join(self.dir, "mysqld.err")
        self.proc = None
        self.mariadbd = _which("mariadbd")
        self.client = _which("mariadb")
        self.url = "mysql://root@localhost/tollgate?socket=" + self.socket

    def _user_opts(self):
        return ["--user=root"] if os.geteuid() == 0 else []

    def _install(self, datadir):
        install = _which("mariadb-install-db")
        cmd = [install, "--no-defaults", "--datadir=" + datadir,
               "--auth-root-authentication-method=normal", "--skip-test-db",
               "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M"]
        cmd += self._user_opts()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=180)
        if r.returncode != 0:
            raise SetupError("mariadb-install-db failed (%d):\n%s" % (
                r.returncode, r.stdout.decode("utf-8", "replace")[-3000:]))

    def init(self):
        """The datadir: a copy of the pristine one cached in the build tree
        (made once, under a lock, as parallel tests may race for it)."""
        os.makedirs(self.dir, exist_ok=True)
        ver = subprocess.run([self.mariadbd, "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout.decode()
        tag = re.sub(r"[^0-9A-Za-z.]+", "-", (ver.split("Ver ")[-1].split(" ")[0]
                                              if "Ver " in ver else "x"))
        cache_root = os.path.join(BUILDDIR, "tests", "e2e", ".cache")
        cache = os.path.join(cache_root, "mariadb-pristine-" + tag)
        try:
            os.makedirs(cache_root, exist_ok=True)
            with open(os.path.join(cache_root, "lock"), "w") as lk:
                fcntl.flock(lk, fcntl.LOCK_EX)
                if not os.path.isdir(cache):
                    tmp = cache + ".tmp.%d" % os.getpid()
                    shutil.rmtree(tmp, ignore_errors=True)
                    self._install(tmp)
                    os.rename(tmp, cache)
            shutil.copytree(cache, self.datadir, symlinks=True)
        except OSError as e:  # read-only build tree: install in place
            sys.stdout.write("# no datadir cache (%s); installing\n" % e)
            shutil.rmtree(self.datadir, ignore_errors=True)
            self._install(self.datadir)

    def start(self, timeout=60):
        if self.proc is not None and self.proc.poll() is None:
            raise SetupError("mariadbd already running")
        cmd = [self.mariadbd, "--no-defaults", "--datadir=" + self.datadir,
               "--socket=" + self.socket, "--pid-file=" + self.pidfile,
               "--log-error=" + self.errlog] + self.SERVER_OPTS + self._user_opts()
        out = open(os.path.join(self.dir, "mysqld.out"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError("mariadbd exited with %s:\n%s" % (
                    self.proc.returncode, _tail(self.errlog)))
            if self.ping():
                return
            time.sleep(0.1)
        raise SetupError("mariadbd not ready after %ds:\n%s" % (timeout, _tail(self.errlog)))

    def ping(self):
        r = subprocess.run([self.client, "--no-defaults", "-S", self.socket, "-uroot",
                            "-e", "select 1"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def stop(self):
        """Clean shutdown (SIGTERM to our own mariadbd), waiting for it."""
        _stop_process(self.proc, "mariadbd", timeout=60)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def sql(self, query, db="tollgate"):
        """Run query; rows as lists of str (None for NULL)."""
        cmd = [self.client, "--no-defaults", "-S", self.socket, "-uroot",
               "--default-character-set=utf8mb4", "-N", "-B"]
        if db:
            cmd.append(db)
        cmd += ["-e", query]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("SQL failed: %s\n%s" % (query, r.stderr.decode("utf-8", "replace")))
        rows = []
        for line in r.stdout.decode("utf-8", "replace").split("\n"):
            if line == "":
                continue
            rows.append([_unescape_cell(c) for c in line.split("\t")])
        return rows


class SqlSession:
    """One mariadb client kept running on db (a MariaDB), for queries in a
    loop: a query costs about a millisecond, where MariaDB.sql starts a
    client each time.  query() returns rows as MariaDB.sql does; a failing
    query ends the client (RuntimeError, with its message)."""

    END = "--tg-end-of-answer--"

    def __init__(self, db, database="tollgate"):
        cmd = [db.client, "--no-defaults", "-S", db.socket, "-uroot",
               "--default-character-set=utf8mb4", "-N", "-B", "--unbuffered"]
        if database:
            cmd.append(database)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=_pdeathsig)

    def query(self, query):
        self.proc.stdin.write(("%s;\nSELECT '%s';\n" % (query.rstrip("; \n"), self.END))
                              .encode("utf-8"))
        self.proc.stdin.flush()
        rows = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(10)
                raise RuntimeError("SQL failed: %s\n%s" % (
                    query, self.proc.stderr.read().decode("utf-8", "replace")))
            line = line.decode("utf-8", "replace").rstrip("\n")
            if line == self.END:
                return rows
            rows.append([_unescape_cell(c) for c in line.split("\t")])

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def _unescape_cell(c):
    if c == "NULL":
        return None
    if "\\" not in c:
        return c
    out, i = [], 0
    m = {"t": "\t", "n": "\n", "\\": "\\", "0": "\0"}
    while i < len(c):
        if c[i] == "\\" and i + 1 < len(c) and c[i + 1] in m:
            out.append(m[c[i + 1]])
            i += 2
        else:
            out.append(c[i])
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------
# fake upstream

class FakeUpstream:
    def __init__(self, base):
        self.log = os.path.join(base, "fake_upstream.log")
        self.proc = None
        self.port = None

    def start(self, timeout=15):
        err = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, FAKE_UPSTREAM], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=err,
                                     preexec_fn=_pdeathsig)
        err.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.match(r"PORT (\d+)", line)
        if not m:
            raise SetupError("fake upstream did not start: %r\n%s" % (line, _tail(self.log)))
        self.port = int(m.group(1))

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def requests(self):
        r = http_request(self.port, "GET", "/_requests", key=None)
        return json.loads(r.text)

    def reset(self):
        http_request(self.port, "POST", "/_reset", body=b"", key=None)

    def next(self, spec):
        """Queue a fake spec for the next request without a "fake" field
        (POST /_next; see fake_upstream.py)."""
        r = http_request(self.port, "POST", "/_next", body=spec, key=None)
        if r.status != 200:
            raise SetupError("fake upstream /_next: %d %s" % (r.status, r.text))

    def stop(self):
        _stop_process(self.proc, "fake upstream")
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()


def _end_programs(pids, bindir):
    """After a web server has stopped: give each of pids that is still one
    of bindir's programs 5 s to end (the server ends them), then SIGKILL
    it; by pid, and never a process that is no longer ours."""
    deadline = time.monotonic() + 5
    for pid in pids:
        while _pid_alive(pid) and bindir in _cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid) and bindir in _cmdline(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _serve(srv, argv, env, port, timeout):
    """Start argv, a web server in the foreground, for srv (its proc, its
    stderr_log and vardir) and wait until it listens on port: True, with
    srv.port and srv.known_children set; False if it exited or did not
    listen within timeout seconds (srv.proc.poll() tells which)."""
    out = open(srv.stderr_log, "ab")
    srv.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=srv.vardir,
                                preexec_fn=_pdeathsig)
    out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and srv.proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
            continue
        srv.port = port
        time.sleep(0.1)
        srv.known_children = set(srv.children())
        return True
    return False


# ---------------------------------------------------------------------------
# lighttpd

class Lighttpd:
    """lighttpd serving the programs of bindir (the build's by default; an
    installed tree's for tests/e2e/install.py) with the price file
    price_file ("" leaves the programs to their compiled-in default) and
    the admin UI of uidir at /ui/ (the build's ui/www by default)."""

    def __init__(self, env, name, config, max_procs=4, database_url=None, extra_env=None,
                 bindir=None, price_file=None, uidir=None):
        self.env = env
        self.bindir = bindir or BINDIR
        self.uidir = uidir or UI_DIR
        self.price_file = PRICE_FILE if price_file is None else price_file
        self.name = name
        self.config = config
        self.max_procs = max_procs
        self.database_url = database_url
        self.extra_env = dict(SANITIZER_ENV)
        self.extra_env.update(extra_env or {})
        self.vardir = os.path.join(env.tmp, "lighttpd-" + name)
        # Each server its own spool, as each machine has (a config's
        # tollgate_settings.spool_dir still wins).
        self.extra_env.setdefault("TOLLGATE_SPOOL_DIR", os.path.join(self.vardir, "spool"))
        self.errorlog = os.path.join(self.vardir, "error.log")
        self.stderr_log = os.path.join(self.vardir, "stderr.log")
        self.conf = os.path.join(self.vardir, "lighttpd.conf")
        self.proc = None
        self.port = None
        self.known_children = set()
        self.expect_child_deaths = False  # set by tests that kill programs

    @staticmethod
    def _q(v):
        v = str(v)
        if '"' in v or "\\" in v or "\n" in v:
            raise SetupError("value not allowed in lighttpd.conf: %r" % v)
        return v

    def _render(self, port):
        with open(LIGHTTPD_TEMPLATE) as f:
            text = f.read()
        extra = "".join('"%s" => "%s",\n\t' % (self._q(k), self._q(v))
                        for k, v in sorted(self.extra_env.items()))
        subst = {
            "PORT": str(port),
            "BINDIR": self._q(self.bindir),
            "VARDIR": self._q(self.vardir),
            "ERRORLOG": self._q(self.errorlog),
            "CONFIG": self._q(self.config),
            "PRICE_FILE": self._q(self.price_file),
            "DATABASE_URL": self._q(self.database_url or ""),
            "MAX_PROCS": str(int(self.max_procs)),
            "EXTRA_ENV": extra,
            "UIDIR": self._q(self.uidir),
        }
        for k, v in subst.items():
            text = text.replace("@%s@" % k, v)
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise SetupError("unfilled placeholders in lighttpd.conf.in: %s" % left)
        return text

    def start(self, timeout=30):
        os.makedirs(self.vardir, exist_ok=True)
        lighttpd = _which("lighttpd")
        for prog in PROGRAMS:
            p = os.path.join(self.bindir, prog)
            if not os.access(p, os.X_OK):
                raise SetupError("program not built: %s" % p)
        last = ""
        for attempt in range(5):
            port = free_port()
            with open(self.conf, "w") as f:
                f.write(self._render(port))
            chk = subprocess.run([lighttpd, "-tt", "-f", self.conf], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            if chk.returncode != 0:
                raise SetupError("lighttpd -tt rejects the config:\n%s" % chk.stdout.decode())
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC"}
            if _serve(self, [lighttpd, "-D", "-f", self.conf], env, port, timeout):
                return self
            last = "%s\n%s" % (_tail(self.errorlog), _tail(self.stderr_log))
            if self.proc.poll() is None:
                _stop_process(self.proc, "lighttpd")
                raise SetupError("lighttpd did not listen within %ds:\n%s" % (timeout, last))
            if "already in use" not in last:
                break
        raise SetupError("lighttpd exited with %s:\n%s" % (self.proc.returncode, last))

    def children(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        return _children_of(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def program_pids(self, program):
        """The pids of lighttpd's running instances of program (e.g.
        "chat_completions")."""
        path = os.path.join(self.bindir, program)
        return [pid for pid in self.children()
                if _cmdline(pid).split(" ")[0] == path]

    def stop(self):
        if self.proc is None:
            return
        kids = set(self.children()) | self.known_children
        _stop_process(self.proc, "lighttpd")
        # lighttpd terminates its FastCGI programs; make sure of it.
        _end_programs(kids, self.bindir)

    def logs(self):
        return _read(self.errorlog) + _read(self.stderr_log)

    def config_loads(self, program=None):
        """The "config loaded" lines the programs logged, as a dict
        {(program, pid): count}; only program's with program given."""
        found = {}
        for line in self.logs().splitlines():
            m = re.search(r"tollgate\[(\S+) (\d+)\] \S+ (?:\[[^\]]*\] )?config loaded", line)
            if m and (program is None or m.group(1) == program):
                k = (m.group(1), int(m.group(2)))
                found[k] = found.get(k, 0) + 1
        return found

    def config_load_of(self, call_id):
        """(program, pid) of the process whose "config loaded" line carries
        request id call_id, or None.  A FastCGI process loads its config on
        its first request and logs the line under that request's id (its
        x-litellm-call-id), so this names the process that served a request
        that was the first of its process (plain CGI logs no such line)."""
        for line in self.logs().splitlines():
            m = re.search(r"tollgate\[(\S+) (\d+)\] \S+ \[([^\]]*)\] config loaded", line)
            if m and call_id and m.group(3) == call_id:
                return m.group(1), int(m.group(2))
        return None

    def request(self, method, path, **kw):
        return http_request(self.port, method, path, **kw)


# ---------------------------------------------------------------------------
# Apache httpd (SPEC 10): the same interface as Lighttpd

APACHE_MAIN_TEMPLATE = os.path.join(SRCDIR, "etc", "apache-main.conf.in")
APACHE_SITE_TEMPLATES = {
    "apache-fcgid": os.path.join(SRCDIR, "etc", "apache-fcgid.conf.in"),
    "apache-proxy-fcgi": os.path.join(SRCDIR, "etc", "apache-proxy-fcgi.conf.in"),
    "apache-cgi": os.path.join(SRCDIR, "etc", "apache-cgi.conf.in"),
    "apache-htaccess": os.path.join(SRCDIR, "hosting", "apache-host.conf.in"),
}
HOSTING_DIR = os.path.join(SRCDIR, "hosting", "public_html")
SPAWN = os.path.join(BUILDDIR, "tools", "tollgate-spawn")
APACHE_MODULES = os.environ.get("TG_APACHE_MODULES") or "/usr/lib/apache2/modules"
# The module each shape needs beyond the base set (a missing one skips it).
APACHE_SHAPE_MODULES = {
    "apache-fcgid": ("mod_fcgid.so",),
    "apache-proxy-fcgi": ("mod_proxy.so", "mod_proxy_fcgi.so"),
    "apache-cgi": ("mod_cgid.so",),
    "apache-htaccess": ("mod_cgid.so", "mod_fcgid.so", "mod_rewrite.so", "mod_deflate.so",
                        "mod_filter.so"),
}
APACHE_SHAPES = tuple(APACHE_SHAPE_MODULES)


def apache_missing(shape=None):
    """Why Apache (or one shape of it) cannot run here, or None: apache2
    and the modules are Debian packages (apache2, libapache2-mod-fcgid)."""
    try:
        _which("apache2")
    except SetupError as e:
        return str(e)
    mods = ["mod_mpm_event.so", "mod_authz_core.so", "mod_alias.so", "mod_env.so",
            "mod_mime.so", "mod_headers.so"]
    for s in ([shape] if shape else APACHE_SHAPES):
        mods += APACHE_SHAPE_MODULES[s]
    for m in mods:
        if not os.path.exists(os.path.join(APACHE_MODULES, m)):
            return "%s not in %s" % (m, APACHE_MODULES)
    return None


_WEB_USER_LOCK = threading.Lock()


def web_user():
    """(user, group, uid, gid) the web server runs as: as root, the system
    user "tollgate" (TG_WEB_USER), created when missing, as a real host has
    a user of its own for the web server; otherwise the current user."""
    import grp
    import pwd
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.getuid())
        return pw.pw_name, grp.getgrgid(os.getgid()).gr_name, os.getuid(), os.getgid()
    name = os.environ.get("TG_WEB_USER") or "tollgate"
    with _WEB_USER_LOCK:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            r = subprocess.run([_which("useradd"), "--system", "--user-group", "--no-create-home",
                                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                                name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:  # another test may have created it meanwhile
                pw = pwd.getpwnam(name)
            except KeyError:
                raise SetupError("cannot create user %s: %s" % (name, r.stdout.decode()))
    return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name, pw.pw_uid, pw.pw_gid


def _descendants(ppid):
    out, todo = [], [ppid]
    while todo:
        kids = _children_of(todo.pop())
        out += kids
        todo += kids
    return out


class Apache:
    """A private Apache httpd (etc/apache-main.conf.in) serving the programs
    in one of the shapes of SPEC 10:

      apache-fcgid       mod_fcgid spawns the programs (etc/apache-fcgid.conf.in)
      apache-proxy-fcgi  mod_proxy_fcgi to programs kept by tools/tollgate-spawn
      apache-cgi         plain CGI, one process per request (etc/apache-cgi.conf.in)
      apache-htaccess    the shared-hosting layout of hosting/ (.htaccess files,
                         programs in the web root's cgi-bin/) under a host
                         configuration like a shared host's
                         (hosting/apache-host.conf.in: AllowOverride All,
                         mod_deflate on); htaccess_handler picks the
                         cgi-bin/.htaccess handler (cgi-script, fcgid-script)

    The workers and the programs run as web_user() (never root).  The
    programs, the price file and (proxy) the supervisor are copied into the
    server's directory, where that user can read them, as they would be
    installed; the config files stay where the test wrote them (its
    temporary directory is made readable)."""

    # lighttpd's "child exited" has counterparts here: a crashed worker
    # ("exit signal"), a FastCGI process that died (mod_fcgid: "get
    # unexpected signal"; tollgate-spawn: "killed by signal"), a CGI
    # program that ended without an answer.
    BAD_LOG_PATTERNS = BAD_LOG_PATTERNS[:3] + ("exit signal", "get unexpected signal",
                                               "killed by signal",
                                               "End of script output before headers")
    DEATH_PATTERNS = BAD_LOG_PATTERNS[3:]

    def __init__(self, env, name, config, shape, max_procs=4, database_url=None, extra_env=None,
                 htaccess_handler="cgi-script"):
        if shape not in APACHE_SHAPES:
            raise SetupError("unknown Apache shape %r" % shape)
        self.env = env
        self.name = name
        self.config = config
        self.shape = shape
        self.max_procs = max_procs
        self.database_url = database_url
        self.htaccess_handler = htaccess_handler
        self.extra_env = dict(SANITIZER_ENV)
        self.extra_env.update(extra_env or {})
        self.vardir = os.path.join(env.tmp, "apache-" + name)
        self.extra_env.setdefault("TOLLGATE_SPOOL_DIR", os.path.join(self.vardir, "spool"))
        self.errorlog = os.path.join(self.vardir, "error.log")
        self.stderr_log = os.path.join(self.vardir, "stderr.log")
        self.spawn_log = os.path.join(self.vardir, "spawn.log")
        self.conf = os.path.join(self.vardir, "apache2.conf")
        self.site_conf = os.path.join(self.vardir, "site.conf")
        self.docroot = os.path.join(self.vardir, "public_html")
        # Where the served programs are (a copy of the build's).
        self.bindir = (os.path.join(self.docroot, "cgi-bin") if shape == "apache-htaccess"
                       else os.path.join(self.vardir, "bin"))
        self.sockdir = os.path.join(self.vardir, "sock")
        self.price_file = os.path.join(self.vardir, "model_prices.json")
        # The admin UI, copied as installed (the hosting layout: uploaded
        # into the web root).
        self.uidir = (os.path.join(self.docroot, "ui") if shape == "apache-htaccess"
                      else os.path.join(self.vardir, "ui"))
        self.proc = None
        self.spawn_proc = None
        self.port = None
        self.known_children = set()
        self.expect_child_deaths = False
        self.user, self.group, self.uid, self.gid = web_user()

    @staticmethod
    def _q(v):
        v = str(v)
        if '"' in v or "\\" in v or "\n" in v or re.search(r"@[A-Z_]+@", v):
            raise SetupError("value not allowed in an Apache config: %r" % v)
        return v

    def program_env(self):
        """The programs' environment (NAME -> value), as lighttpd's
        bin-environment carries it."""
        env = {"TOLLGATE_CONFIG": self.config, "TOLLGATE_PRICE_FILE": self.price_file,
               "DATABASE_URL": self.database_url or ""}
        env.update(self.extra_env)
        return env

    def _fill(self, template, subst):
        with open(template) as f:
            text = f.read()
        for k, v in subst.items():
            text = text.replace("@%s@" % k, v)
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise SetupError("unfilled placeholders in %s: %s" % (template, left))
        return text

    def _render(self, port):
        core = ("TOLLGATE_CONFIG", "TOLLGATE_PRICE_FILE", "DATABASE_URL")
        extra = sorted((k, v) for k, v in self.program_env().items() if k not in core)
        if self.shape == "apache-fcgid":
            lines = ['FcgidInitialEnv %s "%s"' % (self._q(k), self._q(v)) for k, v in extra]
        elif self.shape == "apache-htaccess":
            # The host's own settings: what the sanitizers need, for every
            # program of the host (tollgate's go in the .htaccess).
            lines = []
            for k, v in extra:
                if k in SANITIZER_ENV:
                    lines.append('FcgidInitialEnv %s "%s"' % (k, self._q(v)))
                    lines.append('SetEnv %s "%s"' % (k, self._q(v)))
        else:
            lines = ['SetEnv %s "%s"' % (self._q(k), self._q(v)) for k, v in extra]
        subst = {
            "PORT": str(port),
            "BINDIR": self._q(self.bindir),
            "VARDIR": self._q(self.vardir),
            "SOCKDIR": self._q(self.sockdir),
            "DOCROOT": self._q(self.docroot),
            "ERRORLOG": self._q(self.errorlog),
            "CONFIG": self._q(self.config),
            "PRICE_FILE": self._q(self.price_file),
            "DATABASE_URL": self._q(self.database_url or ""),
            "MAX_PROCS": str(int(self.max_procs)),
            "MODULES": self._q(APACHE_MODULES),
            "EXTRA_ENV": "\n\t".join(lines),
            "UIDIR": self._q(self.uidir),
        }
        site = self._fill(APACHE_SITE_TEMPLATES[self.shape], subst)
        main = self._fill(APACHE_MAIN_TEMPLATE, {
            "VARDIR": subst["VARDIR"], "ERRORLOG": subst["ERRORLOG"],
            "MODULES": subst["MODULES"], "USER": self.user, "GROUP": self.group,
            "SITE": self._q(self.site_conf)})
        return main, site

    def _install_htaccess(self):
        """hosting/public_html as an operator uploads it: the .htaccess
        files with their settings filled in, the programs in cgi-bin/, the
        admin UI in ui/ (its .htaccess as it is)."""
        cgi = os.path.join("cgi-bin", ".htaccess")
        for rel in (".htaccess", cgi, os.path.join("ui", ".htaccess")):
            with open(os.path.join(HOSTING_DIR, rel)) as f:
                text = f.read()
            os.makedirs(os.path.dirname(os.path.join(self.docroot, rel)), exist_ok=True)
            if rel == ".htaccess":
                env = self.program_env()
                for k in ("TOLLGATE_CONFIG", "TOLLGATE_PRICE_FILE", "TOLLGATE_SPOOL_DIR"):
                    text, n = re.subn(r"(?m)^SetEnv %s .*$" % k,
                                      'SetEnv %s "%s"' % (k, self._q(env[k])), text)
                    if n != 1:
                        raise SetupError("hosting/.htaccess: no SetEnv %s line" % k)
                if self.database_url:
                    text += '\nSetEnv DATABASE_URL "%s"\n' % self._q(self.database_url)
            elif rel == cgi:
                text, n = re.subn(r"(?m)^SetHandler \S+$", "SetHandler " + self.htaccess_handler,
                                  text)
                if n != 1:
                    raise SetupError("hosting/cgi-bin/.htaccess: no SetHandler line")
            with open(os.path.join(self.docroot, rel), "w") as f:
                f.write(text)

    def _prepare(self):
        """The server's directory, readable by the web user; the copies."""
        os.makedirs(self.vardir, exist_ok=True)
        os.makedirs(os.path.join(self.vardir, "run"), exist_ok=True)
        os.makedirs(self.bindir, exist_ok=True)
        for d in (self.env.tmp, self.vardir, self.bindir, os.path.dirname(self.bindir)):
            os.chmod(d, 0o755)
        for prog in PROGRAMS:
            src = os.path.join(BINDIR, prog)
            if not os.access(src, os.X_OK):
                raise SetupError("program not built: %s" % src)
            shutil.copy2(src, os.path.join(self.bindir, prog))
        shutil.copy2(PRICE_FILE, self.price_file)
        os.chmod(self.price_file, 0o644)
        # A copy is another file: its own index, as an operator makes one
        # after uploading the map.
        if os.access(PRICES_TOOL, os.X_OK):
            subprocess.run([PRICES_TOOL, "index", self.price_file], check=True,
                           stdout=subprocess.DEVNULL)
            os.chmod(self.price_file + ".idx", 0o644)
        if os.path.isdir(UI_DIR):
            shutil.rmtree(self.uidir, ignore_errors=True)
            shutil.copytree(UI_DIR, self.uidir)
            for root, dirs, files in os.walk(self.uidir):
                os.chmod(root, 0o755)
                for f in files:
                    os.chmod(os.path.join(root, f), 0o644)
        if os.geteuid() == 0:
            # The temporary directory's parents are not ours to change.
            r = subprocess.run([_which("setpriv"), "--reuid=%d" % self.uid,
                                "--regid=%d" % self.gid, "--clear-groups", "--",
                                "test", "-r", self.price_file])
            if r.returncode != 0:
                raise SetupError("user %s cannot reach %s: use a TMPDIR that it can pass "
                                 "through" % (self.user, self.vardir))
        # Written by the programs: the web user's.
        spool = self.extra_env["TOLLGATE_SPOOL_DIR"]
        os.makedirs(spool, exist_ok=True)
        for d in (spool, self.sockdir):
            os.makedirs(d, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(d, self.uid, self.gid)
        if self.shape == "apache-proxy-fcgi":
            if not os.access(SPAWN, os.X_OK):
                raise SetupError("not built: %s" % SPAWN)
            shutil.copy2(SPAWN, os.path.join(self.vardir, "tollgate-spawn"))
        if self.shape == "apache-htaccess":
            self._install_htaccess()

    def _start_spawn(self, timeout=15):
        """tollgate-spawn as the web user, the programs' environment in its
        own (apache-proxy-fcgi)."""
        cmd = [os.path.join(self.vardir, "tollgate-spawn"), "-d", self.sockdir,
               "-p", os.path.join(self.sockdir, "tollgate-spawn.pid"),
               "-n", str(int(self.max_procs))] + [
               os.path.join(self.bindir, p) for p in ("chat_completions", "responses", "messages")] + [
               "-n", "2"] + [os.path.join(self.bindir, p)
                             for p in ("embeddings", "completions", "customer_new",
                                       "customer_info", "customer", "budget_new",
                                       "budget", "health")] + [
               "-n", "1", os.path.join(self.bindir, "models"), os.path.join(self.bindir, "key")]
        if os.geteuid() == 0:
            cmd = [_which("setpriv"), "--reuid=%d" % self.uid, "--regid=%d" % self.gid,
                   "--init-groups", "--"] + cmd
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC"}
        env.update(self.program_env())
        out = open(self.spawn_log, "ab")
        self.spawn_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, env=env, cwd=self.vardir,
                                           preexec_fn=_pdeathsig)
        out.close()
        socks = [os.path.join(self.sockdir, p + ".sock") for p in PROGRAMS]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.spawn_proc.poll() is not None:
                raise SetupError("tollgate-spawn exited with %s:\n%s" % (
                    self.spawn_proc.returncode, _tail(self.spawn_log)))
            if all(os.path.exists(s) for s in socks):
                return
            time.sleep(0.05)
        raise SetupError("tollgate-spawn made no sockets in %ds:\n%s" % (timeout, _tail(self.spawn_log)))

    def start(self, timeout=30):
        why = apache_missing(self.shape)
        if why:
            raise SetupError("Apache cannot run here: " + why)
        apache2 = _which("apache2")
        self._prepare()
        if self.shape == "apache-proxy-fcgi":
            self._start_spawn()
        last = ""
        for attempt in range(5):
            port = free_port()
            main, site = self._render(port)
            with open(self.site_conf, "w") as f:
                f.write(site)
            with open(self.conf, "w") as f:
                f.write(main)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "TZ": "UTC"}
            chk = subprocess.run([apache2, "-t", "-f", self.conf], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=env)
            if chk.returncode != 0:
                raise SetupError("apache2 -t rejects the config:\n%s" % chk.stdout.decode())
            if _serve(self, [apache2, "-f", self.conf, "-DFOREGROUND"], env, port, timeout):
                return self
            last = "%s\n%s" % (_tail(self.errorlog), _tail(self.stderr_log))
            if self.proc.poll() is None:
                self.stop()
                raise SetupError("apache2 did not listen within %ds:\n%s" % (timeout, last))
            if "Address already in use" not in last:
                break
        self.stop()
        raise SetupError("apache2 exited with %s:\n%s" % (self.proc.returncode, last))

    def children(self):
        """Every process below Apache (workers, mod_fcgid's process
        manager and programs, CGI programs) and below tollgate-spawn."""
        kids = []
        for p in (self.proc, self.spawn_proc):
            if p is not None and p.poll() is None:
                kids += _descendants(p.pid)
        return kids

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def program_pids(self, program):
        """The pids of the running instances of program (e.g.
        "chat_completions")."""
        path = os.path.join(self.bindir, program)
        return [pid for pid in self.children() if _cmdline(pid).split(" ")[0] == path]

    def stop(self):
        kids = set(self.children()) | self.known_children
        if self.proc is not None:
            _stop_process(self.proc, "apache2")
        if self.spawn_proc is not None:
            _stop_process(self.spawn_proc, "tollgate-spawn")
        # Apache (mod_fcgid) and tollgate-spawn end their programs; make
        # sure of it.
        _end_programs(kids, self.bindir)

    def logs(self):
        return _read(self.errorlog) + _read(self.stderr_log) + _read(self.spawn_log)

    def config_loads(self, program=None):
        return Lighttpd.config_loads(self, program)

    def config_load_of(self, call_id):
        return Lighttpd.config_load_of(self, call_id)

    def request(self, method, path, **kw):
        return http_request(self.port, method, path, **kw)


# ---------------------------------------------------------------------------
# the environment of one test program

class Env:
    def __init__(self, tap, name):
        self.t = tap
        self.name = name
        base = os.environ.get("TMPDIR") or "/tmp"
        if len(base) > 40:  # unix socket paths are limited to ~107 bytes
            base = "/tmp"
        self.tmp = tempfile.mkdtemp(prefix="tg-e2e-%s-" % name, dir=base)
        self.db = None
        self.upstream = None
        self.servers = []
        self.server = None  # the first lighttpd started: default for requests
        self.cgi_stderr = []  # (what, stderr text) of plain CGI runs
        self.last_unsettled = []  # what the last settle() found left
        self.closed = False

    # -- life cycle --
    def start(self, db=True, upstream=True):
        for p in [MIGRATE] + [os.path.join(BINDIR, x) for x in PROGRAMS]:
            if not os.access(p, os.X_OK):
                raise SetupError("not built: %s (TG_BUILDDIR=%s)" % (p, BUILDDIR))
        if upstream:
            self.upstream = FakeUpstream(self.tmp)
            self.upstream.start()
        if db:
            self.db = MariaDB(self.tmp)
            self.db.init()
            self.db.start()
            self.migrate()

    def migrate(self, migrate=None, sql_dir=None, database_url=None):
        """tollgate-migrate (the build's, or migrate) on the database (or
        database_url), with sql_dir (the source tree's by default; ""
        passes none)."""
        sql_dir = SQL_DIR if sql_dir is None else sql_dir
        cmd = [migrate or MIGRATE, "--database-url", database_url or self.db.url]
        cmd = self.valgrind_wrap(cmd + (["--sql-dir", sql_dir] if sql_dir else []))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120 * (10 if VALGRIND else 1))
        self.valgrind_check("tollgate-migrate")
        if r.returncode != 0:
            raise SetupError("tollgate-migrate failed (%d):\n%s" % (
                r.returncode, r.stdout.decode("utf-8", "replace")))
        return r.stdout.decode("utf-8", "replace")

    def start_lighttpd(self, config, name=None, max_procs=4, database_url=_DEFAULT_KEY,
                       extra_env=None, **kw):
        """Start a lighttpd serving the programs with config (a path); kw:
        Lighttpd's bindir, price_file, uidir."""
        if database_url is _DEFAULT_KEY:
            database_url = self.db.url if self.db else ""
        name = name or "s%d" % (len(self.servers) + 1)
        srv = Lighttpd(self, name, config, max_procs=max_procs, database_url=database_url,
                       extra_env=extra_env, **kw)
        self.servers.append(srv)
        srv.start()
        if self.server is None:
            self.server = srv
        return srv

    def start_apache(self, config, shape="apache-fcgid", name=None, max_procs=4,
                     database_url=_DEFAULT_KEY, extra_env=None, **kw):
        """Start a private Apache serving the programs with config (a path)
        in one of Apache.SHAPES; as start_lighttpd otherwise."""
        if database_url is _DEFAULT_KEY:
            database_url = self.db.url if self.db else ""
        name = name or "s%d" % (len(self.servers) + 1)
        srv = Apache(self, name, config, shape, max_procs=max_procs, database_url=database_url,
                     extra_env=extra_env, **kw)
        self.servers.append(srv)
        srv.start()
        if self.server is None:
            self.server = srv
        return srv

    def start_server(self, kind, config, **kw):
        """start_lighttpd (kind "lighttpd") or start_apache (an Apache
        shape), so that a scenario can run behind any web server."""
        if kind == "lighttpd":
            return self.start_lighttpd(config, **kw)
        return self.start_apache(config, shape=kind, **kw)

    def close(self):
        """Stop everything (idempotent) and scan the logs."""
        if self.closed:
            return
        self.closed = True
        for srv in self.servers:
            try:
                srv.stop()
            except Exception as e:  # keep cleaning up
                sys.stdout.write("# stopping %s: %r\n" % (srv.name, e))
        if self.upstream:
            try:
                self.upstream.stop()
            except Exception as e:
                sys.stdout.write("# stopping fake upstream: %r\n" % e)
        if self.db:
            try:
                self.db.stop()
            except Exception as e:
                sys.stdout.write("# stopping mariadbd: %r\n" % e)
        self._scan_logs()
        if self.t.failed:
            for srv in self.servers:
                self.t.diag("---- tail of %s (%s) ----" % (srv.name, srv.errorlog))
                self.t.diag(_tail(srv.errorlog, 30))
                self.t.diag("---- tail of %s ----" % srv.stderr_log)
                self.t.diag(_tail(srv.stderr_log, 30))
        if os.environ.get("TG_KEEP_TMP"):
            self.t.diag("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _scan_logs(self):
        found = []
        for srv in self.servers:
            # A test that kills programs itself expects lighttpd to say so.
            patterns = getattr(srv, "BAD_LOG_PATTERNS", BAD_LOG_PATTERNS)
            if srv.expect_child_deaths:
                patterns = patterns[:3]
            for line in srv.logs().splitlines():
                if any(p in line for p in patterns):
                    found.append("%s: %s" % (srv.name, line))
        for what, text in self.cgi_stderr:
            for line in text.splitlines():
                if any(p in line for p in BAD_LOG_PATTERNS[:3]):
                    found.append("cgi %s: %s" % (what, line))
        if self.servers or self.cgi_stderr:
            self.t.ok(not found, "no sanitizer reports or crashed programs in the logs",
                      *found[:40])

    # -- configs --
    def model(self, name, upstream_model=None, api_base=None, timeout=None,
              in_price=IN_PRICE, out_price=OUT_PRICE, **params):
        """A model_list entry pointing at the fake upstream, with explicit
        prices so that the expected cost is computable."""
        lp = {"model": "openai/" + (upstream_model or name),
              "api_base": api_base or (self.upstream.base + "/v1"),
              "api_key": UPSTREAM_KEY}
        if timeout is not None:
            lp["timeout"] = timeout
        lp.update(params)
        return {"model_name": name, "litellm_params": lp,
                "model_info": {"input_cost_per_token": in_price,
                               "output_cost_per_token": out_price}}

    def config(self, models=None, master_key=MASTER_KEY, litellm_settings=None,
               general_settings=None, extra=None):
        """The standard test config as a dict: model "fake-gpt" (and
        "fake-gpt-2", same upstream) priced IN_PRICE / OUT_PRICE."""
        if models is None:
            models = [self.model("fake-gpt"), self.model("fake-gpt-2")]
        cfg = {"model_list": models}
        ls = {"num_retries": 0, "request_timeout": 30}
        ls.update(litellm_settings or {})
        cfg["litellm_settings"] = ls
        gs = {}
        if master_key is not None:
            gs["master_key"] = master_key
        gs.update(general_settings or {})
        if gs:
            cfg["general_settings"] = gs
        cfg.update(extra or {})
        return cfg

    def write_config(self, name, cfg):
        """Write cfg (a dict, dumped as block YAML, or raw text) to a file;
        a dict gets the settings of the ledger's mode (with_ledger_mode)."""
        path = os.path.join(self.tmp, "config-%s.yaml" % name)
        text = cfg if isinstance(cfg, str) else yaml_dump(with_ledger_mode(cfg)) + "\n"
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- requests --
    def request(self, method, path, server=None, **kw):
        srv = server or self.server
        if srv is None:
            raise SetupError("no lighttpd started")
        return http_request(srv.port, method, path, **kw)

    @staticmethod
    def chat_body(user=None, model="fake-gpt", fake=None, content="hello", extra=None):
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        if model is None:
            del body["model"]
        if user is not None:
            body["user"] = user
        if fake is not None:
            body["fake"] = fake
        body.update(extra or {})
        return body

    def chat(self, user=None, model="fake-gpt", fake=None, content="hello", extra=None,
             headers=None, server=None, key=_DEFAULT_KEY, body=None, path="/chat/completions"):
        if body is None:
            body = self.chat_body(user, model, fake, content, extra)
        return self.request("POST", path, body=body, headers=headers, server=server, key=key)

    def stream_chat(self, user=None, model="fake-gpt", fake=None, content="hello", extra=None,
                    headers=None, server=None, key=_DEFAULT_KEY, body=None,
                    path="/chat/completions", close_after=None, on_event=None, timeout=60):
        """A "stream": true chat read event by event (a StreamResp)."""
        if body is None:
            body = self.chat_body(user, model, fake, content, extra)
            body["stream"] = True
        srv = server or self.server
        if srv is None:
            raise SetupError("no lighttpd started")
        return http_stream(srv.port, path, body, headers=headers, key=key,
                           close_after=close_after, on_event=on_event, timeout=timeout)

    def customer_new(self, server=None, key=_DEFAULT_KEY, **fields):
        return self.request("POST", "/customer/new", body=fields, server=server, key=key)

    def customer_info(self, user_id, server=None, key=_DEFAULT_KEY, path="/customer/info"):
        q = urllib.parse.urlencode({"end_user_id": user_id})
        return self.request("GET", path + "?" + q, server=server, key=key)

    def budget_new(self, server=None, key=_DEFAULT_KEY, **fields):
        return self.request("POST", "/budget/new", body=fields, server=server, key=key)

    # -- database views --
    def sql(self, query):
        return self.db.sql(query)

    def customer_row(self, user_id):
        rows = self.sql("SELECT user_id, spend, reserved, budget_id, blocked FROM customers "
                        "WHERE user_id = %s" % sql_quote(user_id))
        if not rows:
            return None
        r = rows[0]
        return {"user_id": r[0], "spend": dec(r[1]), "reserved": dec(r[2]),
                "budget_id": r[3], "blocked": r[4]}

    def ledger_sum(self, user_id):
        """The customer's ledger: its rows, and the summaries of its
        archived rows (sql/012, tollgate-archive); in the spool and lease
        modes once the pending batches have landed (settle())."""
        if ledger_mode() != "direct":
            self.settle()
        rows = self.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_logs WHERE end_user = %s"
                        % sql_quote(user_id))
        try:
            archived = self.sql("SELECT COALESCE(SUM(spend), 0) FROM spend_archive "
                                "WHERE end_user = %s" % sql_quote(user_id))[0][0]
        except RuntimeError:  # a schema before sql/012
            archived = "0"
        return dec(rows[0][0]) + dec(archived)

    def ledger_row(self, request_id):
        rows = self.sql("SELECT request_id, end_user, model, status, spend, prompt_tokens, "
                        "completion_tokens, total_tokens, api_key, model_id, api_base, "
                        "metadata FROM spend_logs "
                        "WHERE request_id = %s" % sql_quote(request_id))
        if not rows:
            return None
        return self._ledger_dict(rows[0])

    @staticmethod
    def _ledger_dict(r):
        meta = None
        if r[11]:
            try:
                meta = json.loads(r[11])
            except ValueError:
                meta = r[11]
        return {"request_id": r[0], "end_user": r[1], "model": r[2], "status": r[3],
                "spend": dec(r[4]), "prompt_tokens": r[5], "completion_tokens": r[6],
                "total_tokens": r[7], "api_key": r[8], "model_id": r[9], "api_base": r[10],
                "metadata": meta}

    def ledger_rows(self, user_id):
        """Every spend_logs row of a customer, oldest first (as ledger_row)."""
        rows = self.sql("SELECT request_id, end_user, model, status, spend, prompt_tokens, "
                        "completion_tokens, total_tokens, api_key, model_id, api_base, "
                        "metadata FROM spend_logs WHERE end_user = %s "
                        "ORDER BY start_time, request_id" % sql_quote(user_id))
        return [self._ledger_dict(r) for r in rows]

    # -- plain CGI --
    def cgi(self, program, method, uri, body=None, headers=None, key=_DEFAULT_KEY,
            config=None, database_url=_DEFAULT_KEY, extra_env=None, timeout=60):
        """Run a program once as plain CGI; the answer as a Resp."""
        path, _, query = uri.partition("?")
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC",
               "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
               "SERVER_SOFTWARE": "tollgate-e2e", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
               "REQUEST_METHOD": method, "REQUEST_URI": uri, "QUERY_STRING": query,
               "SCRIPT_NAME": "/cgi-bin/" + program, "SCRIPT_FILENAME": os.path.join(BINDIR, program),
               "TOLLGATE_PRICE_FILE": PRICE_FILE,
               "TOLLGATE_SPOOL_DIR": os.path.join(self.tmp, "cgi-spool")}
        env.update(SANITIZER_ENV)
        if config is not None:
            env["TOLLGATE_CONFIG"] = config
        if database_url is _DEFAULT_KEY:
            database_url = self.db.url if self.db else None
        if database_url:
            env["DATABASE_URL"] = database_url
        if body is not None:
            env["CONTENT_LENGTH"] = str(len(body))
            env["CONTENT_TYPE"] = "application/json"
        if key is _DEFAULT_KEY:
            key = MASTER_KEY
        if key is not None:
            env["HTTP_AUTHORIZATION"] = "Bearer " + key
        for k, v in (headers or {}).items():
            name = k.upper().replace("-", "_")
            if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                env[name] = v
            else:
                env["HTTP_" + name] = v
        env.update(extra_env or {})
        t0 = time.monotonic()
        r = subprocess.run(self.valgrind_wrap([os.path.join(BINDIR, program)]),
                           input=body or b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, cwd=self.tmp, timeout=timeout * (10 if VALGRIND else 1))
        self.valgrind_check("%s %s %s" % (program, method, uri))
        err = r.stderr.decode("utf-8", "replace")
        self.cgi_stderr.append(("%s %s %s" % (program, method, uri), err))
        resp = parse_cgi_output(r.stdout, time.monotonic() - t0)
        resp.exit_code = r.returncode
        resp.stderr = err
        return resp

    # -- checks shared by the tests --
    def check_served_by(self, srv, r, program, what=""):
        """Response r came from a running process of program under srv (a
        FastCGI shape), and r was that process's first request: it logged
        "config loaded" under r's x-litellm-call-id (config_load_of).  For
        the first request a test sends to a route after starting srv, this
        shows that the web server passed the route to its own program."""
        t = self.t
        where = Tap._where()
        label = what or "%s %s" % (program, r.header("x-litellm-call-id"))
        call_id = r.header("x-litellm-call-id")
        who = wait_for(lambda: srv.config_load_of(call_id), timeout=5)
        t.ok(bool(who) and who[0] == program, "%s: served by %s" % (label, program),
             "the config-loaded line of request %s: %r" % (call_id, who), where=where)
        pids = srv.program_pids(program)
        t.ok(bool(who) and who[1] in pids, "%s: by a running %s process" % (label, program),
             "pid %r, %s runs as %r" % (who and who[1], program, pids), where=where)

    def check_error(self, r, status, etype, message=None, param=_DEFAULT_KEY, what=""):
        """The OpenAI envelope with status/type (and message: exact string,
        or a compiled regex; param when given; None = JSON null)."""
        t = self.t
        where = Tap._where()
        label = what or "error"
        ok = t.ok(r.status == status, "%s: status %d" % (label, status),
                  "got %s: %s" % (r.status, r.text[:500]), where=where)
        e = r.error
        shape = (isinstance(r.json, dict) and set(r.json) == {"error"}
                 and set(e) >= {"message", "type", "param", "code"})
        ok &= t.ok(shape, "%s: envelope {error: {message, type, param, code}}" % label,
                   "got: %s" % r.text[:500], where=where)
        ok &= t.ok(e.get("type") == etype and e.get("code") == str(status),
                   "%s: type %s, code \"%d\"" % (label, etype, status),
                   "got type %r code %r" % (e.get("type"), e.get("code")), where=where)
        ok &= t.ok(bool(r.header("x-litellm-call-id")), "%s: x-litellm-call-id header" % label,
                   "headers: %r" % (r.headers,), where=where)
        if message is not None:
            if isinstance(message, re.Pattern):
                ok &= t.ok(isinstance(e.get("message"), str) and message.search(e["message"]),
                           "%s: message matches" % label,
                           "got %r, want /%s/" % (e.get("message"), message.pattern), where=where)
            else:
                ok &= t.ok(e.get("message") == message, "%s: message" % label,
                           "got %r" % (e.get("message"),), "want %r" % (message,), where=where)
        if param is not _DEFAULT_KEY:
            ok &= t.ok(e.get("param") == param, "%s: param %r" % (label, param),
                       "got %r" % (e.get("param"),), where=where)
        return ok

    # -- the ledger's modes (TG_LEDGER_MODE) --
    def spool_dirs(self):
        """The spool directories of the test's servers (their config's
        tollgate_settings.spool_dir, else their TOLLGATE_SPOOL_DIR) and of
        its plain CGI runs."""
        dirs = [os.path.join(self.tmp, "cgi-spool")]
        for srv in self.servers:
            d = (config_spool_dir(srv.config, srv.vardir)
                 or srv.extra_env.get("TOLLGATE_SPOOL_DIR"))
            if d and d not in dirs:
                dirs.append(d)
        return dirs

    def unsettled(self, holds=True, dbs=None):
        """What the database has not taken yet, as a list of strings (empty
        when settled): reservations rows (unless holds is false) in each
        of dbs (the test's database by default), spooled settlements and
        non-empty journals in spool_dirs()."""
        left = []
        if holds:
            for db in dbs or ("tollgate",):
                n = int(self.db.sql("SELECT COUNT(*) FROM reservations", db=db)[0][0])
                if n:
                    left.append("%s: %d reservations rows" % (db, n))
        for d in self.spool_dirs():
            left += pending_files(d)
        return left

    def settle(self, timeout=30.0, holds=True, dbs=None, poke=True):
        """Wait until the ledger's books are final (issue 22): no row left
        in reservations (holds: see unsettled()) and nothing pending in the
        spool directories, neither spooled settlements nor a non-empty
        journal.* file.  True when so, False after timeout seconds (what
        is left is in self.last_unsettled).  Each round asks every running
        server's /health/readiness, without a key (poke=False: not), so
        that its processes wake and do their after-response work.  In the
        direct mode, where nothing waits for a batch, one check at once."""
        direct = ledger_mode() == "direct"
        deadline = time.monotonic() + timeout
        while True:
            if poke and not direct:
                for srv in self.servers:
                    if srv.alive():
                        try:
                            srv.request("GET", "/health/readiness", key=None, timeout=10)
                        except OSError:
                            pass
            self.last_unsettled = self.unsettled(holds=holds, dbs=dbs)
            if not self.last_unsettled:
                return True
            if direct or time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def settle_ok(self, what, **kw):
        """settle() (kw: its arguments) before a test reads final books;
        in the spool and lease modes also a test point that they became
        final, named after what, with what was left if not."""
        done = self.settle(**kw)
        if ledger_mode() != "direct":
            self.t.ok(done, "%s: the pending batches landed (%sno journal left)"
                      % (what, "no reservations row, " if kw.get("holds", True) else ""),
                      *self.last_unsettled[:20], where=Tap._where())
        return done

    STORED_TABLES = ("customers", "spend_logs", "reservations", "rate_windows", "in_flight")

    def stored_counts(self):
        """The row count of every table a request can write to (a dict),
        to show that a refused request stored nothing."""
        return {tb: int(self.sql("SELECT COUNT(*) FROM %s" % tb)[0][0])
                for tb in self.STORED_TABLES}

    # -- valgrind (TG_VALGRIND=1) --
    def valgrind_wrap(self, cmd):
        """cmd, prefixed with valgrind when TG_VALGRIND=1 (its report goes to
        a file in the temporary directory, read by valgrind_check)."""
        if not VALGRIND:
            return cmd
        self.__dict__["_vg_runs"] = self.__dict__.get("_vg_runs", 0) + 1
        self._vg_log = os.path.join(self.tmp, "valgrind-%d.log" % self._vg_runs)
        return [_which("valgrind"), "--error-exitcode=1", "--leak-check=full",
                "--errors-for-leak-kinds=all", "--show-leak-kinds=all",
                "--track-origins=yes", "--num-callers=30",
                "--suppressions=" + VALGRIND_SUPP, "--log-file=" + self._vg_log] + cmd

    def valgrind_check(self, what):
        """A test point: the last valgrind run reported no error."""
        if not VALGRIND:
            return True
        report = _read(self._vg_log)
        m = re.findall(r"ERROR SUMMARY: (\d+) errors", report)
        return self.t.ok(bool(m) and m[-1] == "0", "valgrind: no errors in %s" % what,
                         "report %s:" % self._vg_log, report[-6000:] if report else "(none)")


def parse_cgi_output(out, elapsed=0.0):
    """Split a CGI answer: headers (Status: gives the status, 200 if none)
    and body."""
    sep = out.find(b"\r\n\r\n")
    seplen = 4
    nl = out.find(b"\n\n")
    if sep < 0 or (0 <= nl < sep):
        sep, seplen = nl, 2
    if sep < 0:
        return Resp(0, {}, out, elapsed)
    head, body = out[:sep].decode("latin-1"), out[sep + seplen:]
    headers, status = {}, 200
    for line in head.replace("\r\n", "\n").split("\n"):
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k, v = k.strip().lower(), v.strip()
        if k == "status":
            try:
                status = int(v.split()[0])
            except (ValueError, IndexError):
                status = 0
        headers[k] = headers[k] + ", " + v if k in headers else v
    return Resp(status, headers, body, elapsed)


# ---------------------------------------------------------------------------
# running a test program

_ACTIVE = []


def _cleanup_all():
    while _ACTIVE:
        env = _ACTIVE.pop()
        try:
            env.close()
        except Exception:
            traceback.print_exc(file=sys.stdout)


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


class SkipAll(Exception):
    """Raised by skip_all() inside run(): the test has nothing it can run
    here."""


def skip_all(reason):
    """The whole test cannot run here: TAP "1..0 # SKIP <reason>", exit 0;
    inside run() (from main) it ends main first (SkipAll), servers
    stopped.  Where every suite is required (REQUIRE_ALL, as script/test
    sets it for CI) it is a failure instead."""
    if _RUNNING:
        raise SkipAll(reason)
    reason = str(reason).replace("\n", " ")
    if REQUIRE_ALL:
        sys.stdout.write("not ok 1 - required here (TG_REQUIRE_ALL=1), but: %s\n1..1\n"
                         % reason)
        sys.stdout.flush()
        sys.exit(1)
    sys.stdout.write("1..0 # SKIP %s\n" % reason)
    sys.stdout.flush()
    sys.exit(0)


def run(main, name=None, db=True, upstream=True):
    """Run main(t, env) with servers started; exit with the TAP status."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    mode = os.environ.get("TG_LEDGER_MODE") or "direct"
    if mode != "direct" and not name.endswith("_" + mode):
        name += "_" + mode  # a wrapper runs the test under its own name
    t = Tap()
    t.diag("tollgate e2e %s: srcdir %s builddir %s, ledger mode %s"
           % (name, SRCDIR, BUILDDIR, mode))
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    atexit.register(_cleanup_all)
    env = None
    skipped = None
    _RUNNING.append(name)
    try:
        env = Env(t, name)
        _ACTIVE.append(env)
        env.start(db=db, upstream=upstream)
        main(t, env)
    except (SkipAll, Missing) as e:
        skipped = str(e)
    except SetupError as e:
        t.fail("setup: a server could not be started", str(e))
    except SystemExit as e:
        t.fail("interrupted (%s)" % e.code)
    except BaseException as e:  # noqa: B902 - report, then clean up
        t.fail("unexpected exception: %r" % (e,), traceback.format_exc())
    finally:
        if env is not None:
            try:
                env.close()
            except BaseException as e:
                t.fail("cleanup failed: %r" % (e,), traceback.format_exc())
            if env in _ACTIVE:
                _ACTIVE.remove(env)
        _RUNNING.remove(name)
    sys.stdout.flush()
    if skipped is not None and t.n == 0:
        skip_all(skipped)
    if skipped is not None:
        t.skip("the rest of %s" % name, skipped)
    sys.exit(t.done())
