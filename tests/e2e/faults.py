#!/usr/bin/env python3
"""faults: the ledger's promise under faults (SPEC 4.3, 4.4, 4.5, 11).

Each case runs mixed streamed and non-streamed load on the LLM routes
(chat completions, the Responses API and Anthropic's Messages API,
streamed and not, and embeddings), one call per fresh customer (so a customer's rows are its
call's), all customers on a tier with a max_budget, injects a fault, lets
the spool replay and the reclaim run, and then checks:
- every call the fake upstream answered has exactly one ledger row
  (success, failure or unsettled): nothing lost, no request id twice;
- every answer a client received whole (a 200 body, or a stream that ended
  as its API ends one: [DONE], response.completed, message_stop) is
  charged in a success
  row;
- for every customer spend <= max_budget, spend == the sum of its rows and
  reserved == 0; no hold rows are left and the spool is empty.
It prints calls, rows, lost, doubled, spooled, unsettled for each case.

Faults: SIGKILL of the LLM workers (at least 5); MariaDB stopped for seconds
while streams run and started again on the same datadir; MariaDB stopped
with SIGSTOP and resumed; the upstream killed mid-stream.  (SIGTERM of
every chat worker during slow requests is tests/e2e/graceful.py.)

In the ledger's spool and lease modes (TG_LEDGER_MODE, issue 22:
faults_spool.py, faults_lease.py) a settlement goes through its process's
journal into the database in batches, so the checks wait until the batches
have landed (no reservations row, no non-empty journal.* left: the spool is
empty only then), and one case more kills the batch mover: SIGKILL of the
chat workers under load, each kill when possible inside a batch's
transaction (batch_killed()).
"""

import collections
import os
import random
import re
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, dec  # noqa: E402

TIMEOUT = 6  # the deployments' timeout: a hold lasts 6 + 1 s
TIER = "fault-tier"
# A tier whose budget is far from its end: with less left than 32 calls'
# worst case, the spool and lease modes settle before the answer (SPEC
# 4.6), and these faults are for their journals and leases.
TIER_MAX = Decimal("0.05") if H.ledger_mode() == "direct" else Decimal("1")
PATHS = {"chat": "/chat/completions", "responses": "/v1/responses",
         "messages": "/v1/messages", "embeddings": "/v1/embeddings"}
LLM_PROGRAMS = ("chat_completions", "responses", "messages", "embeddings")
ROUTES = ("chat", "responses", "messages", "embeddings")


def ended(route, s):
    """Whether a stream ended as its API ends a whole one."""
    if not s.events:
        return False
    if route == "responses":
        return (s.events[-1]["json"] or {}).get("type") == "response.completed"
    if route == "messages":
        return (s.events[-1]["json"] or {}).get("type") == "message_stop"
    return s.events[-1]["done"]


