#!/usr/bin/env python3
"""galera: the ledger on a 3-node MariaDB Galera cluster (SPEC 4.3, 10).

The test starts its own cluster on 127.0.0.1 (tests/e2e/galera_cluster.py:
Debian's galera-4, three mariadbd in the temporary directory), creates the
schema through node 1, and runs one lighttpd per database node, each on
its own port with its own spool: web node N talks to database node N only,
as SPEC 10 deploys it.  Then:

1. The concurrent test of tests/e2e/scaleout.py: 200 calls for one
   customer at once, round-robin over the three web nodes, near its
   max_budget (exactly 120 fit).  Galera certifies optimistically:
   conflicting writes of the customer's row from two nodes fail at commit
   with 1213 (deadlock), and tollgate retries them (lib/db.c logs one line
   per retried transaction; the test adds them up and prints them).  The
   same as on one server must hold: exactly 120 admitted, the others 429,
   spend <= max_budget, spend == ledger sum, lost 0, doubled 0, nothing
   reserved; and the three nodes hold the same figures.
2. Database node 3 cut off from the others (out of the primary
   component): web node 3's /health/readiness answers 503 and its calls
   503 service_unavailable, web node 1 stays ready; back in the cluster,
   web node 3 is ready again.
3. A node killed: calls run through all three web nodes while database
   node 3 gets SIGKILL, stays down for a few seconds and is started again
   (it rejoins by IST).  Web node 3 answers every call meanwhile: 503
   service_unavailable in the envelope, or 200 with the settlement spooled
   when the node died under a call; web nodes 1 and 2 keep answering 200.
   Once node 3 is back, web node 3 serves again and replays its spool, and
   nothing is lost: every 200 has its success row, no other row charges
   anything, spend == ledger sum on every node, nothing reserved.

(And a database_url naming several hosts is refused, saying why: the
README argues that failover between nodes is the deployment's.)

Figures printed: calls, admitted, spend vs max_budget, ledger sum, deadlock
retries, lost, doubled; for the kill, also the 503s, the spooled and
replayed settlements and how long the node was down.

In the ledger's lease mode (TG_LEDGER_MODE, issue 22: galera_lease.py) the
books are read once the batches have landed, on every web node (Env.settle:
no reservations row, no non-empty journal.* in any web node's spool).
"""

import collections
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Decimal, cost, dec  # noqa: E402
import galera_cluster as G  # noqa: E402
import scaleout  # noqa: E402

PROCS = 4  # chat processes per web node
THREADS = 2  # clients per web node during the kill


def node_books(node, users):
    """What one node holds for the customers: per user (spend, reserved,
    ledger rows, ledger sum)."""
    q = ",".join(H.sql_quote(u) for u in users)
    rows = node.sql("SELECT c.user_id, c.spend, c.reserved,"
                    " (SELECT COUNT(*) FROM spend_logs s WHERE s.end_user = c.user_id),"
                    " (SELECT COALESCE(SUM(s.spend), 0) FROM spend_logs s"
                    "  WHERE s.end_user = c.user_id)"
                    " FROM customers c WHERE c.user_id IN (%s) ORDER BY c.user_id" % q)
    return [(r[0], dec(r[1]), dec(r[2]), int(r[3]), dec(r[4])) for r in rows]


def same_everywhere(t, cluster, users, tag):
    books = [node_books(n, users) for n in cluster.nodes]
    t.ok(books[0] and all(b == books[0] for b in books),
         "%s: the three nodes hold the same spend, reserved and ledger" % tag,
         *["n%d: %r" % (n.n, b) for n, b in zip(cluster.nodes, books)])


