#!/usr/bin/env python3
"""graceful: SIGTERM finishes the request in flight, then the process exits.

The web servers stop their FastCGI programs with SIGTERM (a graceful
restart of lighttpd or Apache), so a program must neither fail a body it is
reading nor cut a stream it is writing when the signal arrives, and must
not wait for one more request before exiting.

1. Through lighttpd: slow requests in flight on every chat worker (two
   answered after a 2 s delay, two streamed over ~2 s), then SIGTERM to
   every chat_completions process.  Every request completes with 200
   (streams with all their content and [DONE]), each is charged exactly
   once, and the signalled workers exit (lighttpd starts new ones: a later
   chat works).
   And lighttpd's own graceful restart (SIGUSR1) with a stream and a slow
   answer in flight: both complete, the old workers are gone, new ones
   serve.
2. Directly over FastCGI (no web server buffering the body): a chat
   program started on its own listening socket gets the headers and half
   of a body, then SIGTERM, then the rest: the body is read whole, the
   answer is 200 and charged once, and the program exits with status 0
   without another connection.
3. The same program, idle in accept(), exits promptly on SIGTERM.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, wait_for  # noqa: E402

PROCS = 4
CHUNKS = 6

# ---------------------------------------------------------------------------
# A FastCGI client (the responder role, one request per connection), enough
# to drive a program the way lighttpd and mod_fcgid do.

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = \
    1, 3, 4, 5, 6, 7


def _record(rtype, content, req_id=1):
    return struct.pack(">BBHHBx", 1, rtype, req_id, len(content), 0) + content


def _nv_len(n):
    return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)


def _params(env):
    data = b""
    for k, v in env.items():
        k, v = k.encode(), v.encode()
        data += _nv_len(len(k)) + _nv_len(len(v)) + k + v
    return _record(FCGI_PARAMS, data) + _record(FCGI_PARAMS, b"")


def _stdin(data):
    out = b""
    for i in range(0, len(data), 60000):
        out += _record(FCGI_STDIN, data[i:i + 60000])
    return out


def fcgi_read_response(sock, timeout=30):
    """(CGI output bytes, stderr bytes, app status) until END_REQUEST."""
    sock.settimeout(timeout)
    buf, out, err = b"", b"", b""
    while True:
        while len(buf) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed before END_REQUEST (stdout so far %r)" % out[:300])
            buf += chunk
        _, rtype, _, clen, plen = struct.unpack(">BBHHB", buf[:7])
        while len(buf) < 8 + clen + plen:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a record")
            buf += chunk
        content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
        if rtype == FCGI_STDOUT:
            out += content
        elif rtype == FCGI_STDERR:
            err += content
        elif rtype == FCGI_END_REQUEST:
            return out, err, struct.unpack(">I", content[:4])[0]


class FcgiProgram:
    """A program started as FastCGI on its own unix socket (fd 0 listening,
    as spawn-fcgi and the web servers start it)."""

    def __init__(self, env, program, config, name):
        self.path = os.path.join(env.tmp, "%s.sock" % name)
        self.log = os.path.join(env.tmp, "%s.stderr" % name)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(self.path)
        lsock.listen(8)
        penv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC",
                "TOLLGATE_CONFIG": config, "TOLLGATE_PRICE_FILE": H.PRICE_FILE,
                "DATABASE_URL": env.db.url}
        penv.update(H.SANITIZER_ENV)
        with open(self.log, "ab") as errf:
            self.proc = subprocess.Popen([os.path.join(H.BINDIR, program)], stdin=lsock,
                                         stdout=subprocess.DEVNULL, stderr=errf, env=penv,
                                         preexec_fn=H._pdeathsig)
        lsock.close()
        self.env = env
        self.name = name

    def catches_sigterm(self):
        """Whether the program has installed its SIGTERM handler (its
        SigCgt in /proc): before that, as while a sanitizer build starts
        on a loaded machine, a SIGTERM would kill it by default."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
        except OSError:
            pass
        return False

    def connect(self):
        if not H.wait_for(self.catches_sigterm, timeout=30, interval=0.05):
            raise H.SetupError("%s did not start (no SIGTERM handler after 30 s)" % self.name)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        return s

    @staticmethod
    def begin(sock, params):
        sock.sendall(_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 0)) + _params(params))

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        H._stop_process(self.proc, self.name, timeout=5)
        # scanned for sanitizer reports with the plain CGI runs' stderr
        self.env.cgi_stderr.append(("fastcgi " + self.name, H._read(self.log)))


def chat_params(body_len, uri="/chat/completions"):
    return {"REQUEST_METHOD": "POST", "REQUEST_URI": uri, "SCRIPT_NAME": uri,
            "QUERY_STRING": "", "CONTENT_LENGTH": str(body_len),
            "CONTENT_TYPE": "application/json", "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": "Bearer " + H.MASTER_KEY}


# ---------------------------------------------------------------------------

def charged_once(t, env, call_id, what):
    rows = env.sql("SELECT status, spend FROM spend_logs WHERE request_id = %s"
                   % H.sql_quote(call_id)) if call_id else []
    t.is_eq([(r[0], H.dec(r[1])) for r in rows], [("success", cost(10, 20))],
            "%s: charged exactly once, at the usage's cost" % what)