class Load:
    """Threads making calls, each for a new customer "<case>-<n>", until
    stopped.  Records what each client got."""

    def __init__(self, env, srv, case, threads=6, model="fake-gpt", stream_share=0.5,
                 stream_fake=None, plain_fake=None, routes=ROUTES):
        self.env, self.srv, self.case = env, srv, case
        self.routes = routes
        self.model = model
        self.stream_share = stream_share
        self.stream_fake = stream_fake or {"chunks": 5, "stream_interval": 0.08}
        self.plain_fake = plain_fake or {"delay": 0.2}
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.n = 0
        self.results = {}  # user -> (kind, outcome)
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _next(self):
        with self.lock:
            self.n += 1
            return "%s-%d" % (self.case, self.n)

    def one(self, user, stream, route):
        """One call of route ("chat", "responses", "messages", "embeddings")."""
        kind = "%s %s" % (route, "stream" if stream else "plain")
        try:
            if stream:
                body = self.body(route, user, self.stream_fake)
                body["stream"] = True
                s = self.env.stream_chat(body=body, path=PATHS[route], server=self.srv,
                                         timeout=60)
                return (kind, "complete" if s.status == 200 and ended(route, s)
                        else "status %s" % s.status)
            r = self.env.request("POST", PATHS[route], server=self.srv,
                                 body=self.body(route, user, self.plain_fake))
            return (kind, "complete" if r.status == 200 else "status %s" % r.status)
        except Exception as e:  # a dropped connection is an outcome too
            return (kind, "transport %s" % type(e).__name__)

    def body(self, route, user, fake):
        if route == "responses":
            return {"model": self.model, "input": "hello", "user": user, "fake": dict(fake)}
        if route == "embeddings":
            return {"model": self.model, "input": ["hello", "world"], "user": user,
                    "fake": dict(fake)}
        if route == "messages":
            # fake-gpt's anthropic/ twin, fake-claude (main()).
            return {"model": self.model.replace("fake-gpt", "fake-claude"), "max_tokens": 100,
                    "metadata": {"user_id": user},
                    "messages": [{"role": "user", "content": "hello"}], "fake": dict(fake)}
        return self.env.chat_body(user=user, model=self.model, fake=dict(fake))

    def _run(self, i):
        rnd = random.Random(i)
        while not self.stop_ev.is_set():
            user = self._next()
            stream = rnd.random() < self.stream_share
            route = rnd.choice(self.routes if not stream else
                               [r for r in self.routes if r != "embeddings"])
            res = self.one(user, stream, route)
            with self.lock:
                self.results[user] = res
            if res[1] != "complete":
                time.sleep(0.05)  # refused (database down): not a busy loop

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(120)


def like(case):
    return H.sql_quote(case + "-%")


def settle_down(t, env, srv, case, spool):
    """Let replay and reclaim run (they run after responses: keep asking)
    until no hold of the case is left and the spool is empty (its journals
    too, in the spool and lease modes, and no reservations row at all)."""
    def quiet():
        try:
            env.request("GET", "/health/readiness", server=srv, key=None, timeout=10)
        except OSError:
            pass
        holds = env.sql("SELECT COUNT(*) FROM reservations WHERE user_id LIKE %s" % like(case))
        return holds[0][0] == "0" and not H.pending_files(spool)
    done = H.wait_for(quiet, timeout=TIMEOUT + 30, interval=0.5)
    env.settle_ok(case)
    r = env.request("GET", "/health/readiness", server=srv, key=None)
    t.ok(isinstance(r.json, dict) and r.json.get("spool") == 0
         and r.json.get("spool_failed") == 0,
         "%s: readiness reports an empty spool" % case, r.text)
    t.ok(done, "%s: holds reclaimed and spool replayed in time" % case,
         "holds: %s, spool: %s" % (
             env.sql("SELECT request_id, expires_at FROM reservations WHERE user_id LIKE %s"
                     % like(case)), H.pending_files(spool)))


