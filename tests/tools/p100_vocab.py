#!/usr/bin/env python3
"""P100's words, read from their one source, for tests and generators.

The one table of P100's documented values is src/core/vocab.c; `kycd
vocabulary` prints it. This module reads it from there (the kycd binary:
$TEST_KYCD_BIN, or the path given), so that the simulator's tests, the chaos
driver and every other generator of test data use the values kycd knows and
nothing else. It also reads the value tables of docs/p100-api.md, so that a
test can hold core's table against P100's documentation, and
kyc.p100_values() of a database, so that SQL is held against both.

Usage:
  p100_vocab.py check DOCS KYCD_BIN [CONNINFO]
      compare docs/p100-api.md, `kycd vocabulary --p100` and (with CONNINFO)
      kyc.p100_values(): one line per field, exit 1 on any difference.
  p100_vocab.py get FIELD [KYCD_BIN]
      print the documented values of FIELD, one a line.

Must never: invent a value, or fall back to a built-in list when kycd cannot
be asked (that would be a second table).
"""
import os
import re
import subprocess
import sys

CAPS = re.compile(r"`([A-Z][A-Z0-9_]+)`")

# (header of a docs table, first cell of its row, cell holding the values):
# where docs/p100-api.md lists each of P100's enumerations.
DOCS_ROWS = {
    "verificationStatus": (("field", "documented values"), "`verificationStatus`", 1),
    "attemptStatus": (("field", "documented values"), "`attemptStatus`", 1),
    "poaVerificationStatus.status": (("webhook", "body"), "POA Verification Status", 2),
    "kycFileAdded.status": (("webhook", "body"), "KYC File Added", 2),
    "userStatus.status": (("webhook", "body"), "User status / balance generation", 2),
    "documentType": (("field", "required", "values"), "`documentType`", 2),
    "incomeSource": (("field", "required", "values"), "`incomeSource`", 2),
    "openAccountReason": (("field", "required", "values"), "`openAccountReason`", 2),
    "occupation": (("field", "required", "values"), "`occupation`", 2),
}


def _tables(text):
    """Every Markdown table of text: (header cells, rows of cells)."""
    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            rows = [r for r in cur[1:] if not all(set(c) <= set("-: ") for c in r)]
            tables.append((cur[0], rows))
            cur = []
    return tables


def from_docs(path):
    """{field: [values]} as docs/p100-api.md documents them, in its order."""
    with open(path, encoding="utf-8") as f:
        tables = _tables(f.read())
    out = {}
    for field, (header, first, col) in DOCS_ROWS.items():
        for head, rows in tables:
            if tuple(head[:len(header)]) != header:
                continue
            for row in rows:
                if row[0] == first:
                    # The values, not the words of their explanations in
                    # parentheses ("normally turns ... into `VERIFIED`").
                    out[field] = CAPS.findall(re.sub(r"\([^)]*\)", "", row[col]))
    codes = []
    for head, rows in tables:
        if head[:2] == ["code", "meaning (P100)"]:
            codes += [m.group(1) for r in rows for m in [re.fullmatch(r"`(P\d{3})`", r[0])] if m]
    out["errorCode"] = codes
    return out


def _kycd_bin(path=None):
    path = path or os.environ.get("TEST_KYCD_BIN") or os.environ.get("KYCD_BIN")
    if not path:
        raise SystemExit("p100_vocab: no kycd binary (set TEST_KYCD_BIN)")
    return path


def from_kycd(path=None, origin="p100"):
    """{field: [values]} of `kycd vocabulary`: P100's tables (origin p100)
    or kycd's own codes (origin kycd)."""
    out = subprocess.run([_kycd_bin(path), "vocabulary"], check=True, capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    tables = {}
    for line in out.splitlines():
        field, kind, value = line.split("\t")
        if kind == origin:
            tables.setdefault(field, []).append(value)
    return tables


def values(field, path=None):
    """The documented values of one of P100's fields, from kycd."""
    v = from_kycd(path).get(field)
    if not v:
        raise SystemExit(f"p100_vocab: kycd knows no field {field!r}")
    return v


_CACHE = {}


def word(field, value, path=None):
    """value, if P100 documents it for field (kycd's table); else fail: a
    generator cannot produce a value P100 does not send by accident."""
    if "tables" not in _CACHE:
        _CACHE["tables"] = from_kycd(path)
    if value not in _CACHE["tables"].get(field, []):
        raise SystemExit(f"test data: {value!r} is not a value P100 documents for {field} "
                         "(kycd vocabulary)")
    return value


def from_sql(conninfo, fields):
    """{field: [values]} of kyc.p100_values(field), for the fields it knows."""
    out = {}
    for field in fields:
        q = f"SELECT array_to_string(kyc.p100_values('{field}'), ' ')"
        got = subprocess.run(["psql", conninfo, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", q],
                             check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        if got:
            out[field] = got.split(" ")
    return out


def check(docs_path, kycd_path, conninfo=None):
    docs, core = from_docs(docs_path), from_kycd(kycd_path)
    sql = from_sql(conninfo, sorted(core)) if conninfo else {}
    bad = 0
    for field in sorted(set(docs) | set(core)):
        d, c = docs.get(field), core.get(field)
        line = f"{field}: docs={d} core={c}"
        ok = d is not None and d == c
        if conninfo and field in sql:
            ok = ok and sql[field] == c
            line += f" sql={sql[field]}"
        print(("ok   " if ok else "DIFF ") + line)
        bad += not ok
    for field in sorted(set(sql) - set(core)):
        print(f"DIFF {field}: only in SQL: {sql[field]}")
        bad += 1
    print(f"{len(set(docs) | set(core))} fields, {len(sql)} in SQL, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
    if len(sys.argv) in (3, 4) and sys.argv[1] == "get":
        print("\n".join(values(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)))
        sys.exit(0)
    sys.exit(__doc__)
