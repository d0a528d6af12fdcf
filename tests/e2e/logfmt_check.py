#!/usr/bin/env python3
"""Strict logfmt check of kycd log lines (tests/e2e/lib.sh runs it on every
log file a test produced, at exit).

usage: logfmt_check.py [--quiet] FILE...

A kycd log line starts with "ts=" (log.c writes ts, level, msg first). Other
lines in the same file are not kycd's log and are not checked: valgrind or
sanitizer reports, the plain output of `kycd config` or `kycd status`, the
"kycd: ..." messages of a command that stops before logging. A log line
glued behind such output (stdout and stderr share one file, stdout is
buffered) is checked from its "ts=".

A log line must be exactly

    key=value( key=value)*          keys ts, level, msg first
    key    [a-z_]+
    value  bare: printable ASCII but space " = \\
           or quoted: "..." whose only escapes are \\" \\\\ \\n \\r \\t \\xHH
           (lower-case hex), the rest valid UTF-8 with no C1 control and no
           U+2028/U+2029 (log.c writes those as \\xHH)

with no raw control byte anywhere and a final newline. Prints every line
that fails (clipped, control bytes shown escaped) with the reason, and exits
1 if any; on success prints how many lines it checked, and exits 0.
"""
import re
import sys

BARE = rb'[!#-<>-\[\]-~]+'
QUOTED = rb'"(?:\\["\\nrt]|\\x[0-9a-f]{2}|[^"\\\x00-\x1f\x7f])*"'
PAIR = rb'([a-z_]+)=(' + BARE + rb'|' + QUOTED + rb')'
LINE_RE = re.compile(PAIR + rb'(?: ' + PAIR + rb')*')
PAIR_RE = re.compile(PAIR)
# Where a log line begins when something else precedes it on the line.
GLUED_RE = re.compile(rb'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=')
LEVELS = {b'debug', b'info', b'warn', b'error'}
FORBIDDEN = re.compile('[\u0080-\u009f\u2028\u2029]')


def problem(line):
    """None when line (bytes, without its newline) is a valid log line."""
    m = re.search(rb'[\x00-\x1f\x7f]', line)
    if m:
        return 'raw control byte 0x%02x at %d' % (line[m.start()], m.start())
    if not LINE_RE.fullmatch(line):
        # Say where it breaks: the longest valid prefix of pairs.
        pos = 0
        for pm in PAIR_RE.finditer(line):
            if pm.start() != pos:
                break
            pos = pm.end()
            if pos < len(line) and line[pos:pos + 1] == b' ':
                pos += 1
        return 'not key=value pairs from byte %d' % pos
    pairs = PAIR_RE.findall(line)
    keys = [k for k, _ in pairs]
    if keys[:3] != [b'ts', b'level', b'msg']:
        return 'does not start with ts= level= msg='
    if pairs[1][1] not in LEVELS:
        return 'unknown level'
    for k, v in pairs:
        if v.startswith(b'"'):
            try:
                text = v.decode('utf-8')
            except UnicodeDecodeError as e:
                return 'invalid UTF-8 in the value of %s (%s)' % (k.decode(), e.reason)
            if FORBIDDEN.search(text):
                return 'unescaped C1 control or line separator in the value of %s' % k.decode()
    return None


def show(line, limit=300):
    s = line.decode('utf-8', 'backslashreplace')
    s = re.sub('[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]',
               lambda m: '\\x%02x' % ord(m.group()) if ord(m.group()) < 0x100
               else '\\u%04x' % ord(m.group()), s)
    return s if len(s) <= limit else s[:limit] + '...'


def main(argv):
    quiet = False
    if argv and argv[0] == '--quiet':
        quiet, argv = True, argv[1:]
    checked = bad = 0
    for path in argv:
        with open(path, 'rb') as f:
            data = f.read()
        lines = data.split(b'\n')
        last_open = lines[-1] != b''
        if not last_open:
            lines.pop()
        for no, line in enumerate(lines, 1):
            if not line.startswith(b'ts='):
                m = GLUED_RE.search(line)
                if not m:
                    continue  # not a kycd log line
                line = line[m.start():]
            checked += 1
            why = problem(line)
            if why is None and no == len(lines) and last_open:
                why = 'no final newline'
            if why is not None:
                bad += 1
                if bad <= 20:
                    print('%s:%d: %s: %s' % (path, no, why, show(line)))
    if bad > 20:
        print('... and %d more' % (bad - 20))
    if bad:
        print('%d of %d kycd log lines are not valid logfmt' % (bad, checked))
        return 1
    if not quiet:
        print('%d kycd log lines in %d files, all valid logfmt' % (checked, len(argv)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