def check(t, env, srv, case, results, upstream_users, spool, spooled_before):
    settle_down(t, env, srv, case, spool)
    rows = env.sql("SELECT request_id, end_user, status, spend FROM spend_logs "
                   "WHERE end_user LIKE %s" % like(case))
    by_user = collections.defaultdict(list)
    for rid, user, status, spend in rows:
        by_user[user].append((rid, status, dec(spend)))
    ids = collections.Counter(r[0] for r in rows)
    lost = sorted(u for u in upstream_users if not by_user.get(u))
    doubled = sorted(u for u, rs in by_user.items() if len(rs) > 1)
    twice_ids = [i for i, n in ids.items() if n > 1]
    statuses = collections.Counter(r[2] for r in rows)
    unpaid = sorted(u for u, (kind, outcome) in results.items()
                    if outcome == "complete" and [r[1] for r in by_user.get(u, [])] != ["success"])
    spooled = spooled_lines(srv) - spooled_before
    outcomes = collections.Counter(o.split(" ")[0] for _, o in results.values())
    t.diag("%s: calls %d (client outcomes %s), upstream answered %d, rows %d %s, lost %d, "
           "doubled %d, spooled %d, unsettled %d"
           % (case, len(results), dict(outcomes), len(upstream_users), len(rows),
              dict(statuses), len(lost), len(doubled), spooled, statuses.get("unsettled", 0)))
    t.ok(not lost, "%s: every call the upstream answered has a ledger row" % case,
         "lost: %r" % lost[:20])
    t.ok(not doubled and not twice_ids, "%s: no call charged twice" % case,
         "doubled: %r" % doubled[:20])
    t.ok(not unpaid, "%s: every answer delivered whole is charged as success" % case,
         "unpaid: %r" % [(u, results[u], by_user.get(u)) for u in unpaid[:10]])
    t.ok(set(statuses) <= {"success", "failure", "unsettled"},
         "%s: rows are success, failure or unsettled" % case, repr(dict(statuses)))
    books = env.sql(
        "SELECT c.user_id, c.spend, c.reserved, b.max_budget,"
        " (SELECT COALESCE(SUM(s.spend), 0) FROM spend_logs s WHERE s.end_user = c.user_id)"
        " FROM customers c LEFT JOIN budgets b ON b.budget_id = COALESCE(c.budget_id, %s)"
        " WHERE c.user_id LIKE %s" % (H.sql_quote(TIER), like(case)))
    bad_sum = [b for b in books if dec(b[1]) != dec(b[4])]
    bad_max = [b for b in books if b[3] is None or dec(b[1]) > dec(b[3])]
    bad_res = [b for b in books if dec(b[2]) != 0]
    t.ok(books and not bad_sum, "%s: spend == sum of the rows, for all %d customers"
         % (case, len(books)), repr(bad_sum[:10]))
    t.ok(books and not bad_max, "%s: spend <= max_budget for every customer" % case,
         repr(bad_max[:10]))
    t.ok(not bad_res, "%s: nothing reserved" % case, repr(bad_res[:10]))
    return {"calls": len(results), "rows": len(rows), "lost": len(lost),
            "doubled": len(doubled), "spooled": spooled,
            "unsettled": statuses.get("unsettled", 0)}


def spooled_lines(srv):
    return srv.logs().count("settlement spooled")


def upstream_users(env, case):
    return {q["json"]["user"] for q in env.upstream.requests()
            if isinstance(q.get("json"), dict)
            and str(q["json"].get("user", "")).startswith(case + "-")}


def kill_workers(t, env, srv, spool):
    case = "kill9"
    srv.expect_child_deaths = True
    base = spooled_lines(srv)
    load = Load(env, srv, case, threads=6).start()
    kills = 0
    deadline = time.monotonic() + 12
    time.sleep(0.8)
    killed = collections.Counter()
    while kills < 6 and time.monotonic() < deadline:
        program = LLM_PROGRAMS[kills % len(LLM_PROGRAMS)]
        pids = srv.program_pids(program)
        if pids:
            os.kill(random.choice(pids), signal.SIGKILL)
            kills += 1
            killed[program] += 1
        time.sleep(0.9)
    time.sleep(1.0)
    load.stop()
    t.diag("%s: workers killed %s" % (case, dict(killed)))
    t.cmp_ok(kills, ">=", 5, "%s: LLM workers killed (chat, responses, messages, embeddings)" % case)
    t.ok(H.wait_for(lambda: all(srv.program_pids(p) for p in LLM_PROGRAMS), timeout=10),
         "%s: lighttpd runs the LLM workers again" % case)
    r = env.chat(user="%s-after" % case, server=srv)
    t.is_eq(r.status, 200, "%s: a call after the kills is served" % case)
    load.results["%s-after" % case] = ("plain", "complete" if r.status == 200 else "x")
    return check(t, env, srv, case, load.results, upstream_users(env, case), spool, base)


