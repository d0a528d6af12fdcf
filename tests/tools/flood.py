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
"""
import argparse
import json
import os
import select
import signal
import socket
import ssl
import sys
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
    for name in ("deliver", "slow"):
        d = sub.add_parser(name)
        d.add_argument("--port", type=int, required=True)
        d.add_argument("--ca", required=True)
        d.add_argument("--token-file", required=True)
        d.add_argument("--path", required=True)
        d.add_argument("--source", default="127.0.0.1")
        d.add_argument("--timeout", type=float, default=10)
    sub.choices["deliver"].add_argument("--count", type=int, required=True)
    sub.choices["deliver"].add_argument("--prefix", default="flood")
    sub.choices["deliver"].add_argument("--times")
    sub.choices["slow"].add_argument("--what", choices=["headers", "body"], required=True)
    sub.choices["slow"].add_argument("--byte-every", type=float, default=1.0)
    a = p.parse_args()
    if not a.__dict__.get("source", "127.0.0.1").startswith("127."):
        p.error("loopback sources only")
    return {"hold": cmd_hold, "deliver": cmd_deliver, "slow": cmd_slow}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
