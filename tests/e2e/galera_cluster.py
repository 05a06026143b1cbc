"""galera_cluster: a private 3-node MariaDB Galera cluster on 127.0.0.1.

For tests/e2e/galera.py.  Each node is a mariadbd started like the
harness's MariaDB (--no-defaults, --user=root when root, its own datadir,
unix socket and logs in the test's temporary directory), plus TCP on
127.0.0.1 only, on free ports, for what replication needs: the SQL port,
group communication (gcomm), incremental state transfer (IST) and full
state transfer (SST, by rsync).  Debian's galera-4 provides the library
(/usr/lib/galera/libgalera_smm.so); the command lines are those of
../shared/galera.md.

Start: node 1 bootstraps the cluster (--wsrep-new-cluster) from a copy of
the harness's pristine datadir, is stopped cleanly and copied to nodes 2
and 3 (its grastate.dat says which cluster and position the data is at),
then bootstraps again and the others join: they only miss the cluster's
few view changes since, which they get by IST, so no node copies a whole
datadir.  TG_GALERA_SST=1 instead starts nodes 2 and 3 empty and lets
each join by a full rsync SST, one after the other (galera-cluster.sh's
way).  On this 2-core machine the copy starts the cluster in 12 to 20 s
and the SSTs in 35 to 45 s; when other tests share the machine the copy
takes up to 40 s too (most of it is the SST script, which even an IST
runs).

A node killed by a test is started again as Debian's service would start
it: galera_recovery (mariadbd --wsrep-recover) reads the position the
crashed datadir holds, so that the node asks for what it missed (IST).

Stop: SIGTERM by pid, node 3, then 2, then 1, each waited for, so that
the datadirs are left restartable (stopping all at once leaves every
grastate.dat unsafe to bootstrap).

Failure detection is tightened (evs.suspect_timeout 2 s instead of 5 s,
keepalives every 0.5 s, evs.inactive_timeout 4 s instead of 15 s), so that
a killed node leaves the group, and the others go on committing, within
about 2 s; that and a small gcache are the only departures from the
defaults.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

import harness as H

PROVIDER = os.environ.get("TG_GALERA_PROVIDER") or "/usr/lib/galera/libgalera_smm.so"
# TG_GALERA_SST=1: nodes 2 and 3 join by rsync SST, as galera.md does it.
SST = os.environ.get("TG_GALERA_SST") == "1"


def galera_missing():
    """Why a Galera cluster cannot run here, or None (Debian: galera-4 and
    rsync, which mariadb-server depends on)."""
    if not os.path.exists(PROVIDER):
        return "%s not found (Debian package galera-4)" % PROVIDER
    for tool in ("rsync", "wsrep_sst_rsync", "mariadbd", "mariadb-install-db"):
        try:
            H._which(tool)
        except H.SetupError as e:
            return str(e)
    return None


class GaleraNode(H.MariaDB):
    """One node: H.MariaDB with TCP on 127.0.0.1 and the wsrep options.
    sql() reads with wsrep_sync_wait = 1, so that a query sees every
    transaction the cluster committed before it."""

    def __init__(self, base, n, cluster):
        super().__init__(base)
        self.n = n
        self.cluster = cluster
        self.dir = os.path.join(base, "galera", "n%d" % n)
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysql.sock")
        self.pidfile = os.path.join(self.dir, "mysqld.pid")
        self.errlog = os.path.join(self.dir, "mysqld.err")
        self.url = "mysql://root@localhost/tollgate?socket=" + self.socket
        self.port = H.free_port()
        self.gcomm_port = H.free_port()
        self.ist_port = H.free_port()
        self.sst_port = H.free_port()
        self.bootstrap = False
        self.sst_method = "rsync"
        self.start_position = None

    @property
    def SERVER_OPTS(self):  # noqa: N802 - shadows H.MariaDB.SERVER_OPTS
        opts = [o for o in H.MariaDB.SERVER_OPTS if o != "--skip-networking"]
        provider_opts = ";".join([
            "gmcast.listen_addr=tcp://127.0.0.1:%d" % self.gcomm_port,
            "ist.recv_addr=127.0.0.1:%d" % self.ist_port,
            "gcache.size=32M",
            "evs.keepalive_period=PT0.5S", "evs.suspect_timeout=PT2S",
            "evs.inactive_timeout=PT4S",
        ])
        opts += [
            "--bind-address=127.0.0.1", "--port=%d" % self.port,
            "--wsrep-on=ON", "--wsrep-provider=" + PROVIDER,
            "--wsrep-cluster-name=" + self.cluster.name,
            "--wsrep-node-name=n%d" % self.n,
            "--wsrep-cluster-address=" + self.cluster.gcomm(),
            "--wsrep-node-address=127.0.0.1:%d" % self.gcomm_port,
            "--wsrep-provider-options=" + provider_opts,
            "--wsrep-sst-receive-address=127.0.0.1:%d" % self.sst_port,
            "--wsrep-sst-method=" + self.sst_method,
            "--binlog-format=ROW", "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
        ]
        if self.bootstrap:
            opts.append("--wsrep-new-cluster")
        if self.start_position:
            opts.append("--wsrep-start-position=" + self.start_position)
        return opts

    def init_empty(self):
        """An empty datadir, filled by SST when the node joins."""
        os.makedirs(self.datadir, exist_ok=True)
        self.let_sst_write()

    def status(self, name):
        """A GLOBAL_STATUS value (str), or None when the node does not
        answer."""
        try:
            rows = H.MariaDB.sql(self, "SHOW GLOBAL STATUS LIKE %s" % H.sql_quote(name), db=None)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None
        return rows[0][1] if rows else None

    def synced(self):
        return self.status("wsrep_local_state_comment") == "Synced"

    def seed_from(self, other):
        """This node's datadir: a copy of other's (stopped), without its
        group state (gvwstate.dat) and write-set cache, and not the one to
        bootstrap from."""
        shutil.rmtree(self.datadir, ignore_errors=True)
        shutil.copytree(other.datadir, self.datadir, symlinks=True,
                        ignore=shutil.ignore_patterns("gvwstate.dat", "galera.cache",
                                                      "*.pid", "*.sock"))
        gra = os.path.join(self.datadir, "grastate.dat")
        with open(gra) as f:
            text = f.read()
        with open(gra, "w") as f:
            f.write(text.replace("safe_to_bootstrap: 1", "safe_to_bootstrap: 0"))
        self.let_sst_write()

    def let_sst_write(self):
        """As root, rsync's daemon started by the SST script writes as
        nobody: the datadir must be theirs, in case a (re)join needs SST."""
        if os.geteuid() != 0:
            return
        uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        for root, dirs, files in os.walk(self.datadir):
            os.chown(root, uid, gid)
            for f in files:
                os.chown(os.path.join(root, f), uid, gid)

    def _spawn(self):
        """H.MariaDB.start without waiting for the node to answer."""
        cmd = [self.mariadbd, "--no-defaults", "--datadir=" + self.datadir,
               "--socket=" + self.socket, "--pid-file=" + self.pidfile,
               "--log-error=" + self.errlog] + self.SERVER_OPTS + self._user_opts()
        out = open(os.path.join(self.dir, "mysqld.out"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=H._pdeathsig)
        out.close()

    def start(self, timeout=120, wait=True):
        """Start; with wait, wait until the node is Synced with the cluster."""
        if wait:
            super().start(timeout=timeout)
        else:
            self._spawn()
        if wait:
            self.wait_synced(timeout)

    def wait_synced(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise H.SetupError("galera node %d exited with %s:\n%s" % (
                    self.n, self.proc.returncode, H._tail(self.errlog)))
            if self.synced():
                return
            time.sleep(0.1)
        raise H.SetupError("galera node %d not Synced after %ds:\n%s" % (
            self.n, timeout, H._tail(self.errlog)))

    def recover(self, timeout=60, tries=2):
        """After a crash: the position the datadir holds (mariadbd
        --wsrep-recover, as Debian's galera_recovery does before systemd
        starts the service), for the next start, so that the node asks for
        the writesets it missed (IST) rather than a whole copy (SST).
        Returns it, or None when it cannot be told.

        Once in many runs (sanitizer build, loaded machine) the recovery
        run did not end within 120 s, for a reason its log did not keep:
        a run that passes its timeout is killed and tried again, up to
        tries times in all, and self.recover_hangs keeps each one's log
        for the test to show; the last one raises SetupError with it."""
        log = os.path.join(self.dir, "recover.err")
        self.start_position = None
        self.recover_hangs = []
        cmd = [self.mariadbd, "--no-defaults", "--datadir=" + self.datadir,
               "--socket=" + self.socket + ".recover", "--pid-file=" + self.pidfile + ".recover",
               "--log-error=" + log] + self.SERVER_OPTS + self._user_opts() + ["--wsrep-recover"]
        for attempt in range(tries):
            try:
                os.unlink(log)
            except FileNotFoundError:
                pass
            try:
                subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=timeout,
                               preexec_fn=H._pdeathsig)
                break
            except subprocess.TimeoutExpired:
                # subprocess.run() has killed and reaped it.
                self.recover_hangs.append("mariadbd --wsrep-recover of node %d still running "
                                          "after %g s (try %d of %d); its log:\n%s" % (
                                              self.n, timeout, attempt + 1, tries,
                                              H._tail(log, 30)))
                if attempt + 1 == tries:
                    raise H.SetupError("\n".join(self.recover_hangs))
        m = re.findall(r"WSREP: Recovered position: (\S+:-?\d+)", H._read(log))
        if m and not m[-1].endswith(":-1"):
            self.start_position = m[-1]
        return self.start_position

    def kill(self):
        """SIGKILL our own mariadbd (a crash), and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def sql(self, query, db="tollgate"):
        return H.MariaDB.sql(self, "SET SESSION wsrep_sync_wait = 1; " + query, db=db)