def db_stopped(t, env, srv, spool):
    case = "dbstop"
    base = spooled_lines(srv)
    slow = {"chunks": 12, "stream_interval": 0.25}
    load = Load(env, srv, case, threads=6, stream_share=0.8, stream_fake=slow,
                plain_fake={"delay": 1.5}).start()
    time.sleep(1.2)
    env.db.stop()
    t0 = time.monotonic()
    journaled = 0  # the most journals holding settlements at once
    while time.monotonic() < t0 + 4:
        journaled = max(journaled, len(H.journal_files(spool)))
        time.sleep(0.2)
    env.db.start()
    t.diag("%s: MariaDB was down %.1f s" % (case, time.monotonic() - t0))
    time.sleep(1.5)
    load.stop()
    figures = check(t, env, srv, case, load.results, upstream_users(env, case), spool, base)
    if H.ledger_mode() == "direct":
        t.cmp_ok(figures["spooled"], ">", 0,
                 "%s: settlements were spooled while it was down" % case)
    else:
        # A journal is written whether the database is up or not: what
        # shows the outage is that it kept settlements meanwhile.
        t.diag("%s: journals holding settlements while it was down: up to %d" % (case, journaled))
        t.ok(figures["spooled"] > 0 or journaled > 0,
             "%s: settlements were spooled or journaled while it was down" % case,
             "spooled %d, journals %d" % (figures["spooled"], journaled))
    return figures