def stream_text(chunks):
    """The content of a stream's chat.completion.chunk objects, joined."""
    return "".join((ch.get("delta") or {}).get("content") or ""
                   for js in chunks if isinstance(js, dict)
                   for ch in js.get("choices") or [])


def chat_pids(srv):
    return sorted(srv.program_pids("chat_completions"))


def through_lighttpd(t, env):
    cfg = env.write_config("main", env.config())
    srv = env.start_lighttpd(cfg, max_procs=PROCS)
    user = "gr-user"
    t.is_eq(env.customer_new(user_id=user, max_budget=10).status, 200, "customer/new")
    # Every worker opens its database connection first.
    for _ in range(PROCS * 2):
        env.chat(user=user)
    env.upstream.reset()
    pids = wait_for(lambda: len(chat_pids(srv)) == PROCS and chat_pids(srv), timeout=10)
    t.is_eq(len(pids or []), PROCS, "lighttpd runs %d chat workers" % PROCS)
    pids = pids or []

    results = {}

    def plain(i):
        results[i] = env.chat(user=user, fake={"delay": 2})

    def stream(i):
        results[i] = env.stream_chat(user=user, fake={"chunks": CHUNKS, "stream_interval": 0.3})

    threads = []
    for i in range(PROCS):
        th = threading.Thread(target=plain if i % 2 == 0 else stream, args=(i,))
        th.start()
        threads.append(th)
        time.sleep(0.1)  # one per worker: lighttpd picks the least loaded
    arrived = wait_for(lambda: len(env.upstream.requests()) >= PROCS, timeout=10)
    t.ok(arrived, "all %d requests reached the upstream before the signal" % PROCS)
    time.sleep(0.3)  # streams have begun
    srv.expect_child_deaths = True  # checked below: each exited with 0
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for th in threads:
        th.join(60)

    for i in range(PROCS):
        r = results.get(i)
        what = "in flight #%d (%s)" % (i + 1, "stream" if i % 2 else "plain")
        if r is None:
            t.fail("%s: no answer" % what)
            continue
        t.is_eq(r.status, 200, "%s: 200" % what, repr(r))
        if i % 2:
            text = stream_text([e.get("json") for e in r.data_events()])
            t.is_eq(text.split(), ["tok%d" % (k + 1) for k in range(CHUNKS)],
                    "%s: the whole content" % what)
            t.ok(bool(r.events) and r.events[-1]["done"], "%s: ends with [DONE]" % what,
                 "events: %r" % [e["data"][:60] for e in r.events])
        else:
            t.ok(bool((r.json or {}).get("choices")), "%s: a chat.completion" % what, repr(r))
        charged_once(t, env, r.header("x-litellm-call-id"), what)

    gone = wait_for(lambda: not any(H._pid_alive(p) and "chat_completions" in H._cmdline(p)
                                    for p in pids), timeout=10)
    t.ok(gone, "every signalled worker exited",
         "alive: %r" % [p for p in pids if H._pid_alive(p)])
    deaths = [ln for ln in srv.logs().splitlines()
              if "child exited" in ln or "child signalled" in ln]
    t.ok(len(deaths) == PROCS and all(re.search(r"child exited: 0\b", ln) for ln in deaths),
         "lighttpd saw each of them exit with status 0, and nothing else die", *deaths)
    row = env.customer_row(user) or {}
    t.is_eq(row.get("spend"), env.ledger_sum(user), "spend == SUM(spend_logs.spend)")
    t.is_eq(row.get("reserved"), Decimal(0), "nothing left reserved")
    r = wait_for(lambda: (lambda x: x if x.status == 200 else None)(env.chat(user=user)),
                 timeout=10, interval=0.5)
    t.ok(r is not None and r.status == 200, "lighttpd's new workers serve chats", repr(r))


def lighttpd_restart(t, env):
    cfg = env.write_config("restart", env.config())
    srv = env.start_lighttpd(cfg, name="restart", max_procs=2)
    user = "gr-restart"
    t.is_eq(env.customer_new(user_id=user, max_budget=10, server=srv).status, 200,
            "customer/new (restart)")
    env.upstream.reset()
    results = {}

    def stream():
        results["stream"] = env.stream_chat(user=user, server=srv,
                                            fake={"chunks": CHUNKS, "stream_interval": 0.3})

    def plain():
        results["plain"] = env.chat(user=user, server=srv, fake={"delay": 2})

    threads = [threading.Thread(target=stream), threading.Thread(target=plain)]
    for th in threads:
        th.start()
        time.sleep(0.1)
    t.ok(wait_for(lambda: len(env.upstream.requests()) >= 2, timeout=10),
         "restart: both requests reached the upstream")
    time.sleep(0.3)
    pids = chat_pids(srv)
    os.kill(srv.proc.pid, signal.SIGUSR1)  # lighttpd: graceful restart
    for th in threads:
        th.join(60)
    r = results.get("stream")
    t.ok(r is not None and r.status == 200 and bool(r.events) and r.events[-1]["done"] and
         stream_text([e.get("json") for e in r.data_events()]).split() ==
         ["tok%d" % (k + 1) for k in range(CHUNKS)],
         "restart: the stream completed, all its content and [DONE]", repr(r))
    if r is not None:
        charged_once(t, env, r.header("x-litellm-call-id"), "restart: stream")
    r = results.get("plain")
    t.ok(r is not None and r.status == 200 and bool((r.json or {}).get("choices")),
         "restart: the slow answer completed with 200", repr(r))
    if r is not None:
        charged_once(t, env, r.header("x-litellm-call-id"), "restart: plain")
    t.ok(wait_for(lambda: not any(H._pid_alive(p) and "chat_completions" in H._cmdline(p)
                                  for p in pids), timeout=10),
         "restart: the old workers exited")
    r = wait_for(lambda: (lambda x: x if x.status == 200 else None)(
        env.chat(user=user, server=srv)), timeout=10, interval=0.5)
    t.ok(r is not None, "restart: the restarted lighttpd serves chats", repr(r))


