#!/usr/bin/env python3
"""db_unit: the C tests of lib/db.c that need a server (tests/unit/test-db).

The harness starts the private MariaDB; test-db runs against it with
TG_TEST_DATABASE_URL and its TAP lines are relayed one by one, so each of
its checks is a check of this test (a skip or a crash fails).
"""

import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROGRAM = os.path.join(H.BUILDDIR, "tests", "unit", "test-db")


def main(t, env):
    if not os.access(PROGRAM, os.X_OK):
        t.fail("test-db is built (make check builds it)", "missing: %s" % PROGRAM)
        return
    penv = dict(os.environ, TG_TEST_DATABASE_URL=env.db.url)
    penv.update(H.SANITIZER_ENV)
    r = subprocess.run([PROGRAM], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=penv,
                       timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    plan, n = None, 0
    for line in out.splitlines():
        m = re.match(r"^(not ok|ok) \d+ - (.*)$", line)
        if m:
            n += 1
            t.ok(m.group(1) == "ok", "test-db: " + m.group(2))
        elif re.match(r"^1\.\.\d+", line):
            plan = line
        elif line.startswith("#"):
            t.diag(line[1:].strip())
    t.is_eq(r.returncode, 0, "test-db exits with 0", out[-2000:])
    t.ok(plan is not None and plan == "1..%d" % n and n > 0,
         "test-db ran its %d checks (plan %r)" % (n, plan))


H.run(main)
