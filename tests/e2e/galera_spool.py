#!/usr/bin/env python3
"""galera_spool: tests/e2e/galera.py, every check of it, with the ledger in the
spool mode (each call's settlement through its process's journal, moved into
the cluster in batches): TG_LEDGER_MODE=spool (issue 22;
tests/e2e/harness.py)."""

import os
import runpy

os.environ["TG_LEDGER_MODE"] = "spool"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "galera.py"),
               run_name="__main__")
