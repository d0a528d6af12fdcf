#!/usr/bin/env python3
"""Times the analysts' queries for tests/bench/analysts.sh.

usage: analysts_time.py CONNINFO TIMEOUT_S DOC.md...

Every view of schema kyc (SELECT * FROM it) and every statement of every
```sql block of the DOCs (except those marked "<!-- test: as the owner -->",
as tests/e2e/test_analysts_doc.sh extracts them) is run once under EXPLAIN
(ANALYZE, FORMAT JSON), with a statement timeout, and printed as a table:
query, rows, ms, the plan's top node and its biggest scan. A last line
"RESULT over_1s=N of M" counts the ones at or over 1 s (timeouts included).
"""
import json
import re
import subprocess
import sys


def psql(conn, sql, timeout_s):
    cmd = ["psql", conn, "-XAtq", "-v", "ON_ERROR_STOP=1",
           "-c", f"SET statement_timeout = '{timeout_s}s'", "-c", sql]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def examples(path):
    """(label, statement) for each statement of each sql block."""
    out, inb, owner, label, cur = [], False, False, None, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line == "<!-- test: as the owner -->":
                owner = True
                continue
            if not inb and re.match(r"^```sql\s*$", line):
                inb, skip, owner = True, owner, False
                continue
            if inb and re.match(r"^```\s*$", line):
                inb = False
                continue
            if not inb:
                if line[:1] not in ("", " ", "\t"):
                    owner = False
                continue
            if skip:
                continue
            if line.startswith("--") and not cur:
                label = line[2:].strip()
                continue
            if line.strip():
                cur.append(line)
            if line.rstrip().endswith(";"):
                stmt = "\n".join(cur).rstrip().rstrip(";")
                out.append((label or stmt.split("\n")[0][:60], stmt))
                cur, label = [], None
    return out


def walk(node, scans):
    if "Relation Name" in node:
        scans.append((node.get("Actual Rows", 0) * node.get("Actual Loops", 1),
                      f'{node["Node Type"]} on {node["Relation Name"]}'))
    for child in node.get("Plans", []):
        walk(child, scans)


def main():
    conn, timeout_s, docs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    rc, views, err = psql(conn, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = 'kyc' AND c.relkind = 'v' ORDER BY 1", timeout_s)
    if rc != 0:
        sys.exit(f"cannot list the views: {err}")
    queries = [(f"view kyc.{v}", f"SELECT * FROM kyc.{v}") for v in views.split()]
    for d in docs:
        name = d.rsplit("/", 1)[-1]
        queries += [(f"{name}: {label}", stmt) for label, stmt in examples(d)]
    print(f"{'query':<72} {'rows':>10} {'ms':>10}  plan: top node; biggest scan")
    over = 0
    for label, stmt in queries:
        rc, out, err = psql(conn, "EXPLAIN (ANALYZE, FORMAT JSON) " + stmt, timeout_s)
        if rc != 0:
            over += 1
            why = "timeout" if "statement timeout" in err else "error: " + err.strip().splitlines()[-1][:80]
            print(f"{label[:72]:<72} {'-':>10} {'>' + str(timeout_s * 1000) if why == 'timeout' else '-':>10}  {why}")
            continue
        plan = json.loads(out)[0]
        ms = plan["Execution Time"] + plan.get("Planning Time", 0)
        top = plan["Plan"]
        scans = []
        walk(top, scans)
        biggest = max(scans)[1] if scans else "-"
        if ms >= 1000:
            over += 1
        print(f"{label[:72]:<72} {top.get('Actual Rows', 0):>10} {ms:>10.1f}  {top['Node Type']}; {biggest}")
    print(f"RESULT over_1s={over} of {len(queries)}")


if __name__ == "__main__":
    main()