def db_sigstop(t, env, srv, spool):
    case = "dbsigstop"
    base = spooled_lines(srv)
    load = Load(env, srv, case, threads=6).start()
    time.sleep(1.0)
    os.kill(env.db.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(env.db.proc.pid, signal.SIGCONT)
    time.sleep(1.5)
    load.stop()
    return check(t, env, srv, case, load.results, upstream_users(env, case), spool, base)


def upstream_killed(t, env, srv, second, spool):
    case = "upkill"
    base = spooled_lines(srv)
    # As many streams as lighttpd runs chat workers (4): all at the
    # upstream at once when it dies.
    load = Load(env, srv, case, threads=4, model="fake-gpt-b", stream_share=1.0,
                stream_fake={"chunks": 20, "stream_interval": 0.2},
                routes=("chat", "responses", "messages")).start()
    seen = H.wait_for(lambda: len(second.requests()) >= 4, timeout=10)
    t.ok(seen, "%s: streams running at the second upstream" % case)
    time.sleep(0.6)
    users = {q["json"].get("user") or q["json"]["metadata"]["user_id"]
             for q in second.requests() if isinstance(q.get("json"), dict)}
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait()
    time.sleep(1.0)
    load.stop()
    figures = check(t, env, srv, case, load.results, users, spool, base)
    rows = env.sql("SELECT status, spend FROM spend_logs WHERE end_user IN (%s)"
                   % ",".join(H.sql_quote(u) for u in sorted(users)))
    t.ok(rows and all(s == "failure" and dec(v) > 0 for s, v in rows),
         "%s: the cut streams are failure rows with a charge" % case, repr(rows))
    cut = [u for u in users if load.results.get(u, ("", ""))[1] == "complete"]
    t.ok(not cut, "%s: no cut stream ended as a whole one ([DONE], response.completed, "
         "message_stop)"
         % case, repr(cut))
    kinds = collections.Counter(load.results[u][0] for u in users if u in load.results)
    t.diag("%s: cut streams by route %s" % (case, dict(kinds)))
    return figures


TRX_RE = re.compile(r"^---TRANSACTION (\d+), ACTIVE.*?(?=^---|\Z)", re.M | re.S)
# batch_killed() asks which process a connection is: the client library
# tells the server its _pid, kept in performance_schema.session_connect_attrs
# (performance_schema on, with as little else as it can).
PS_OPTS = ["--performance-schema=ON", "--performance-schema-instrument=%=OFF",
           "--performance-schema-consumer-events-statements-current=OFF",
           "--performance-schema-digests-size=0", "--performance-schema-max-digest-length=0",
           "--performance-schema-max-sql-text-length=0"] + [
    "--performance-schema-events-%s-history%s-size=0" % (kind, long)
    for kind in ("statements", "stages", "waits", "transactions") for long in ("", "-long")]


def open_writes(session):
    """The database's open transactions that have written rows, as {trx id:
    (rows written (undo log entries), connection id, the tables it locked)}.
    From SHOW ENGINE INNODB STATUS, made when asked (with
    innodb_status_output_locks on, it names the tables):
    information_schema.innodb_trx is a copy renewed at most every 100 ms,
    too late for transactions of a few milliseconds."""
    status = session.query("SHOW ENGINE INNODB STATUS")[0][2]
    found = {}
    for m in TRX_RE.finditer(status):
        block = m.group(0)
        undo = re.search(r"undo log entries (\d+)", block)
        thread = re.search(r"thread id (\d+)", block)
        if undo and thread and int(undo.group(1)) > 0:
            found[m.group(1)] = (int(undo.group(1)), thread.group(1),
                                 frozenset(re.findall(r"TABLE LOCK table `[^`]+`\.`([^`]+)`",
                                                      block)))
    return found


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_inside(session, pids, trx, conn):
    """Stop every one of pids (SIGSTOP) at once, and resume all but the one
    of connection conn (performance_schema: PS_OPTS); if its transaction
    trx is still open 30 and 60 ms later, it waits for that process, which
    is stopped: kill it (SIGKILL) there, and return the rows trx had
    written.  Otherwise resume it too and return None."""
    victim = None
    signal_all(pids, signal.SIGSTOP)
    try:
        pid = session.query("SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs"
                            " WHERE PROCESSLIST_ID = %s AND ATTR_NAME = '_pid'" % conn)
        if pid and int(pid[0][0]) in pids:
            victim = int(pid[0][0])
        signal_all([p for p in pids if p != victim], signal.SIGCONT)
        if victim is None:
            return None
        time.sleep(0.03)
        if trx in open_writes(session):
            time.sleep(0.03)
            rows = open_writes(session).get(trx)
            if rows:
                signal_all([victim], signal.SIGKILL)
                return rows[0]
        return None
    finally:
        signal_all(pids, signal.SIGCONT)  # the killed one is no longer there


def batch_killed(t, env, srv, spool):
    """The spool and lease modes only: the batch mover killed mid-batch.  A
    chat worker moves its journal into the database after its responses,
    one transaction per batch (the only transactions that write spend_logs
    there); under chat load (streamed and not) its workers get SIGKILL
    again and again.  Each round watches the database's open transactions
    for up to 2 s (open_writes(), polled on one connection).  When one that
    has written rows to spend_logs shows, its process is stopped there and
    killed if the transaction waits for it (stop_inside(): a kill inside a
    batch), else resumed, and the watch goes on.  When no kill landed
    inside a batch by then, a worker is killed at that random moment.  What
    the killed workers leave in their journals must then land once, with
    the checks of every case."""
    case = "batchkill"
    srv.expect_child_deaths = True
    base = spooled_lines(srv)
    env.sql("SET GLOBAL innodb_status_output_locks = ON")
    load = Load(env, srv, case, threads=6, routes=("chat",)).start()
    rnd = random.Random(22)
    session = H.SqlSession(env.db)
    kinds = collections.Counter()
    hits = []  # per hit, the rows its transaction had written
    journals_left = 0
    deadline = time.monotonic() + 25
    try:
        time.sleep(0.8)
        while sum(kinds.values()) < 10 and time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.1, 0.5))
            pids = srv.program_pids("chat_completions")
            if not pids:
                continue
            hit = None
            watch = time.monotonic() + 2
            while hit is None and time.monotonic() < watch:
                batches = [(trx, conn) for trx, (rows, conn, tables)
                           in open_writes(session).items() if "spend_logs" in tables]
                if batches:
                    hit = stop_inside(session, pids, *batches[0])
            if hit is None:
                signal_all([rnd.choice(pids)], signal.SIGKILL)
                kinds["at a random moment"] += 1
            else:
                hits.append(hit)
                kinds["inside a batch"] += 1
            journals_left = max(journals_left, len(H.journal_files(spool)))
            H.wait_for(lambda: len(srv.program_pids("chat_completions")) >= len(pids),
                       timeout=10)
    finally:
        session.close()
        env.sql("SET GLOBAL innodb_status_output_locks = OFF")
    time.sleep(1.0)
    load.stop()
    t.diag("%s: chat workers killed %s; rows the transactions hit had written: %s; "
           "non-empty journals right after a kill: up to %d"
           % (case, dict(kinds), hits, journals_left))
    t.cmp_ok(sum(kinds.values()), ">=", 5, "%s: chat workers killed again and again" % case)
    t.ok(H.wait_for(lambda: srv.program_pids("chat_completions"), timeout=10),
         "%s: lighttpd runs the chat workers again" % case)
    r = env.chat(user="%s-after" % case, server=srv)
    t.is_eq(r.status, 200, "%s: a call after the kills is served" % case)
    load.results["%s-after" % case] = ("plain", "complete" if r.status == 200 else "x")
    return check(t, env, srv, case, load.results, upstream_users(env, case), spool, base)