class Load:
    """THREADS clients per web node, each calling in a loop until stopped;
    every answer recorded as (node, start, end, status, call id, error
    type, exception)."""

    def __init__(self, servers, body):
        self.servers = servers
        self.body = body
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.threads = [threading.Thread(target=self._run, args=(srv,))
                        for srv in servers for _ in range(THREADS)]

    def _run(self, srv):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                r = H.http_request(srv.port, "POST", "/chat/completions", body=self.body,
                                   timeout=60)
                rec = (srv.name, t0, time.monotonic(), r.status, r.header("x-litellm-call-id"),
                       r.error.get("type"), None)
                shape = r.status == 200 or (
                    isinstance(r.json, dict) and set(r.json) == {"error"}
                    and r.error.get("code") == str(r.status))
                if not shape:
                    rec = rec[:6] + ("not an envelope: %s" % r.text[:200],)
            except Exception as e:  # a dropped connection is an outcome too
                rec = (srv.name, t0, time.monotonic(), None, None, None, repr(e))
            with self.lock:
                self.results.append(rec)
            if rec[3] != 200:
                time.sleep(0.1)  # not a busy loop while the node is down

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(120)


def spooled(srv):
    return srv.logs().count("settlement spooled")


def replayed(srv):
    return sum(int(n) for n in re.findall(r"replayed (\d+) spooled settlements", srv.logs()))


