#!/usr/bin/env python3
"""db_unit: the C tests of lib/db.c that need a server (tests/unit/test-db).

The harness starts the private MariaDB; test-db runs against it with
TG_TEST_DATABASE_URL and its TAP lines are relayed one by one, so each of
its checks is a check of this test (a skip or a crash fails).
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROGRAM = os.path.join(H.BUILDDIR, "tests", "unit", "test-db")


def main(t, env):
    if not os.access(PROGRAM, os.X_OK):
        t.fail("test-db is built (make check builds it)", "missing: %s" % PROGRAM)
        return
    H.relay_tap(t, PROGRAM, "test-db", env={"TG_TEST_DATABASE_URL": env.db.url})


H.run(main)