def main(t, env):
    spool = os.path.join(env.tmp, "spool")
    if H.ledger_mode() != "direct":
        env.db.SERVER_OPTS = H.MariaDB.SERVER_OPTS + PS_OPTS  # for batch_killed()
        env.db.restart()
    second = H.FakeUpstream(os.path.join(env.tmp))
    second.log = os.path.join(env.tmp, "fake_upstream_b.log")
    second.start()
    # Each upstream has an OpenAI-format model and an anthropic/ one (for
    # /v1/messages; a deployment of the same name would serve chat too,
    # translated, without the fake's directives).
    cfg = env.config(
        models=[env.model("fake-gpt", timeout=TIMEOUT),
                env.model("fake-claude", timeout=TIMEOUT, api_base=env.upstream.base,
                          model="anthropic/fake-claude"),
                env.model("fake-gpt-b", timeout=TIMEOUT, api_base=second.base + "/v1"),
                env.model("fake-claude-b", timeout=TIMEOUT, api_base=second.base,
                          model="anthropic/fake-claude-b")],
        litellm_settings={"max_end_user_budget_id": TIER},
        extra={"tollgate_settings": {"hold_grace": 1, "reclaim_interval": 1,
                                     "spool_dir": spool}})
    srv = env.start_lighttpd(env.write_config("faults", cfg), name="faults", max_procs=4)
    r = env.budget_new(budget_id=TIER, max_budget=str(TIER_MAX), server=srv)
    t.is_eq(r.status, 200, "the tier every customer gets")
    figures = {}
    figures["kill9"] = kill_workers(t, env, srv, spool)
    figures["dbstop"] = db_stopped(t, env, srv, spool)
    figures["dbsigstop"] = db_sigstop(t, env, srv, spool)
    figures["upkill"] = upstream_killed(t, env, srv, second, spool)
    if H.ledger_mode() != "direct":
        # Batches of many settlements (a longer spool_batch_ms), so that
        # the kills find their transactions open.
        bspool = os.path.join(env.tmp, "spool-batch")
        cfg["tollgate_settings"] = dict(cfg["tollgate_settings"], spool_dir=bspool,
                                        spool_batch_ms=400)
        bsrv = env.start_lighttpd(env.write_config("batchkill", cfg), name="batchkill",
                                  max_procs=4)
        figures["batchkill"] = batch_killed(t, env, bsrv, bspool)
    for case, f in figures.items():
        t.diag("figures %-10s calls %4d rows %4d lost %d doubled %d spooled %3d unsettled %3d"
               % (case, f["calls"], f["rows"], f["lost"], f["doubled"], f["spooled"],
                  f["unsettled"]))
    second.stop()


if __name__ == "__main__":
    H.run(main)
