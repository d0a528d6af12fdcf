#!/usr/bin/env python3
"""Print `PREPARE NAME AS <statement>;` for one SQL statement of a C source
file of kycd's (its string literals and the macros they concatenate, read
by c_sql.py), so that claim.sh runs exactly the claim kycd runs (or ran, at
an older commit: the file may come from `git show REV:PATH`).

usage: claim_sql.py C_FILE STATEMENT NAME"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from c_sql import c_strings  # noqa: E402

if len(sys.argv) != 4:
    sys.exit(__doc__.split("\n\n")[-1])
path, statement, name = sys.argv[1:]
sql = c_strings(open(path).read()).get(statement)
if sql is None:
    sys.exit(f"claim_sql.py: {statement} not found in {path}")
print(f"PREPARE {name} AS " + " ".join(sql.split()) + ";")
