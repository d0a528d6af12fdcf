#!/usr/bin/env python3
"""Check the structure of kycd's Grafana dashboard and write out its SQL.

Usage: dashboard_check.py DASHBOARD.json [--sql-dir DIR] [--from ISO --to ISO]

Checks (each failure one line, exit 1): the JSON loads; schemaVersion 36 to
39; a uid and a title; datasource variables for Prometheus and PostgreSQL;
every panel but a row, and each of its targets, names its data source through
one of those variables (`${prometheus}` / `${postgres}`), never a fixed uid;
panel ids are unique and every panel has a place on the 24-column grid; a
Prometheus target has an expression, a PostgreSQL one a raw SQL query; the
analyst views kyc.daily_funnel, kyc.pending, kyc.needs_attention and
kyc.reconciler_corrections each have a panel.

With --sql-dir, each PostgreSQL panel's rawSql is written to DIR/NN.sql with
Grafana's macros replaced as Grafana's PostgreSQL data source expands them
($__timeFilter(c) becomes `c BETWEEN 'FROM' AND 'TO'`, ...), for a test to run
against a real database; stdout gets one line per file: `NN<TAB>title`.
Must never: pass a dashboard it could not read, or leave a macro in the SQL.
"""
import argparse
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone

from metric_names_check import dashboard_panels

VIEWS = ("kyc.daily_funnel", "kyc.pending", "kyc.needs_attention", "kyc.reconciler_corrections")
DS_TYPES = {"prometheus": "prometheus", "postgres": "postgres"}


def seconds(interval):
    """'5m' -> 300 (Grafana's interval units)."""
    m = re.fullmatch(r"\s*'?(\d+)(ms|s|m|h|d|w|y)?'?\s*", interval)
    if not m:
        raise ValueError(f"bad interval {interval!r}")
    mult = {"ms": 0.001, None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
            "y": 31536000}[m.group(2)]
    return int(int(m.group(1)) * mult)


def expand(sql, t_from, t_to):
    """SQL with Grafana's PostgreSQL macros expanded for the range [t_from, t_to]."""
    f = t_from.strftime("%Y-%m-%dT%H:%M:%SZ")
    t = t_to.strftime("%Y-%m-%dT%H:%M:%SZ")
    fe, te = int(t_from.timestamp()), int(t_to.timestamp())
    args = r"\(([^()]*)\)"

    def group(m, alias):
        col, _, iv = m.group(1).partition(",")
        s = seconds(iv or "'1h'")
        return f"floor(extract(epoch from {col.strip()})/{s})*{s}" + (' AS "time"' if alias else "")

    rules = [
        (r"\$__timeGroupAlias" + args, lambda m: group(m, True)),
        (r"\$__timeGroup" + args, lambda m: group(m, False)),
        (r"\$__timeFilter" + args, lambda m: f"{m.group(1).strip()} BETWEEN '{f}' AND '{t}'"),
        (r"\$__timeFrom\(\)", lambda m: f"'{f}'"),
        (r"\$__timeTo\(\)", lambda m: f"'{t}'"),
        (r"\$__timeEpoch" + args, lambda m: f'extract(epoch from {m.group(1).strip()}) as "time"'),
        (r"\$__time" + args, lambda m: f'{m.group(1).strip()} AS "time"'),
        (r"\$__unixEpochFilter" + args,
         lambda m: f"{m.group(1).strip()} >= {fe} AND {m.group(1).strip()} <= {te}"),
        (r"\$__unixEpochFrom\(\)", lambda m: str(fe)),
        (r"\$__unixEpochTo\(\)", lambda m: str(te)),
    ]
    for pat, rep in rules:
        sql = re.sub(pat, rep, sql)
    return sql


def ds_var(ref, variables):
    """The datasource variable a {type, uid} reference names, or None."""
    if not isinstance(ref, dict):
        return None
    m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", str(ref.get("uid", "")))
    name = m and (m.group(1) or m.group(2))
    return name if name in variables else None


def check(dash):
    """(problems, [(title, rawSql)])."""
    problems, sqls = [], []
    sv = dash.get("schemaVersion")
    if not isinstance(sv, int) or not 36 <= sv <= 39:
        problems.append(f"schemaVersion {sv!r}: want 36 to 39 (Grafana 9.4 to 10.x)")
    for k in ("uid", "title"):
        if not dash.get(k):
            problems.append(f"no {k}")
    variables = {}  # datasource variable name -> plugin type
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "datasource":
            variables[v.get("name")] = v.get("query")
    for want in DS_TYPES.values():
        if want not in variables.values():
            problems.append(f"no datasource variable of type {want}")
    ids = set()
    for p in dashboard_panels(dash):
        title = p.get("title")
        if p.get("id") in ids:
            problems.append(f"panel '{title}': id {p.get('id')} used twice")
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or \
                g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            problems.append(f"panel '{title}': bad gridPos {g}")
        if p.get("type") == "row":
            continue
        pvar = ds_var(p.get("datasource"), variables)
        if pvar is None:
            problems.append(f"panel '{title}': datasource {p.get('datasource')} is not a datasource variable")
        if not p.get("targets"):
            problems.append(f"panel '{title}': no query")
        for t in p.get("targets") or []:
            tvar = ds_var(t.get("datasource", p.get("datasource")), variables)
            kind = variables.get(tvar)
            if tvar is None or (pvar is not None and tvar != pvar):
                problems.append(f"panel '{title}' {t.get('refId')}: target datasource "
                                f"{t.get('datasource')} is not the panel's variable")
            elif kind == "prometheus" and not t.get("expr"):
                problems.append(f"panel '{title}' {t.get('refId')}: Prometheus target without expr")
            elif kind == "postgres":
                if not t.get("rawSql") or t.get("rawQuery") is not True:
                    problems.append(f"panel '{title}' {t.get('refId')}: PostgreSQL target without rawSql")
                else:
                    sqls.append((title, t["rawSql"]))
    used = " ".join(s for _, s in sqls)
    for view in VIEWS:
        if not re.search(re.escape(view) + r"\b", used):
            problems.append(f"no panel queries {view}")
    return problems, sqls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dashboard")
    ap.add_argument("--sql-dir")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ap.add_argument("--from", dest="t_from", default=(now - timedelta(days=7)).isoformat())
    ap.add_argument("--to", dest="t_to", default=(now + timedelta(days=1)).isoformat())
    a = ap.parse_args()
    try:
        with open(a.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
        t_from = datetime.fromisoformat(a.t_from)
        t_to = datetime.fromisoformat(a.t_to)
    except (OSError, ValueError) as e:
        print(f"dashboard_check: {e}", file=sys.stderr)
        return 2
    problems, sqls = check(dash)
    if a.sql_dir:
        os.makedirs(a.sql_dir, exist_ok=True)
        for i, (title, sql) in enumerate(sqls, 1):
            try:
                text = expand(sql, t_from, t_to)
            except ValueError as e:
                problems.append(f"panel '{title}': {e}")
                continue
            if "$" in text:
                problems.append(f"panel '{title}': a macro or variable is left: {text!r}")
            with open(os.path.join(a.sql_dir, f"{i:02d}.sql"), "w", encoding="utf-8") as f:
                f.write(text + "\n")
            print(f"{i:02d}\t{title}")
    for p in problems:
        print(f"dashboard problem: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
