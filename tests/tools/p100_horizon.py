#!/usr/bin/env python3
"""How many deliveries P100 would have lost, from kycd-loadgen's --times files.

  p100_horizon.py [--scale F] [--list N] TIMES_FILE...

Each line of a times file (tests/tools/loadgen.c, --times; tests/tools/
flood.py deliver --times writes the same) is one delivery:
    USER STEP FIRST_MS DONE_MS RESULT ATTEMPTS
FIRST_MS: when its first attempt began; DONE_MS: when its last attempt ended
(for RESULT 200, when the 200 arrived); RESULT: 200, lost (the sender ran
out of P100's five attempts) or stopped (the sender stopped trying first).

P100 makes its last attempt 120 s after the first and waits for its answer
at most ANSWER_WAIT_S: a delivery is lost when its 200 came after
FIRST + HORIZON, or it never got one and was tried past that horizon (or
given up). The test senders retry every 200 ms, far more often than P100,
so a 200 within the horizon is necessary for P100 to have had it, not proof
that P100's sparser attempts would have (kycd-loadgen --p100-schedule makes
exactly P100's attempts). Deliveries stopped without a 200 before the
horizon are "unfinished": P100 might still have delivered them.

Prints one line
    p100_horizon horizon_ms=N (last_attempt_ms=N + answer_wait_ms=N)
      deliveries=N in_time=N lost=N late=N given_up=N unfinished=N
      slowest_ms=N p99_ms=N
(slowest/p99: FIRST to the 200, over the acknowledged ones), then the first
--list lost deliveries on stderr. Exit 0, or 2 on a malformed line or an
unreadable file. --scale multiplies the schedule part (as kycd-loadgen's
--schedule-scale), not the answer wait.
"""
import argparse
import sys

# docs/p100-api.md, "Webhooks": five attempts, about 8, 16, 32 and 64 s
# apart: the last one 120 s after the first.
P100_LAST_ATTEMPT_S = 8 + 16 + 32 + 64
# How long P100 waits for an answer to one attempt: docs/p100-api.md does
# not say (its "p100_timeout (10 s)" is kycd's limit on its own calls to
# P100), so 10 s, the default of tests/sim/'s webhook timeout too.
P100_ANSWER_WAIT_S = 10


def pct(values, p):
    if not values:
        return 0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Malformed(Exception):
    pass


def read(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    if len(parts) != 6 or parts[4] not in ("200", "lost", "stopped"):
                        raise ValueError("6 fields, RESULT 200, lost or stopped")
                    first, done, attempts = int(parts[2]), int(parts[3]), int(parts[5])
                    if done < first or attempts < 1:
                        raise ValueError("DONE_MS before FIRST_MS, or no attempt")
                except ValueError as e:
                    raise Malformed("%s:%d: malformed (%s): %r" % (path, n, e, line))
                rows.append((parts[0], parts[1], first, done, parts[4], attempts))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--list", type=int, default=10)
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    if not a.scale > 0:
        p.error("--scale must be > 0")
    try:
        rows = read(a.files)
    except (OSError, Malformed) as e:
        print("p100_horizon: %s" % e, file=sys.stderr)
        return 2
    last_ms = int(round(P100_LAST_ATTEMPT_S * 1000 * a.scale))
    wait_ms = P100_ANSWER_WAIT_S * 1000
    horizon = last_ms + wait_ms
    in_time = late = given_up = unfinished = 0
    took_ok, lost_rows = [], []
    for row in rows:
        took = row[3] - row[2]
        if row[4] == "200":
            took_ok.append(took)
            if took <= horizon:
                in_time += 1
                continue
            late += 1
        elif row[4] == "lost" or took > horizon:
            given_up += 1
        else:
            unfinished += 1
            continue
        lost_rows.append((row, took))
    print("p100_horizon horizon_ms=%d (last_attempt_ms=%d + answer_wait_ms=%d) deliveries=%d "
          "in_time=%d lost=%d late=%d given_up=%d unfinished=%d slowest_ms=%d p99_ms=%d"
          % (horizon, last_ms, wait_ms, len(rows), in_time, late + given_up, late, given_up,
             unfinished, max(took_ok) if took_ok else 0, pct(took_ok, 99)))
    for row, took in lost_rows[:a.list]:
        print("p100_horizon: lost %s step %s: first_ms=%d done_ms=%d took_ms=%d result=%s "
              "attempts=%d" % (row[0], row[1], row[2], row[3], took, row[4], row[5]),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
