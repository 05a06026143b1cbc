#!/usr/bin/env python3
"""bench_smoke: bench/run --smoke works, so that the benchmark does not rot.

It runs the benchmark for a few seconds per scenario on the programs of
this build (--builddir: no build of its own), without Portkey (no npm
needed) and without installing anything, and checks the report's shape:
every scenario row is printed with numbers in it (or the one n/a a row
may have), and the round trips, streaming, memory, callgrind and ledger
lines are there; the budgeted rows of each ledger mode (issue 22: one hot
customer and 32 customers, direct, spool and lease) answered 2xx and left
their books right.  Then bench/db_alone with 60 calls per shape: its eight
rows, and its books adding up on both of its databases.  The figures themselves are not judged: the
benchmark is not a test (issue 11), and this machine is shared and noisy.
"""

import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DB_ALONE = os.path.join(H.SRCDIR, "bench", "db_alone")
BENCH = os.path.join(H.SRCDIR, "bench", "run")
# Every row of the report, and what its cells may say instead of figures.
ROWS = {
    "upstream direct (nginx)": None,
    "Portkey gateway 1.15.2, no accounting": "n/a (--no-portkey)",
    "tollgate, no customer": None,
    "tollgate, customer without budget": None,
    "tollgate, customer with max_budget (one hot customer, direct)": None,
    "tollgate, 32 customers with max_budget (direct)": None,
    "tollgate, customer with max_budget (one hot customer, spool)": None,
    "tollgate, 32 customers with max_budget (spool)": None,
    "tollgate, customer with max_budget (one hot customer, lease)": None,
    "tollgate, 32 customers with max_budget (lease)": None,
    "tollgate, virtual key + customer with max_budget": "n/a (no /key/generate)",
    "tollgate, customer with max_budget, big ledger": None,
    "stream: upstream direct (nginx)": None,
    "stream: Portkey gateway 1.15.2": "n/a (--no-portkey)",
    "stream: tollgate, customer with max_budget": None,
    "embeddings: upstream direct (nginx)": None,
    "embeddings: tollgate, customer with max_budget": None,
    "stream responses: upstream direct (nginx)": None,
    "stream responses: tollgate, customer with max_budget": None,
}
MODE_ROWS = [label for label in ROWS if label.endswith(("direct)", "spool)", "lease)"))]
NUMBER = re.compile(r"^[\d,.]+( us| ms)?$")


