#!/usr/bin/env python3
"""The chaos driver for tests/e2e/test_chaos.sh and tests/bench/chaos.sh (lives with p100-sim, whose control API it drives).

drive PHASE: gives each of N users a true path at p100-sim and sends its
webhooks through a lossy P100 (a share dropped, a share repeated, some
users' deliveries held and then sent newest first); prints one JSON line
with the counts. Phase 1 is every user's first attempt; phase 2, later, the
second attempt of those that have one (a new attempt after a rejection, an
expiry): the plan is drawn from the seed, the same in both phases. wait: polls kycd's database and the simulator until every user kycd
has heard of equals P100's truth, or the deadline; prints one JSON line.

Talks to the simulator's control API only (no API key); reads the database
with psql. Must never: print a secret, or wait without a deadline.
"""
import json
import random
import ssl
import subprocess
import sys
import threading
import time
import http.client

PATHS = [  # (name, share, list of attempts, each a list of (verification, attempt, reason))
    ("verified", 0.25, [[("NOT_VERIFIED", "PENDING", ""), ("NOT_VERIFIED", "VERIFICATION", ""),
                         ("VERIFIED", "SUCCESSFUL", "")]]),
    ("rejected", 0.20, [[("NOT_VERIFIED", "PENDING", ""), ("NOT_VERIFIED", "VERIFICATION", ""),
                         ("NOT_VERIFIED", "REJECTED", "DOCUMENT_EXPIRED")]]),
    ("in_verification", 0.15, [[("NOT_VERIFIED", "PENDING", ""),
                                ("NOT_VERIFIED", "VERIFICATION", "")]]),
    ("rejected_then_verified", 0.20,
     [[("NOT_VERIFIED", "PENDING", ""), ("NOT_VERIFIED", "VERIFICATION", ""),
       ("NOT_VERIFIED", "REJECTED", "DOCUMENT_EXPIRED")],
      [("NOT_VERIFIED", "PENDING", ""), ("NOT_VERIFIED", "VERIFICATION", ""),
       ("VERIFIED", "SUCCESSFUL", "")]]),
    ("verified_then_expired", 0.20,
     [[("NOT_VERIFIED", "PENDING", ""), ("NOT_VERIFIED", "VERIFICATION", ""),
       ("VERIFIED", "SUCCESSFUL", "")],
      [("EXPIRED", "SUCCESSFUL", "")]]),
]


class Sim:
    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.local = threading.local()

    def call(self, method, path, body=None):
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPSConnection("localhost", self.port, context=self.ctx,
                                                   timeout=20)
                self.local.conn = conn
            try:
                data = json.dumps(body) if body is not None else None
                hdrs = {"Content-Type": "application/json"} if data else {}
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                text = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self.local.conn = None
                if resp.status // 100 != 2:
                    raise RuntimeError("%s %s: %d %s" % (method, path, resp.status, text[:200]))
                return json.loads(text) if text else None
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        return None


def drive(sim, n, seed, prefix, phase):
    rnd = random.Random(seed)
    plans = []
    cum = []
    acc = 0.0
    for p in PATHS:
        acc += p[1]
        cum.append(acc)
    counts = {"users": n, "webhooks": 0, "dropped": 0, "duplicated": 0, "held": 0,
              "lost_new_attempt": 0, "lost_expiry": 0}
    by_path = {}
    for i in range(n):
        x = rnd.random() * acc
        k = next(j for j, c in enumerate(cum) if x < c)
        name, _, attempts = PATHS[k]
        by_path[name] = by_path.get(name, 0) + 1
        reorder = rnd.random() < 0.20
        steps = []
        for a_i, attempt in enumerate(attempts):
            # The case that was wrong forever: every webhook of the second
            # attempt (or the one expiry webhook) lost, for a third of them.
            lose_all = a_i == 1 and rnd.random() < 1 / 3
            if a_i != phase - 1:
                for st in attempt:  # keep the draws the same in both phases
                    rnd.random()
                continue
            if lose_all:
                counts["lost_new_attempt" if name == "rejected_then_verified" else "lost_expiry"] += 1
            for st in attempt:
                r = rnd.random()
                if lose_all or r < 0.30:
                    mode = "drop"
                elif reorder:
                    mode = "hold"
                elif r < 0.50:
                    mode = "duplicate"
                else:
                    mode = "send"
                steps.append((st, mode))
        plans.append(("%s%d" % (prefix, i), steps))

    def run(chunk):
        for uid, steps in chunk:
            if phase == 1:
                sim.call("POST", "/_sim/users", {"externalUserId": uid})
            for (v, a, reason), mode in steps:
                body = {"verificationStatus": v, "attemptStatus": a, "webhook": mode}
                if reason:
                    body["rejectionReason"] = reason
                sim.call("POST", "/_sim/users/%s/advance" % uid, body)

    for uid, steps in plans:
        for _, mode in steps:
            counts["webhooks"] += 1
            if mode == "drop":
                counts["dropped"] += 1
            elif mode == "duplicate":
                counts["duplicated"] += 1
            elif mode == "hold":
                counts["held"] += 1
    threads = [threading.Thread(target=run, args=(plans[t::4],)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The held deliveries, newest first: every reordered user's webhooks
    # arrive backwards.
    sim.call("POST", "/_sim/flush", {"order": "reverse"})
    counts["paths"] = by_path
    return counts


def truth(sim):
    out = {}
    for u in sim.call("GET", "/_sim/users"):
        out[u["externalUserId"]] = (u.get("verificationStatus", ""), u.get("attemptStatus", ""))
    return out


def stored(dburl):
    q = ("SELECT external_user_id || '|' || coalesce(verification_status, '') || '|' || "
         "coalesce(attempt_status, '') FROM kyc.verifications")
    res = subprocess.run(["psql", dburl, "-XAtq", "-c", q], capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        raise RuntimeError("psql: " + res.stderr.strip())
    out = {}
    for line in res.stdout.splitlines():
        uid, v, a = line.split("|")
        out[uid] = (v, a)
    return out


def wait(sim, dburl, deadline_s, prefix):
    t0 = time.monotonic()
    want = {k: v for k, v in truth(sim).items() if k.startswith(prefix)}
    last_wrong = None
    while True:
        have = stored(dburl)
        known = [u for u in have if u in want]
        wrong = sorted(u for u in known if have[u] != want[u])
        el = time.monotonic() - t0
        if not wrong:
            return {"converged": True, "seconds": round(el, 2), "known": len(known),
                    "users": len(want)}
        last_wrong = wrong
        if el > deadline_s:
            return {"converged": False, "seconds": round(el, 2), "known": len(known),
                    "users": len(want), "wrong": len(wrong),
                    "examples": ["%s kycd=%s p100=%s" % (u, "/".join(have[u]), "/".join(want[u]))
                                 for u in last_wrong[:5]]}
        time.sleep(0.2)


def main():
    cmd = sys.argv[1]
    port, ca = int(sys.argv[2]), sys.argv[3]
    sim = Sim(port, ca)
    if cmd == "drive":
        n, seed, prefix, phase = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
        print(json.dumps(drive(sim, n, seed, prefix, phase), separators=(",", ":")))
    elif cmd == "wait":
        dburl, deadline, prefix = sys.argv[4], float(sys.argv[5]), sys.argv[6]
        print(json.dumps(wait(sim, dburl, deadline, prefix), separators=(",", ":")))
    else:
        sys.exit("usage: chaos.py drive|wait ...")


if __name__ == "__main__":
    main()
