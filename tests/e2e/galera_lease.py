#!/usr/bin/env python3
"""galera_lease: tests/e2e/galera.py, every check of it, with the ledger in the
lease mode (calls admitted against a slice of the budget that each process
leases; settlements through its journal): TG_LEDGER_MODE=lease (issue 22;
tests/e2e/harness.py). galera.py is the longest suite (a 3-node cluster): it
runs in this mode only, the one furthest from the direct mode."""

import os
import runpy

os.environ["TG_LEDGER_MODE"] = "lease"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "galera.py"),
               run_name="__main__")
