#!/usr/bin/env python3
"""Connection flood and timed deliveries against kycd (tests/e2e/test_flood.sh).

  flood.py hold --port P --source 127.0.0.2 --count N [--hello-share 0.25]
               [--seconds S] [--ready-file F]
      Open N TCP connections from SOURCE (loopback only) and hold them for at
      most S seconds: plain idle sockets, and a share that send a TLS
      ClientHello and then stall. Reads whatever comes back. Prints
        hold opened=N connect_failed=N http_answers=N tls_bytes=N
             closed_by_server=N close_p50_ms=X close_max_ms=X still_open=N
      (http_answers: connections that received bytes starting "HTTP/";
      closed_by_server: EOF or reset seen, with the time since connect).
      Touches READY_FILE once every connection was attempted.

  flood.py deliver --port P --ca CA --token-file F --path PATH --count N
                   [--source 127.0.0.1] [--timeout 10] [--prefix u]
      [--times FILE]
      N KYC webhooks one after another, each on a new TLS connection; prints
        deliver sent=N ok=N non200=N errors=N p50_ms=X p99_ms=X max_ms=X
      and exits 0 when every one got 200. Each is sent once (no retry):
      --times FILE appends a line per delivery in kycd-loadgen's --times
      format, "USER 1 FIRST_MS DONE_MS RESULT 1" (ms since this command
      began; RESULT 200, or stopped when it got anything else), for
      tests/tools/p100_horizon.py.

  flood.py slow --port P --ca CA --token-file F --path PATH --what headers|body
                [--byte-every 1.0] [--timeout 40]
      One request trickled a byte at a time (headers, or the body after
      whole headers); prints
        slow what=W status=S after_ms=X bytes_sent=N
      (status 0: no answer before the connection closed).
  flood.py slowloris --port P --ca CA --path PATH --what headers|body
                     [--count 1000] [--rate 200] [--every 5] [--seconds 30]
                     [--token-file F] [--ready-file F]
      Keep COUNT TLS connections open, opening at most RATE a second (and
      opening again whatever the server closes), each completing its TLS
      handshake and then sending a header line every EVERY seconds (headers
      that never end), or whole headers and then a body byte every EVERY
      seconds (a body that never ends). Stops after SECONDS; prints
        slowloris what=W opened=N cut_by_server=N answered_408=N
                  held_avg=X held_max=N handshaken_avg=X cut_p50_ms=X
      (held: attack connections open at the client; handshaken: of those,
      past their TLS handshake, i.e. being served by a worker).

  flood.py pace --port P --ca CA --token-file F --path PATH [--rate 1]
                [--seconds 30] [--within-ms 1000]
      Real deliveries at RATE a second, each on its own TLS connection
      (threads: one slow answer does not delay the next); prints
        pace sent=N ok=N within=N within_pct=X p50_ms=X p99_ms=X max_ms=X
             errors=N
      (within: answered 200 within WITHIN_MS of its connect).
"""
import argparse
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time
import uuid


def now_ms():
    return time.monotonic() * 1000.0


