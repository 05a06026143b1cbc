#!/usr/bin/env python3
"""statements: the budget races and the fault suite on the ledger's long way.

The ledger runs a common admission and settlement as one CALL of the
procedures of sql/007 and sql/008, and everything else, or every call on a
database without them, as statements (lib/ledger.c).  The suites that
prove the ledger under load run the procedures' way; this runs them again
with the procedures dropped, so that the statements' way is raced too:
tests/e2e/concurrency.py (50 parallel calls against a budget on every LLM
route, 200 calls over 20 new customers) and tests/e2e/faults.py (workers
killed, the database stopped and frozen, the upstream killed mid-stream),
with every check of theirs.  tests/e2e/ledger_diff.py compares the rows
the two ways leave.
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean (and read-only safe)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import concurrency  # noqa: E402
import faults  # noqa: E402
import harness as H  # noqa: E402


def main(t, env):
    env.sql("DROP PROCEDURE tg_admit; DROP PROCEDURE tg_settle;"
            " DROP PROCEDURE tg_admit_v11; DROP PROCEDURE tg_settle_v11")
    left = env.sql("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA ="
                   " 'tollgate' AND ROUTINE_NAME LIKE 'tg\\_%'")
    t.is_eq(left, [["0"]], "the procedures are dropped: every transaction takes the statements")
    calls_before = env.sql("SHOW GLOBAL STATUS LIKE 'Com_call_procedure'")
    concurrency.main(t, env)
    faults.main(t, env)
    calls_after = env.sql("SHOW GLOBAL STATUS LIKE 'Com_call_procedure'")
    t.diag("CALLs tried (and answered 'no such procedure'): %s -> %s"
           % (calls_before[0][1], calls_after[0][1]))
    procs = env.sql("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA ="
                    " 'tollgate'")
    t.is_eq(procs, [["0"]], "no procedure came back meanwhile")


H.run(main)