def slow_upload(t, env):
    cfg = env.write_config("fcgi", env.config())
    user = "gr-upload"
    t.is_eq(env.customer_new(user_id=user, max_budget=10).status, 200, "customer/new (upload)")
    prog = FcgiProgram(env, "chat_completions", cfg, "fcgi-upload")
    try:
        body = json.dumps(env.chat_body(user=user, content="x" * 3000)).encode()
        half = len(body) // 2
        s = prog.connect()
        prog.begin(s, chat_params(len(body)))
        s.sendall(_stdin(body[:half]))
        time.sleep(0.5)  # the program is blocked reading the rest of the body
        prog.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        t.is_eq(prog.proc.poll(), None, "upload: the program is still serving after SIGTERM")
        s.sendall(_stdin(body[half:]) + _record(FCGI_STDIN, b""))
        try:
            out, _, _ = fcgi_read_response(s)
        except (EOFError, OSError) as e:
            out = b""
            t.diag("upload: %r" % e)
        s.close()
        r = H.parse_cgi_output(out)
        t.is_eq(r.status, 200, "upload: the body was read whole: 200", repr(r))
        t.ok(bool((r.json or {}).get("choices")), "upload: a chat.completion", repr(r))
        charged_once(t, env, r.header("x-litellm-call-id"), "upload")
        reqs = env.upstream.requests()
        t.ok(bool(reqs) and (reqs[-1].get("json") or {}).get("messages") ==
             [{"role": "user", "content": "x" * 3000}], "upload: the upstream got the whole prompt")
        t.is_eq(prog.wait(10), 0, "upload: then the program exits with status 0, unasked")
    finally:
        prog.stop()

    # A stream written when the signal arrives is written to its end.
    user = "gr-stream"
    t.is_eq(env.customer_new(user_id=user, max_budget=10).status, 200, "customer/new (stream)")
    prog = FcgiProgram(env, "chat_completions", cfg, "fcgi-stream")
    try:
        body = env.chat_body(user=user, fake={"chunks": CHUNKS, "stream_interval": 0.3})
        body["stream"] = True
        body = json.dumps(body).encode()
        s = prog.connect()
        prog.begin(s, chat_params(len(body)))
        s.sendall(_stdin(body) + _record(FCGI_STDIN, b""))
        time.sleep(0.8)
        prog.proc.send_signal(signal.SIGTERM)
        try:
            out, _, _ = fcgi_read_response(s)
        except (EOFError, OSError) as e:
            out = b""
            t.diag("stream: %r" % e)
        s.close()
        r = H.parse_cgi_output(out)
        t.is_eq(r.status, 200, "stream: 200")
        events = [H.parse_sse_block(b) for b in r.text.replace("\r\n", "\n").split("\n\n")]
        events = [e for e in events if e is not None]
        t.is_eq(stream_text([json.loads(e) for e in events if e != "[DONE]"]).split(),
                ["tok%d" % (k + 1) for k in range(CHUNKS)], "stream: the whole content")
        t.ok(bool(events) and events[-1] == "[DONE]", "stream: ends with [DONE]",
             r.text[-200:])
        charged_once(t, env, r.header("x-litellm-call-id"), "stream")
        t.is_eq(prog.wait(10), 0, "stream: then the program exits with status 0")
    finally:
        prog.stop()

    # Idle in accept(): the signal ends the process at once.
    prog = FcgiProgram(env, "chat_completions", cfg, "fcgi-idle")
    try:
        t.ok(H.wait_for(prog.catches_sigterm, timeout=30, interval=0.05),
             "idle: the program started")
        time.sleep(0.5)
        t0 = time.monotonic()
        prog.proc.send_signal(signal.SIGTERM)
        t.is_eq(prog.wait(5), 0, "idle: exits with status 0 on SIGTERM")
        t.cmp_ok(time.monotonic() - t0, "<", 2.0, "idle: promptly")
    finally:
        prog.stop()


def main(t, env):
    through_lighttpd(t, env)
    lighttpd_restart(t, env)
    slow_upload(t, env)


H.run(main)