def client_hello():
    """The bytes of a real TLS ClientHello, made by Python's own TLS."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def cmd_hold(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    hello = client_hello()
    socks = {}
    failed = 0
    n_hello = int(a.count * a.hello_share)
    deadline = time.monotonic() + a.seconds
    for i in range(a.count):
        if stop:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((a.source, 0))
            s.settimeout(3)
            s.connect(("127.0.0.1", a.port))
            if i < n_hello:
                s.sendall(hello)
            s.setblocking(False)
        except OSError:
            failed += 1
            s.close()
            continue
        socks[s.fileno()] = {"sock": s, "t0": now_ms(), "data": b"", "closed_ms": None}
    if a.ready_file:
        open(a.ready_file, "w").close()
    poller = select.poll()
    for fd in socks:
        poller.register(fd, select.POLLIN)
    open_fds = set(socks)
    while open_fds and time.monotonic() < deadline and not stop:
        for fd, _ in poller.poll(100):
            c = socks[fd]
            try:
                chunk = c["sock"].recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                c["data"] += chunk[:64]
                continue
            c["closed_ms"] = now_ms() - c["t0"]
            poller.unregister(fd)
            open_fds.discard(fd)
    http = sum(1 for c in socks.values() if c["data"].startswith(b"HTTP/"))
    tls = sum(1 for c in socks.values() if c["data"] and not c["data"].startswith(b"HTTP/"))
    closes = [c["closed_ms"] for c in socks.values() if c["closed_ms"] is not None]
    print("hold opened=%d connect_failed=%d http_answers=%d tls_bytes=%d closed_by_server=%d "
          "close_p50_ms=%.0f close_max_ms=%.0f still_open=%d"
          % (len(socks), failed, http, tls, len(closes), pct(closes, 50),
             max(closes) if closes else 0, len(open_fds)))
    for c in socks.values():
        c["sock"].close()
    return 0


def read_token(path):
    with open(path) as f:
        return f.read().replace("\n", ",").split(",")[0].strip()


def tls_connect(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind((a.source, 0))
    raw.settimeout(a.timeout)
    raw.connect(("127.0.0.1", a.port))
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_status(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/1."):
        return 0
    return int(data.split(b" ", 2)[1])


def cmd_deliver(a):
    token = read_token(a.token_file)
    lat, ok, non200, errors = [], 0, 0, 0
    first_error = None
    times = open(a.times, "a") if a.times else None
    t_start = now_ms()

    def record(uid, t0, result):
        if times:
            times.write("%s 1 %.0f %.0f %s 1\n" % (uid, t0 - t_start, now_ms() - t_start, result))
            times.flush()
    for i in range(a.count):
        uid = "%s-%s" % (a.prefix, uuid.uuid4())
        body = json.dumps({"externalUserId": uid, "verificationStatus": "NOT_VERIFIED",
                           "attemptStatus": "PENDING", "rejectionReason": None}).encode()
        req = ("POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (a.path, token, len(body))).encode() + body
        t0 = now_ms()
        try:
            s = tls_connect(a)
            s.sendall(req)
            st = read_status(s)
            s.close()
        except (OSError, ssl.SSLError) as e:
            record(uid, t0, "stopped")
            errors += 1
            first_error = first_error or str(e)
            continue
        record(uid, t0, "200" if st == 200 else "stopped")
        lat.append(now_ms() - t0)
        if st == 200:
            ok += 1
        else:
            non200 += 1
            first_error = first_error or "status %d" % st
    print("deliver sent=%d ok=%d non200=%d errors=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f"
          % (a.count, ok, non200, errors, pct(lat, 50), pct(lat, 99), max(lat) if lat else 0))
    if first_error:
        print("deliver: first problem: %s" % first_error, file=sys.stderr)
    if times:
        times.close()
    return 0 if ok == a.count else 1


def cmd_slow(a):
    token = read_token(a.token_file)
    body = json.dumps({"externalUserId": "slow-%s" % uuid.uuid4(),
                       "verificationStatus": "NOT_VERIFIED", "attemptStatus": "PENDING"}).encode()
    head = ("POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (a.path, token, len(body))).encode()
    s = tls_connect(a)
    t0 = now_ms()
    trickle = head if a.what == "headers" else body
    if a.what == "body":
        s.sendall(head)
    sent = 0
    status = 0
    s.settimeout(a.byte_every)
    end = time.monotonic() + a.timeout
    try:
        for b in trickle:
            if time.monotonic() > end:
                break
            s.sendall(bytes([b]))
            sent += 1
            try:
                status = read_status(s)
                break  # the server answered (or closed: status 0)
            except socket.timeout:
                continue
    except (OSError, ssl.SSLError):
        pass
    print("slow what=%s status=%d after_ms=%.0f bytes_sent=%d" % (a.what, status, now_ms() - t0, sent))
    return 0


def cmd_slowloris(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ctx = ssl.create_default_context(cafile=a.ca)
    token = read_token(a.token_file) if a.token_file else "not-a-token"
    body = json.dumps({"externalUserId": "slowloris-%s" % uuid.uuid4(),
                       "verificationStatus": "NOT_VERIFIED", "attemptStatus": "PENDING"}).encode()
    head = [b"POST " + a.path.encode() + b" HTTP/1.1\r\n", b"Host: localhost\r\n",
            b"Authorization: Bearer " + token.encode() + b"\r\n",
            b"Content-Type: application/json\r\n",
            b"Content-Length: %d\r\n" % len(body)]
    poller = select.poll()
    conns = {}
    opened = cut = answered = 0
    cut_after = []
    held_sum = hs_sum = samples = held_max = 0
    t_start = time.monotonic()
    end = t_start + a.seconds
    ready = False

    def drop(fd, by_server):
        nonlocal cut
        c = conns.pop(fd)
        try:
            poller.unregister(fd)
        except KeyError:
            pass
        if by_server:
            cut += 1
            cut_after.append((time.monotonic() - c["t0"]) * 1000.0)
        c["s"].close()

    def piece(c):
        i = c["i"]
        c["i"] += 1
        if a.what == "headers":
            return head[i] if i < len(head) else b"X-Slow-%d: 1\r\n" % i
        if i == 0:
            return b"".join(head) + b"\r\n"
        return body[(i - 1) % len(body):(i - 1) % len(body) + 1]

    while not stop:
        now = time.monotonic()
        if now >= end:
            break
        allowed = int(a.rate * (now - t_start)) + 1
        while len(conns) < a.count and opened < allowed:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setblocking(False)
            raw.bind((a.source, 0))
            raw.connect_ex(("127.0.0.1", a.port))
            conns[raw.fileno()] = {"s": raw, "st": "tcp", "t0": now, "next": 0.0, "i": 0}
            poller.register(raw.fileno(), select.POLLOUT)
            opened += 1
        if not ready and opened >= a.count and a.ready_file:
            open(a.ready_file, "w").close()
            ready = True
        for fd, ev in poller.poll(20):
            c = conns.get(fd)
            if c is None:
                continue
            if c["st"] == "tcp":
                if c["s"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(fd, True)
                    continue
                c["s"] = ctx.wrap_socket(c["s"], server_hostname="localhost",
                                         do_handshake_on_connect=False)
                c["st"] = "hs"
            if c["st"] == "hs":
                try:
                    c["s"].do_handshake()
                    c["st"] = "send"
                    c["next"] = time.monotonic()
                    poller.modify(fd, select.POLLIN)
                except ssl.SSLWantReadError:
                    poller.modify(fd, select.POLLIN)
                except ssl.SSLWantWriteError:
                    poller.modify(fd, select.POLLOUT)
                except (OSError, ssl.SSLError):
                    drop(fd, True)
                continue
            try:
                data = c["s"].recv(4096)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if data.startswith(b"HTTP/1.1 408"):
                answered += 1
            drop(fd, True)  # an answer, or the end: either way the server is done with it
        now = time.monotonic()
        for fd, c in list(conns.items()):
            if c["st"] == "send" and now >= c["next"]:
                try:
                    c["s"].send(piece(c))
                except ssl.SSLWantWriteError:
                    pass
                except (OSError, ssl.SSLError):
                    drop(fd, True)
                    continue
                c["next"] = now + a.every
        samples += 1
        held_sum += len(conns)
        hs_sum += sum(1 for c in conns.values() if c["st"] == "send")
        held_max = max(held_max, len(conns))
    print("slowloris what=%s opened=%d cut_by_server=%d answered_408=%d held_avg=%.0f held_max=%d "
          "handshaken_avg=%.0f cut_p50_ms=%.0f"
          % (a.what, opened, cut, answered, held_sum / max(samples, 1), held_max,
             hs_sum / max(samples, 1), pct(cut_after, 50)))
    for c in conns.values():
        c["s"].close()
    return 0


def cmd_pace(a):
    token = read_token(a.token_file)
    results = []
    lock = threading.Lock()

    def one(i):
        uid = "pace-%s" % uuid.uuid4()
        body = json.dumps({"externalUserId": uid, "verificationStatus": "NOT_VERIFIED",
                           "attemptStatus": "PENDING", "rejectionReason": None}).encode()
        req = ("POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (a.path, token, len(body))).encode() + body
        t0 = now_ms()
        st = -1
        try:
            s = tls_connect(a)
            s.sendall(req)
            st = read_status(s)
            s.close()
        except (OSError, ssl.SSLError):
            pass
        with lock:
            results.append((st, now_ms() - t0))

    threads = []
    t_start = time.monotonic()
    n = int(a.rate * a.seconds)
    for i in range(n):
        delay = t_start + i / a.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(a.timeout + 5)
    lat = [ms for st, ms in results if st == 200]
    ok = len(lat)
    within = sum(1 for ms in lat if ms <= a.within_ms)
    errors = sum(1 for st, _ in results if st <= 0)
    print("pace sent=%d ok=%d within=%d within_pct=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f errors=%d"
          % (n, ok, within, 100.0 * within / max(n, 1), pct([ms for _, ms in results], 50),
             pct([ms for _, ms in results], 99), max([ms for _, ms in results] or [0]), errors))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--source", required=True)
    h.add_argument("--count", type=int, required=True)
    h.add_argument("--hello-share", type=float, default=0.25)
    h.add_argument("--seconds", type=float, default=20)
    h.add_argument("--ready-file")
    for name in ("deliver", "slow", "slowloris", "pace"):
        d = sub.add_parser(name)
        d.add_argument("--port", type=int, required=True)
        d.add_argument("--ca", required=True)
        d.add_argument("--token-file", required=(name != "slowloris"))
        d.add_argument("--path", required=True)
        d.add_argument("--source", default="127.0.0.1")
        d.add_argument("--timeout", type=float, default=10)
    sub.choices["deliver"].add_argument("--count", type=int, required=True)
    sub.choices["deliver"].add_argument("--prefix", default="flood")
    sub.choices["deliver"].add_argument("--times")
    sub.choices["slow"].add_argument("--what", choices=["headers", "body"], required=True)
    sub.choices["slow"].add_argument("--byte-every", type=float, default=1.0)
    sl = sub.choices["slowloris"]
    sl.add_argument("--what", choices=["headers", "body"], required=True)
    sl.add_argument("--count", type=int, default=1000)
    sl.add_argument("--rate", type=float, default=200)
    sl.add_argument("--every", type=float, default=5)
    sl.add_argument("--seconds", type=float, default=30)
    sl.add_argument("--ready-file")
    sub.choices["pace"].add_argument("--rate", type=float, default=1)
    sub.choices["pace"].add_argument("--seconds", type=float, default=30)
    sub.choices["pace"].add_argument("--within-ms", type=float, default=1000)
    a = p.parse_args()
    if not a.__dict__.get("source", "127.0.0.1").startswith("127."):
        p.error("loopback sources only")
    return {"hold": cmd_hold, "deliver": cmd_deliver, "slow": cmd_slow, "slowloris": cmd_slowloris,
            "pace": cmd_pace}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
