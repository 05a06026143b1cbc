#!/usr/bin/env python3
"""ledger_diff_spool: tests/e2e/ledger_diff.py, every check of it, with the
ledger in the spool mode (a call's settlement appended to its process's
journal and moved into the database in batches): TG_LEDGER_MODE=spool (issue
22; tests/e2e/harness.py)."""

import os
import runpy

os.environ["TG_LEDGER_MODE"] = "spool"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ledger_diff.py"),
               run_name="__main__")