def node_killed(t, env, cluster, servers):
    tag = "galera kill -9"
    user = "galera-kill-customer"
    victim, vsrv = cluster.nodes[2], servers[2]
    max_tokens = 20
    body, n = H.exact_chat_body("fake-gpt", user, max_tokens, fake={"delay": 0.05})
    est = cost(n, max_tokens)
    max_budget = est * 100000  # not reached: this is about losing nothing
    r = env.customer_new(user_id=user, max_budget=str(max_budget), server=servers[0])
    t.is_eq(r.status, 200, "%s: customer/new %s" % (tag, user))
    before = scaleout.retry_lines(servers)
    spooled_before = spooled(vsrv)
    replayed_before = replayed(vsrv)
    up_before = sum(1 for q in env.upstream.requests() if (q.get("json") or {}).get("user") == user)

    load = Load(servers, body).start()
    try:
        time.sleep(1.5)
        t_kill = time.monotonic()
        victim.kill()
        time.sleep(4)
        t_restart = time.monotonic()
        position = victim.recover()
        for hang in victim.recover_hangs:
            t.diag(hang)
        victim.let_sst_write()
        victim.start()
        t_synced = time.monotonic()
        sizes_ok = cluster.wait_size(3, timeout=30)
        time.sleep(1.5)
    finally:
        load.stop()
    t.ok(sizes_ok, "%s: node 3 rejoined, cluster size 3 and Synced everywhere" % tag,
         *[H._tail(victim.errlog, 20)])
    rejoin = H._read(victim.errlog).split("Recovering after a crash")[-1]
    t.diag("%s: node 3 down %.1f s, recovered position %s, back and Synced %.1f s after its "
           "restart (%s)" % (tag, t_restart - t_kill, position, t_synced - t_restart,
                             "SST" if "SST completed" in rejoin else "IST"))

    # Web node 3 replays its spool after responses: keep asking until it
    # is empty and no hold is left.
    spool = vsrv.extra_env["TOLLGATE_SPOOL_DIR"]

    def settled():
        for srv in servers:
            try:
                srv.request("GET", "/health/readiness", key=None, timeout=10)
            except OSError:
                pass
        holds = victim.sql("SELECT COUNT(*) FROM reservations WHERE user_id = %s"
                           % H.sql_quote(user))[0][0]
        return holds == "0" and not H.pending_files(spool)
    t.ok(H.wait_for(settled, timeout=30, interval=0.5),
         "%s: web node 3's spool replayed and every hold released" % tag,
         "spool: %r" % H.pending_files(spool))
    env.settle_ok(tag)

    res = load.results
    by_node = collections.defaultdict(collections.Counter)
    for name, _t0, _t1, status, _cid, _etype, _exc in res:
        by_node[name][status] += 1
    transport = [r for r in res if r[6] is not None]
    ok_ids = {r[4] for r in res if r[3] == 200}
    err_ids = {r[4] for r in res if r[3] not in (200, None)}
    survivors = [r for r in res if r[0] != vsrv.name]
    v_calls = [r for r in res if r[0] == vsrv.name]
    v_bad = [r for r in v_calls if r[3] not in (200, 503) or
             (r[3] == 503 and r[5] != "service_unavailable")]
    v_after = [r for r in v_calls if r[1] > t_synced + 0.5]
    rows = env.sql("SELECT request_id, status, spend FROM spend_logs WHERE end_user = %s"
                   % H.sql_quote(user))
    ids = collections.Counter(rid for rid, _, _ in rows)
    success = {rid for rid, status, _ in rows if status == "success"}
    charged_others = [(rid, status, spend) for rid, status, spend in rows
                      if rid not in ok_ids and dec(spend) != 0]
    stray = [rid for rid, _, _ in rows if rid not in ok_ids and rid not in err_ids]
    lost = len(ok_ids - success)
    doubled = len(charged_others) + len(success - ok_ids) + sum(k - 1 for k in ids.values() if k > 1)
    row = env.customer_row(user) or {}
    spend, ledger = row.get("spend"), env.ledger_sum(user)
    upstream = sum(1 for q in env.upstream.requests()
                   if (q.get("json") or {}).get("user") == user) - up_before
    retries = scaleout.retries_since(servers, before)
    # Replayed: the spooled settlements, and the releases of holds whose
    # admission's commit went unanswered (spooled without a log line).
    n_spooled, n_replayed = spooled(vsrv) - spooled_before, replayed(vsrv) - replayed_before

    t.diag("%s: answers per web node %s" % (
        tag, {k: dict(v) for k, v in sorted(by_node.items())}))
    t.diag("%s figures: calls %d, admitted %d, 503 %d, spend %s vs max_budget %s, ledger sum %s, "
           "deadlock retries %d (in %d transactions, at most %d in one, %d given up), "
           "lost %d, doubled %d, settlements spooled %d, spool files replayed %d" % (
               tag, len(res), len(ok_ids), sum(1 for r in res if r[3] == 503), spend,
               max_budget, ledger, retries[0], retries[1], retries[2], retries[3], lost, doubled,
               n_spooled, n_replayed))
    t.is_eq(transport, [], "%s: every call got an HTTP answer" % tag)
    t.ok(survivors and all(r[3] == 200 for r in survivors),
         "%s: web nodes 1 and 2 answered every call 200 throughout" % tag,
         *[repr(r) for r in survivors if r[3] != 200][:5])
    t.ok(any(r[1] > t_kill + 1 and r[2] < t_restart for r in survivors),
         "%s: web nodes 1 and 2 served calls while node 3 was down" % tag)
    t.ok(any(r[3] == 503 for r in v_calls),
         "%s: web node 3 refused calls while its database was down" % tag, dict(by_node[vsrv.name]))
    t.is_eq(v_bad, [], "%s: web node 3's refusals are 503 service_unavailable in the envelope" % tag)
    t.ok(v_after and all(r[3] == 200 for r in v_after),
         "%s: web node 3 serves again once node 3 is back" % tag,
         *[repr(r) for r in v_after if r[3] != 200][:5])
    t.is_eq(lost, 0, "%s: every call answered 200 has its success row (lost)" % tag)
    t.is_eq(doubled, 0, "%s: no other row charges anything, no id twice (doubled)" % tag,
            *[repr(x) for x in charged_others[:5]])
    t.is_eq(stray, [], "%s: every ledger row is a call the clients made" % tag)
    t.is_eq(upstream, len(ok_ids), "%s: every call that reached the upstream was answered 200" % tag)
    t.cmp_ok(spend, "<=", max_budget, "%s: spend <= max_budget" % tag)
    t.is_eq(spend, ledger, "%s: spend == SUM(spend_logs.spend)" % tag)
    t.is_eq(spend, est * len(ok_ids), "%s: spend = the 200s x their cost" % tag)
    t.is_eq(row.get("reserved"), Decimal(0), "%s: nothing left reserved" % tag)
    same_everywhere(t, cluster, [user], tag)


