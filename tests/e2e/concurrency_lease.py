#!/usr/bin/env python3
"""concurrency_lease: tests/e2e/concurrency.py, every check of it, with the
ledger in the lease mode (calls admitted against a slice of the budget that
each process leases; settlements through its journal): TG_LEDGER_MODE=lease
(issue 22; tests/e2e/harness.py)."""

import os
import runpy

os.environ["TG_LEDGER_MODE"] = "lease"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "concurrency.py"),
               run_name="__main__")