def cells_of(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_rows(text, header, columns=False):
    """{first cell: [cells]} of the markdown table whose header line starts
    with header; with columns, also the header's other cells."""
    rows, names = {}, []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            names = cells_of(line)[1:]
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = cells_of(row)
                rows[cells[0]] = cells[1:]
            break
    return (rows, names) if columns else rows


def main(t, env):
    for tool in ("nginx", "wrk"):
        try:
            H._which(tool)
        except H.SetupError:
            H.skip_all("%s not installed (script/test installs nginx-light and wrk)" % tool)
    cmd = [sys.executable, BENCH, "--smoke", "--no-portkey", "--no-install",
           "--builddir", H.BUILDDIR]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    if not t.is_eq(r.returncode, 0, "bench/run --smoke exits 0", "stderr:", err[-4000:]):
        return
    t.diag(out)
    t.like(out, r"(?m)^Command: `bench/run --smoke ", "the report names its command")
    t.like(out, r"(?m)^Machine: \d+ CPUs", "the report names the machine")

    main_rows, columns = table_rows(out, "| target | sequential RPS", columns=True)
    t.ok("DB round trips per call" in columns and "durable DB transactions per call" in columns,
         "the main table has the round trips and durable transactions columns", repr(columns))
    trips_col = columns.index("DB round trips per call") if "DB round trips per call" in \
        columns else -1
    durable_col = columns.index("durable DB transactions per call") if \
        "durable DB transactions per call" in columns else -1
    for label, allowed in ROWS.items():
        found = [k for k in main_rows if k == label or k.startswith(label + " (")]
        if not t.ok(found, "row printed: %s" % label, "rows: %r" % list(main_rows)):
            continue
        cells = main_rows[found[0]]
        if allowed is not None and cells[0] == allowed:
            t.ok(True, "%s: %s" % (label, allowed))
            continue
        # sequential RPS, p50, 32-connection RPS, p99 at 32
        t.ok(len(cells) >= 4 and all(NUMBER.match(c) for c in cells[:4]),
             "%s: figures in every column" % label, "cells: %r" % cells)
        if "tollgate" in label:
            t.ok(len(cells) > max(trips_col, durable_col) and all(
                NUMBER.match(cells[c]) for c in (trips_col, durable_col)),
                "%s: database round trips and durable transactions" % label,
                "cells: %r" % cells)
    # Every LLM route is the same meter: a budgeted call on any costs what
    # one on chat does (2 round trips: the admission and the settlement).
    trips = {label: (main_rows.get(label) or ["-"] * len(columns))[trips_col] for label in (
        "tollgate, customer with max_budget (one hot customer, direct)",
        "stream: tollgate, customer with max_budget",
        "embeddings: tollgate, customer with max_budget",
        "stream responses: tollgate, customer with max_budget")}
    t.is_eq(set(trips.values()), {"2.00"}, "a budgeted call costs 2 round trips on every "
            "route, streamed or not", repr(trips))

    rts = table_rows(out, "| scenario | Questions")
    t.ok(len(rts) >= 4 and all(NUMBER.match(v[0]) for v in rts.values()),
         "round trips per call for each tollgate scenario", "rows: %r" % rts)
    # Issue 22: each ledger mode's budgeted rows, their counters read once
    # the settlements landed, and their books right after them.
    for label in MODE_ROWS:
        t.ok(label in rts and all(NUMBER.match(c) for c in rts[label][:5]),
             "%s: round trips, commits, durable transactions, log writes, fsyncs" % label,
             "rows: %r" % list(rts))
        spread = ", 32 customers, [\\d,]+ to [\\d,]+ calls each" if "32 customers" in label else ""
        t.like(out, r"(?m)^- %s: [\d,]+ calls in the ledger, every answer 2xx%s; books: ok"
               % (re.escape(label), spread),
               "%s: every answer 2xx, books right once settled" % label)
    streams = table_rows(out, "| target | first byte")
    for label in ("stream: tollgate, customer with max_budget",
                  "stream responses: tollgate, customer with max_budget"):
        row = streams.get(label)
        t.ok(row and all(NUMBER.match(c) for c in row),
             "%s: streaming first byte and last byte" % label, "rows: %r" % streams)
    cpu = table_rows(out, "| scenario | mariadbd")
    t.ok(len(cpu) >= 5, "CPU per call of each server", "rows: %r" % cpu)
    t.like(out, r"Chat workers' RSS after [\d,]+ calls .*VmRSS [\d,]+", "worker RSS")
    t.like(out, r"(?m)^- [^:]+: ([\d,]+ instructions \(Ir\) per call|n/a \(a sanitizer build)",
           "callgrind instructions per call (n/a in a sanitizer build)")
    t.like(out, r"Ledger check, bench-budget: .*: yes\.", "the ledger adds up after the run")

    # bench/db_alone, a few calls per shape.
    r = subprocess.run(["bash", DB_ALONE, "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    out = r.stdout.decode("utf-8", "replace")
    if not t.is_eq(r.returncode, 0, "bench/db_alone exits 0",
                   "stderr:", r.stderr.decode("utf-8", "replace")[-4000:]):
        return
    rows = table_rows(out, "| shape |")
    t.ok(len(rows) == 8 and all(len(c) == 3 and all(NUMBER.match(x) for x in c)
                                and int(c[0]) >= 60 for c in rows.values()),
         "db_alone: calls, calls/s and mariadbd CPU per call for each of 8 shapes", out)
    for what in ("durable", "flushed once a second"):
        t.like(out, r"(?m)^%s: books: spend = ledger sum: 1, reserved 0\.0+, holds left 0$"
               % what, "db_alone, %s: the books add up after it" % what)


if __name__ == "__main__":
    if not os.access(BENCH, os.X_OK) or not shutil.which("python3"):
        H.skip_all("bench/run not found")
    H.run(main, db=False, upstream=False)
