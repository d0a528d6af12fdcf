#!/usr/bin/env python3
"""Check that every metric the dashboard and the alert rules name is one kycd exports.

Usage:
  metric_names_check.py --metrics SCRAPE --dashboard JSON --rules YAML [--rules YAML ...]
  metric_names_check.py --self-test

SCRAPE is the text of a real /metrics scrape of kycd (Prometheus text format
0.0.4). Every PromQL expression of the dashboard (panel targets, annotations,
query variables) and of the rules (alerts and recording rules) is reduced to
the metric names it selects: strings, label matchers, ranges, Grafana
variables, grouping label lists, functions, aggregations and keywords are
removed. A name passes when the scrape has a sample or a `# TYPE` of that
name (for a histogram or summary: its _bucket/_sum/_count series; the bare
histogram name selects nothing and fails), when a recording rule of the
rules files defines it, or when Prometheus itself makes it (`up`). Exit 0
when all pass, 1 naming each name that does not and where it is used, 2 on
bad input. Prints the names checked either way.

Also the module other checkers import to walk a dashboard (dashboard_panels).
Must never: accept a name it could not find, or pass on an empty scrape.
"""
import argparse
import json
import re
import sys

import yaml

# Series Prometheus makes for every scrape target.
SYNTHETIC = {"up"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
# PromQL words that look like metric names: operators, keywords, aggregations.
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2", "sum", "min", "max", "avg", "group", "stddev",
    "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
}


def metric_names(expr):
    """The metric names a PromQL expression selects (a set)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', ' "" ', expr)
    s = re.sub(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]", " ", s)  # Grafana variables
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges, subqueries
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def variable_expr(query):
    """The PromQL inside a Grafana Prometheus variable query, or None."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = (query or "").strip()
    m = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", query, re.S)
    if m:
        return m.group(1)
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if m:
        return m.group(1)
    return None  # label_values(label), label_names(), metrics(re): no metric


def dashboard_panels(dash):
    """Every panel of a dashboard, rows' nested panels included, in order."""
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def dashboard_exprs(dash):
    """(where, PromQL) for every Prometheus expression of a dashboard."""
    for p in dashboard_panels(dash):
        for t in p.get("targets", []) or []:
            if t.get("expr"):
                yield f"dashboard panel '{p.get('title')}' {t.get('refId', '')}", t["expr"]
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            yield f"dashboard annotation '{a.get('name')}'", a["expr"]
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            e = variable_expr(v.get("query"))
            if e:
                yield f"dashboard variable '{v.get('name')}'", e


def rules_exprs(rules):
    """(where, PromQL) for every rule, and the set of recorded names."""
    out, recorded = [], set()
    for g in rules.get("groups", []) or []:
        for r in g.get("rules", []) or []:
            if "record" in r:
                recorded.add(r["record"])
                out.append((f"recording rule {r['record']}", r["expr"]))
            else:
                out.append((f"alert {r.get('alert')}", r["expr"]))
    return out, recorded


def exported(scrape):
    """(families {name: type}, sample names) of a text-format scrape."""
    families, samples = {}, set()
    for line in scrape.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                families[parts[2]] = parts[3]
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if m:
            samples.add(m.group(0))
    return families, samples


def unknown_reason(name, families, samples, recorded):
    """None when kycd (or Prometheus, or a rule) provides NAME, else why not."""
    if name in SYNTHETIC or name in recorded:
        return None
    kind = families.get(name)
    if kind in SUFFIXES:
        return f"a {kind}: select {'/'.join(name + s for s in SUFFIXES[kind])}"
    if kind is not None or name in samples:
        return None
    for k, sfx in SUFFIXES.items():
        for s in sfx:
            if name.endswith(s) and families.get(name[: -len(s)]) == k:
                return None
    return "not exported by kycd"


def check(scrape, dash, rules_list):
    """Returns (sorted names checked, [problem lines])."""
    families, samples = exported(scrape)
    if not families and not samples:
        return [], ["the scrape has no metric at all"]
    uses, recorded = [], set()
    uses.extend(dashboard_exprs(dash))
    for rules in rules_list:
        exprs, rec = rules_exprs(rules)
        uses.extend(exprs)
        recorded |= rec
    where = {}
    for w, e in uses:
        for n in metric_names(e):
            where.setdefault(n, []).append(w)
    problems = []
    for n in sorted(where):
        why = unknown_reason(n, families, samples, recorded)
        if why:
            problems.append(f"{n}: {why} (used in {'; '.join(where[n])})")
    if not where:
        problems.append("no metric name found in the dashboard or the rules")
    return sorted(where), problems


SELF_TESTS = [
    ('sum by (code) (rate(kycd_http_requests_total{code=~"4..",route!="x"}[5m]))',
     {"kycd_http_requests_total"}),
    ("sum(rate(a_total[$__rate_interval])) by (le) / ignoring(code) group_left b",
     {"a_total", "b"}),
    ("x > 0 unless on (job, instance) y offset 15m", {"x", "y"}),
    ("0 * group by (job, instance) (kycd_build_info)", {"kycd_build_info"}),
    ('histogram_quantile(0.99, sum by (le) (rate(h_bucket{job=~"$job"}[1m])))', {"h_bucket"}),
    ("deriv(max by (job) (d)[30m:1m]) > 1e3 and bool z", {"d", "z"}),
    ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
    ("kycd:webhook_accepted:rate5m == 0", {"kycd:webhook_accepted:rate5m"}),
    ("time() - process_start_time_seconds{instance=~\"${instance}\"}",
     {"process_start_time_seconds"}),
    ("vector(1) + scalar(s)", {"s"}),
]


def self_test():
    bad = 0
    for expr, want in SELF_TESTS:
        got = metric_names(expr)
        if got != want:
            print(f"FAIL metric_names({expr!r}) = {sorted(got)}, want {sorted(want)}")
            bad += 1
    if variable_expr('label_values(kycd_build_info{job=~"$job"}, instance)') != \
            'kycd_build_info{job=~"$job"}':
        print("FAIL variable_expr of label_values(metric, label)")
        bad += 1
    fam, smp = exported("# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE g gauge\nc_total 1\n")
    cases = [("h_bucket", None), ("h_sum", None), ("g", None), ("c_total", None), ("up", None),
             ("h", "a histogram"), ("nope", "not exported")]
    for name, want in cases:
        got = unknown_reason(name, fam, smp, set())
        if (want is None) != (got is None) or (want and want not in got):
            print(f"FAIL unknown_reason({name}) = {got!r}, want {want!r}")
            bad += 1
    print(f"self-test: {len(SELF_TESTS) + 1 + len(cases) - bad} passed, {bad} failed")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metrics", help="text of a /metrics scrape of kycd")
    ap.add_argument("--dashboard", help="Grafana dashboard JSON")
    ap.add_argument("--rules", action="append", default=[], help="Prometheus rules YAML")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not (a.metrics and a.dashboard and a.rules):
        ap.error("--metrics, --dashboard and --rules are required")
    try:
        with open(a.metrics, encoding="utf-8") as f:
            scrape = f.read()
        with open(a.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
        rules_list = []
        for r in a.rules:
            with open(r, encoding="utf-8") as f:
                rules_list.append(yaml.safe_load(f))
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"metric_names_check: {e}", file=sys.stderr)
        return 2
    names, problems = check(scrape, dash, rules_list)
    print(f"metric names used ({len(names)}): {' '.join(names)}")
    for p in problems:
        print(f"unknown metric {p}")
    if problems:
        return 1
    print(f"all {len(names)} names are exported by kycd, recorded by a rule, or made by Prometheus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
