#!/usr/bin/env python3
"""Early-answer probe: does every answer kycd sends reach a client that is
still writing its request? (tests/e2e/test_linger.sh)

For each try: open a TLS connection, send the request line and headers, then
the body (in one write, or in CHUNK-byte pieces DELAY ms apart), and only
then read the answer, as a simple HTTP client does. kycd may answer before
it has read the body (413, 401, 503 while draining); a server that then
closes with unread input makes the kernel send RST, and the client loses the
answer. A write error is not a failure by itself (the server may stop
reading once it answered); what counts is whether the status line arrives.

  early_answer.py --port P --ca CA --path PATH --token-file F|--token T
                  --body-bytes N [--chunk N --delay-ms MS] [--tries 100]
                  [--parallel 4] --expect STATUS [--expect-close]

Prints one summary line
  early_answer tries=N expected=N got=STATUS:COUNT,... errors=KIND:COUNT,...
and, for the first few failures, what was seen. Exit 0 when every try got
the expected status; 1 otherwise; 2 for usage.
"""
import argparse
import collections
import socket
import ssl
import sys
import threading
import time


def one_try(args, token, i):
    ctx = ssl.create_default_context(cafile=args.ca)
    body = (b'{"pad":"' + b"x" * max(0, args.body_bytes - 10) + b'"}')[: args.body_bytes]
    head = (
        "POST %s HTTP/1.1\r\n"
        "Host: localhost:%d\r\n"
        "Authorization: Bearer %s\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: %d\r\n"
        "\r\n" % (args.path, args.port, token, len(body))
    ).encode()
    write_error = None
    try:
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
    except OSError as e:
        return ("connect", "connect: %s" % e)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
    except (OSError, ssl.SSLError) as e:
        raw.close()
        return ("tls", "handshake: %s" % e)
    try:
        try:
            if args.chunk <= 0:
                s.sendall(head + body)
            else:
                s.sendall(head)
                for off in range(0, len(body), args.chunk):
                    s.sendall(body[off : off + args.chunk])
                    if args.delay_ms > 0:
                        time.sleep(args.delay_ms / 1000.0)
        except (OSError, ssl.SSLError) as e:
            write_error = "%s" % e
        data = b""
        try:
            while b"\r\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (OSError, ssl.SSLError) as e:
            kind = "reset" if isinstance(e, ConnectionResetError) or "reset" in str(e).lower() else "read"
            return (kind, "read: %s (after %d bytes; write error: %s)" % (e, len(data), write_error))
        if not data.startswith(b"HTTP/1."):
            return ("noanswer", "no status line (got %r; write error: %s)" % (data[:60], write_error))
        try:
            status = int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return ("garbled", "status line %r" % data[:60])
        if args.expect_close and write_error is None:
            # The answer says "Connection: close": the server must close,
            # even though this HTTP/1.1 request did not ask for it.
            s.settimeout(args.close_within)
            try:
                while s.recv(4096):
                    pass
            except socket.timeout:
                return ("kept_open", "status %d, but the connection was still open %.1f s later"
                        % (status, args.close_within))
            except (OSError, ssl.SSLError):
                pass
        return (status, None)
    finally:
        try:
            s.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--token")
    p.add_argument("--token-file")
    p.add_argument("--body-bytes", type=int, required=True)
    p.add_argument("--chunk", type=int, default=0)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--tries", type=int, default=100)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--expect-close", action="store_true",
                   help="the server must close the connection after the answer")
    p.add_argument("--close-within", type=float, default=5.0)
    args = p.parse_args()
    token = args.token
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().split(",")[0].split("\n")[0].strip()
    if token is None:
        p.error("--token or --token-file")

    got = collections.Counter()
    errors = collections.Counter()
    samples = []
    lock = threading.Lock()
    next_try = [0]

    def worker():
        while True:
            with lock:
                i = next_try[0]
                if i >= args.tries:
                    return
                next_try[0] += 1
            status, detail = one_try(args, token, i)
            with lock:
                if isinstance(status, int):
                    got[status] += 1
                    if status != args.expect and len(samples) < 5:
                        samples.append("try %d: status %d" % (i, status))
                else:
                    errors[status] += 1
                    if len(samples) < 5:
                        samples.append("try %d: %s" % (i, detail))

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.parallel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fmt = lambda c: ",".join("%s:%d" % kv for kv in sorted(c.items(), key=str)) or "-"
    print("early_answer tries=%d expected=%d got=%s errors=%s"
          % (args.tries, got[args.expect], fmt(got), fmt(errors)))
    for s in samples:
        print("early_answer: " + s, file=sys.stderr)
    return 0 if got[args.expect] == args.tries else 1


if __name__ == "__main__":
    sys.exit(main())