class GaleraCluster:
    """Three GaleraNodes under base/galera (nodes[0] is node 1)."""

    def __init__(self, base, size=3, name="tollgate-e2e"):
        self.base = base
        self.name = name
        self.nodes = [GaleraNode(base, n, self) for n in range(1, size + 1)]
        self.timings = {}

    def gcomm(self):
        return "gcomm://" + ",".join("127.0.0.1:%d" % n.gcomm_port for n in self.nodes)

    def start(self):
        """Start the cluster as the top of this file says: every node
        Synced, cluster size 3.  Timings (s) in self.timings."""
        why = galera_missing()
        if why:
            raise H.SetupError("Galera cannot run here: " + why)
        # rsync's daemon (as nobody) must pass through the test's directory.
        for d in (self.base, os.path.join(self.base, "galera")):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        t0 = time.monotonic()
        first = self.nodes[0]
        first.init()
        first.bootstrap = True
        first.start()
        self.timings["bootstrap"] = time.monotonic() - t0
        if SST:
            first.bootstrap = False  # a restart joins the running cluster
            for node in self.nodes[1:]:
                t1 = time.monotonic()
                node.init_empty()
                node.start()
                self.timings["join n%d" % node.n] = time.monotonic() - t1
        else:
            # The copies join by IST only (see the top of this file).
            t1 = time.monotonic()
            first.stop()
            for node in self.nodes[1:]:
                node.seed_from(first)
            first.start()  # bootstraps again, from its own state
            first.bootstrap = False
            for node in self.nodes[1:]:
                node.start(wait=False)
            for node in self.nodes[1:]:
                node.wait_synced()
            self.timings["seed+join"] = time.monotonic() - t1
        sizes = [node.status("wsrep_cluster_size") for node in self.nodes]
        if sizes != [str(len(self.nodes))] * len(self.nodes):
            raise H.SetupError("galera cluster sizes %r, expected %d each" % (sizes, len(self.nodes)))
        self.timings["start"] = time.monotonic() - t0

    def stop(self):
        """SIGTERM the nodes by pid, the last ones first, node 1 at the end;
        wait for each."""
        t0 = time.monotonic()
        for node in reversed(self.nodes):
            node.stop()
        self.timings["stop"] = time.monotonic() - t0

    def wait_size(self, size, timeout=60):
        """Wait until every running node reports cluster size `size` and
        Synced; whether it happened."""
        def done():
            live = [n for n in self.nodes if n.alive()]
            return all(n.status("wsrep_cluster_size") == str(size) and n.synced() for n in live)
        return H.wait_for(done, timeout=timeout, interval=0.1)
