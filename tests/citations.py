#!/usr/bin/env python3
"""citations: every "SPEC n.n" and DESIGN "<heading>" the code cites names a
section of docs/SPEC.md or a heading of docs/DESIGN.md (TAP).

The sources read: lib/, cgi-bin/, tools/, sql/, ui/www/, tests/ (C, SQL,
JavaScript, Python).  A citation of a section that is not there (renumbered,
removed, mistyped) is a failing test point naming the file and line.
"""

import os
import re
import sys

SRC = os.environ.get("TG_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ("lib", "cgi-bin", "tools", "sql", "ui/www", "tests")
EXTS = (".c", ".h", ".sql", ".js", ".cjs", ".py")
SPEC_RE = re.compile(r"\bSPEC (\d+(?:\.\d+)*)")
DESIGN_RE = re.compile(r'\bDESIGN "([^"]+)"')

n = 0


def ok(cond, name, *diag):
    global n
    n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, name))
    for d in diag if not cond else ():
        print("#   %s" % d)
    return cond


def headings(path, pattern):
    with open(path, encoding="utf-8") as f:
        return [m.group(1) for line in f for m in [re.match(pattern, line)] if m]


def main():
    spec = os.path.join(SRC, "docs", "SPEC.md")
    design = os.path.join(SRC, "docs", "DESIGN.md")
    if not ok(os.path.exists(spec) and os.path.exists(design),
              "docs/SPEC.md and docs/DESIGN.md are there", SRC):
        print("1..%d" % n)
        return 1
    sections = set(headings(spec, r"#{2,3} (\d+(?:\.\d+)*)\.?\s"))
    titles = headings(design, r"## (.+?)\s*$")
    ok(len(sections) >= 14, "SPEC.md has its sections (%d)" % len(sections))
    bad, cited = [], 0
    for d in DIRS:
        for root, dirs, files in os.walk(os.path.join(SRC, d)):
            dirs[:] = [x for x in dirs if x not in ("node_modules", "corpus", "__pycache__")]
            for name in sorted(files):
                if not name.endswith(EXTS) or name == "citations.py":
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, SRC)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        for m in SPEC_RE.finditer(line):
                            cited += 1
                            if m.group(1) not in sections:
                                bad.append("%s:%d: SPEC %s" % (rel, lineno, m.group(1)))
                        for m in DESIGN_RE.finditer(line):
                            cited += 1
                            if not any(t.startswith(m.group(1)) for t in titles):
                                bad.append('%s:%d: DESIGN "%s"' % (rel, lineno, m.group(1)))
    ok(cited > 100, "the code cites the documents (%d citations)" % cited)
    ok(not bad, "every citation names a section that exists", *bad[:50])
    print("1..%d" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