def isolated(t, env, cluster, servers):
    """Database node 3 cut off from the others (gmcast.isolate): out of the
    primary component it still answers SELECT 1, but nothing on a table;
    web node 3's readiness must say so, for the load balancer that takes
    it out of rotation."""
    tag = "galera non-primary"
    node, srv = cluster.nodes[2], servers[2]

    def ready(s, key=None):
        return s.request("GET", "/health/readiness", key=key, timeout=10)
    t.is_eq(ready(srv).status, 200, "%s: web node 3 ready before" % tag)
    H.MariaDB.sql(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'", db=None)
    t0 = time.monotonic()
    r = H.wait_for(lambda: (lambda x: x if x.status == 503 else None)(ready(srv)), timeout=30)
    t.ok(r and (r.json or {}).get("status") == "unhealthy"
         and (r.json or {}).get("db") == "unreachable",
         "%s: web node 3's /health/readiness answers 503" % tag, r and r.text)
    r = ready(srv, key=H.MASTER_KEY)
    t.ok(r.status == 503 and "not ready" in str((r.json or {}).get("db_error")),
         "%s: ... and tells the master key why" % tag, r.text)
    t.diag("%s: node 3 out of the primary component (%s) after %.1f s" % (
        tag, node.status("wsrep_cluster_status"), time.monotonic() - t0))
    r = env.chat(user="galera-race-customer", server=srv)
    env.check_error(r, 503, "service_unavailable", what="%s: a chat on web node 3" % tag)
    t.is_eq(ready(servers[0]).status, 200, "%s: web node 1 is still ready" % tag)
    H.MariaDB.sql(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'", db=None)
    back = cluster.wait_size(3, timeout=60) and H.wait_for(lambda: ready(srv).status == 200,
                                                            timeout=30)
    t.ok(back, "%s: back in the cluster, web node 3 is ready again" % tag)


def several_hosts(t, env):
    """A database_url naming more than one host is refused, saying why
    (README: failover between nodes is the deployment's)."""
    cfg = env.write_config("hosts", env.config())
    r = env.cgi("health", "GET", "/health/readiness", config=cfg, key=H.MASTER_KEY,
                database_url="mysql://root@127.0.0.1:3306,127.0.0.2:3306/tollgate")
    t.ok(r.status == 503 and "more than one host" in str((r.json or {}).get("db_error")),
         "galera: a database_url with several hosts is refused, saying why", r.text)


def main(t, env):
    cluster = G.GaleraCluster(env.tmp)
    try:
        cluster.start()
        t.diag("galera: cluster of 3 up in %.1f s (%s)" % (
            cluster.timings["start"],
            ", ".join("%s %.1f s" % kv for kv in cluster.timings.items() if kv[0] != "start")))
        env.db = cluster.nodes[0]
        env.migrate()
        cfg = env.write_config("main", env.config())
        servers = [env.start_lighttpd(cfg, name="galera-web%d" % node.n, max_procs=PROCS,
                                      database_url=node.url)
                   for node in cluster.nodes]
        t.ok(len({s.port for s in servers}) == 3,
             "galera: three web nodes, each on its own port and database node")
        scaleout.race(t, env, servers, "galera", "galera-race-customer")
        same_everywhere(t, cluster, ["galera-race-customer"], "galera")
        isolated(t, env, cluster, servers)
        node_killed(t, env, cluster, servers)
        several_hosts(t, env)
    finally:
        # Web nodes first (their programs hold connections), then the
        # cluster, last node first.
        for srv in env.servers:
            srv.stop()
        cluster.stop()
        t.diag("galera: cluster stopped in %.1f s" % cluster.timings.get("stop", 0))


if __name__ == "__main__":
    why = G.galera_missing()
    if why:
        H.skip_all("no Galera here (script/test installs galera-4 and rsync): " + why)
    H.run(main, db=False)
