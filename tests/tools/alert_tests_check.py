#!/usr/bin/env python3
"""Check that the promtool unit tests cover every rule of the rules files.

Usage: alert_tests_check.py RULES.yml TESTS.yml

Each alert of RULES must have, in TESTS (a `promtool test rules` file), at
least one alert_rule_test where it fires (exp_alerts not empty) and one where
it does not (exp_alerts empty); each recording rule a promql_expr_test that
evaluates it. Prints one line per rule; exit 0 when all are covered, 1
otherwise, 2 on bad input. Whether the cases pass is promtool's job.
Must never: count a case for an alert the rules file does not have.
"""
import sys

import yaml


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            rules = yaml.safe_load(f)
        with open(sys.argv[2], encoding="utf-8") as f:
            tests = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        print(f"alert_tests_check: {e}", file=sys.stderr)
        return 2
    alerts, records = [], []
    for g in rules.get("groups", []) or []:
        for r in g.get("rules", []) or []:
            (alerts if "alert" in r else records).append(r.get("alert") or r.get("record"))
    fires, quiet, exprs, problems = {}, {}, [], []
    for t in tests.get("tests", []) or []:
        for a in t.get("alert_rule_test", []) or []:
            name = a.get("alertname")
            if name not in alerts:
                problems.append(f"test '{t.get('name')}' names alert {name}, not in {sys.argv[1]}")
            bucket = fires if a.get("exp_alerts") else quiet
            bucket[name] = bucket.get(name, 0) + 1
        exprs.extend(e.get("expr", "") for e in t.get("promql_expr_test", []) or [])
    for name in alerts:
        f, q = fires.get(name, 0), quiet.get(name, 0)
        print(f"alert {name}: {f} firing case(s), {q} not-firing case(s)")
        if not f or not q:
            problems.append(f"alert {name} needs a firing and a not-firing case (has {f} and {q})")
    for name in records:
        n = sum(1 for e in exprs if name in e)
        print(f"recording rule {name}: {n} expression test(s)")
        if not n:
            problems.append(f"recording rule {name} has no promql_expr_test")
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
