#!/usr/bin/env python3
"""The chaos driver for tests/e2e/test_chaos.sh and tests/bench/chaos.sh (lives with p100-sim, whose control API it drives).

drive PHASE: gives each of N users a true path at p100-sim and sends its
webhooks through a lossy P100 (a share dropped, a share repeated, some
users' deliveries held and then sent newest first); prints one JSON line
with the counts. Phase 1 is every user's first attempt; phase 2, later, the
second attempt of those that have one (a new attempt after a rejection, an
expiry): the plan is drawn from the seed, the same in both phases. wait: polls kycd's database and the simulator until every user kycd
could know (every user with a first-attempt webhook delivered, from the
state file drive wrote) equals P100's truth on all three fields, or the
deadline; prints one JSON line.

Talks to the simulator's control API only (no API key); reads the database
with psql. Must never: print a secret, or wait without a deadline.
"""
import json
import os
import random
import ssl
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import p100_vocab  # noqa: E402  (P100's words, from kycd: the one source)


def kyc(v, a, reason=""):
    """One KYC state in P100's words: refuses a value P100 does not document."""
    return (p100_vocab.word("verificationStatus", v), p100_vocab.word("attemptStatus", a), reason)


# The identity provider's rejection code; P100 does not list them.
REASON = "DOCUMENT_EXPIRED"
PATHS = [  # (name, share, list of attempts, each a list of (verification, attempt, reason))
    ("verified", 0.25, [[kyc("NOT_VERIFIED", "PENDING"), kyc("NOT_VERIFIED", "VERIFICATION"),
                         kyc("VERIFIED", "SUCCESSFUL")]]),
    ("rejected", 0.20, [[kyc("NOT_VERIFIED", "PENDING"), kyc("NOT_VERIFIED", "VERIFICATION"),
                         kyc("NOT_VERIFIED", "REJECTED_BY_PROVIDER", REASON)]]),
    ("in_verification", 0.15, [[kyc("NOT_VERIFIED", "PENDING"),
                                kyc("NOT_VERIFIED", "VERIFICATION")]]),
    ("rejected_then_verified", 0.20,
     [[kyc("NOT_VERIFIED", "PENDING"), kyc("NOT_VERIFIED", "VERIFICATION"),
       kyc("NOT_VERIFIED", "REJECTED_BY_PROVIDER", REASON)],
      [kyc("NOT_VERIFIED", "PENDING"), kyc("NOT_VERIFIED", "VERIFICATION"),
       kyc("VERIFIED", "SUCCESSFUL")]]),
    ("verified_then_expired", 0.20,
     [[kyc("NOT_VERIFIED", "PENDING"), kyc("NOT_VERIFIED", "VERIFICATION"),
       kyc("VERIFIED", "SUCCESSFUL")],
      [kyc("EXPIRED", "SUCCESSFUL")]]),
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


def drive(sim, n, seed, prefix, phase, state_path=None):
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
    if phase == 1 and state_path:
        # Who kycd can know: a user whose first attempt's webhooks were all
        # dropped never reached it (P100 gave up), and nothing tells kycd
        # the user exists. Every other user must end known and right.
        reach = sorted(uid for uid, steps in plans if any(m != "drop" for _, m in steps))
        with open(state_path, "w") as f:
            json.dump({"users": [uid for uid, _ in plans], "reachable": reach}, f)
        counts["reachable"] = len(reach)
    return counts


def truth(sim):
    out = {}
    for u in sim.call("GET", "/_sim/users"):
        out[u["externalUserId"]] = (u.get("verificationStatus", ""), u.get("attemptStatus", ""),
                                    u.get("rejectionReason") or "")
    return out


def stored(dburl):
    q = ("SELECT external_user_id || '|' || coalesce(verification_status, '') || '|' || "
         "coalesce(attempt_status, '') || '|' || coalesce(rejection_reason, '') "
         "FROM kyc.verifications")
    res = subprocess.run(["psql", dburl, "-XAtq", "-c", q], capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        raise RuntimeError("psql: " + res.stderr.strip())
    out = {}
    for line in res.stdout.splitlines():
        uid, v, a, r = line.split("|")
        out[uid] = (v, a, r)
    return out


def wait(sim, dburl, deadline_s, prefix, state_path=None):
    """Until every user the generator sent compares equal to P100's truth on
    all three fields (verificationStatus, attemptStatus, rejectionReason):
    each user kycd knows, and every user it can know (state_path: the
    reachable users drive wrote; without it, the ones kycd knows)."""
    t0 = time.monotonic()
    want = {k: v for k, v in truth(sim).items() if k.startswith(prefix)}
    reach = None
    if state_path:
        with open(state_path) as f:
            st = json.load(f)
        reach = set(st["reachable"])
        sent = set(st["users"])
        if sent - set(want):
            return {"converged": False, "error": "P100 lost users the generator created",
                    "missing_at_p100": len(sent - set(want))}
    while True:
        have = stored(dburl)
        known = [u for u in want if u in have]
        wrong = sorted(u for u in known if have[u] != want[u])
        missing = sorted(u for u in (reach if reach is not None else known) if u not in have)
        el = time.monotonic() - t0
        res = {"seconds": round(el, 2), "users": len(want), "known": len(known),
               "reachable": len(reach) if reach is not None else len(known),
               "wrong": len(wrong), "missing": len(missing)}
        if not wrong and not missing:
            res["converged"] = True
            return res
        if el > deadline_s:
            res["converged"] = False
            res["examples"] = (["%s kycd=%s p100=%s" % (u, "/".join(have[u]), "/".join(want[u]))
                                for u in wrong[:5]] + ["%s unknown to kycd" % u for u in missing[:5]])
            return res
        time.sleep(0.2)


def main():
    cmd = sys.argv[1]
    port, ca = int(sys.argv[2]), sys.argv[3]
    sim = Sim(port, ca)
    if cmd == "drive":
        n, seed, prefix, phase = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
        state = sys.argv[8] if len(sys.argv) > 8 else None
        print(json.dumps(drive(sim, n, seed, prefix, phase, state), separators=(",", ":")))
    elif cmd == "wait":
        dburl, deadline, prefix = sys.argv[4], float(sys.argv[5]), sys.argv[6]
        state = sys.argv[7] if len(sys.argv) > 7 else None
        print(json.dumps(wait(sim, dburl, deadline, prefix, state), separators=(",", ":")))
    else:
        sys.exit("usage: chaos.py drive|wait ...")


if __name__ == "__main__":
    main()
