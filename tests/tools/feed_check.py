#!/usr/bin/env python3
"""Compares what the change feed's consumers received with the primary
(tests/e2e/test_feed.sh).

  feed_check.py PRIMARY SUBSCRIBER DECODED FEED_OUT...

PRIMARY: the primary's kyc.status_changes ids, one a line (any order).
SUBSCRIBER: the subscriber's copy, ids in the order it applied them (its
own identity column: the apply worker applies in commit order).
DECODED: ids in the order test_decoding (another output plugin, its own
slot) decoded their commits: the commit order, independently of pgoutput.
FEED_OUT: the standard output of each `kycd changes` run, in run order. A
run killed mid-write may end with an incomplete line: it was not
delivered and is dropped (the next run starts after the last complete one).

Prints one "key=value" line: counts, duplicates, missing, whether each
order equals the commit order, whether the cursors only grow, and how many
changes were committed after a change with a higher id (what a consumer
reading `WHERE id > last` could skip), and how many transactions the feed
saw and the most changes one held."""
import json
import sys


def ids(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def feed_lines(paths):
    out = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read().decode()
        lines = data.split("\n")
        # The text after the last newline is an incomplete line (or "").
        for line in lines[:-1]:
            out.append(json.loads(line))
    return out


def cursor_key(c):
    lsn, n = c.rsplit(":", 1)
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32 | int(lo, 16), int(n))


def dups(seq):
    seen, d = set(), 0
    for x in seq:
        d += x in seen
        seen.add(x)
    return d


def main():
    primary, sub, dec = ids(sys.argv[1]), ids(sys.argv[2]), ids(sys.argv[3])
    lines = feed_lines(sys.argv[4:])
    feed = [ln["change"]["id"] for ln in lines]
    keys = [cursor_key(ln["cursor"]) for ln in lines]
    p = set(primary)
    inversions, top = 0, 0
    for i in dec:
        inversions += i < top
        top = max(top, i)
    fields = {
        "written": len(primary),
        "subscriber": len(sub),
        "subscriber_dup": dups(sub),
        "subscriber_missing": len(p - set(sub)),
        "subscriber_extra": len(set(sub) - p),
        "feed": len(feed),
        "feed_dup": dups(feed),
        "feed_missing": len(p - set(feed)),
        "feed_extra": len(set(feed) - p),
        "decoded": len(dec),
        "subscriber_in_commit_order": int(sub == dec),
        "feed_in_commit_order": int(feed == dec),
        "cursors_increasing": int(all(a < b for a, b in zip(keys, keys[1:]))),
        "ids_committed_out_of_order": inversions,
        "transactions": len({ln["commit_lsn"] for ln in lines}),
        "largest_transaction": max(
            (sum(1 for ln in lines if ln["commit_lsn"] == c) for c in {ln["commit_lsn"] for ln in lines}),
            default=0),
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
