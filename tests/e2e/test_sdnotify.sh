#!/usr/bin/env bash
# End-to-end: systemd's notify protocol, with a socket the test opens in
# place of systemd's (README, "Operations"): READY=1 once kycd listens,
# WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a
# SIGHUP, STOPPING=1 on SIGTERM; for a socket path and an abstract socket.
# The journal: with JOURNAL_STREAM naming the device and inode of kycd's
# stderr (as systemd sets it), each line starts with its syslog priority
# (<6> info, <3> error) and is logfmt after it; with JOURNAL_STREAM naming
# another file, or unset, lines start with ts= as before.
# And `systemd-analyze verify` accepts deploy/kycd.service, which turns
# journald's rate limit off for kycd.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || e2e_abort "python3 is needed (deploy/packages.sh lists it)"
e2e_fresh_db

# listen SOCKET OUT: receive datagrams on SOCKET (a path, or @name), one line each in OUT.
listen() {
  python3 - "$1" "$2" <<'PY' &
import socket, sys, time
name, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + name[1:] if name.startswith("@") else name)
s.settimeout(0.5)
end = time.monotonic() + 60
with open(out, "a", buffering=1) as f:
    f.write("listening\n")
    while time.monotonic() < end:
        try:
            f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        except socket.timeout:
            pass
PY
  LISTENER=$!
  e2e_track_pid "$LISTENER"
  e2e_wait_cmd 10 grep -q listening "$2" || e2e_abort "the notify listener did not start"
}

for kind in path abstract; do
  e2e_section "notify over a $kind socket"
  out=$E2E_TMP/notify-$kind.log
  if [ "$kind" = path ]; then sock=$E2E_TMP/notify.sock; else sock="@kycd-test-$$-$RANDOM"; fi
  listen "$sock" "$out"
  if [ "$kind" = path ]; then migrate=; else migrate=--no-migrate; fi
  e2e_start_kycd $migrate KYCD_LOG_LEVEL=info "NOTIFY_SOCKET=$sock" WATCHDOG_USEC=400000
  e2e_wait_cmd 10 grep -q '^READY=1|STATUS=serving$' "$out" && pass "READY=1 after listening" ||
    fail "no READY=1 (got: $(tr '\n' ' ' <"$out"))"
  e2e_wait_cmd 10 bash -c "[ \$(grep -c '^WATCHDOG=1$' '$out') -ge 4 ]" &&
    pass "WATCHDOG=1 repeatedly ($(grep -c '^WATCHDOG=1$' "$out") so far; every 200 ms for WATCHDOG_USEC=400000)" ||
    fail "fewer than 4 WATCHDOG=1 in 10 s"
  kill -HUP "$E2E_KYCD_PID"
  e2e_wait_cmd 10 bash -c "grep -A1 '^RELOADING=1|MONOTONIC_USEC=[0-9]*$' '$out' | grep -q '^READY=1$'" &&
    pass "SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1" || fail "no RELOADING=1 then READY=1 after SIGHUP"
  e2e_stop_kycd
  e2e_wait_cmd 5 grep -q '^STOPPING=1$' "$out" && pass "SIGTERM: STOPPING=1" || fail "no STOPPING=1"
  kill -TERM "$LISTENER" 2>/dev/null || true
done

e2e_section "the journal: syslog priorities when stderr is the journal's stream"
jlog=$E2E_TMP/journal.stream
: >"$jlog"
js=$(stat -c '%d:%i' "$jlog")
# jrun ENV...: kycd migrate under env -i with ENV, stderr appended to $jlog
# (the same inode), its exit code in $jrc.
jrun() {
  jrc=0
  env -i "$@" timeout 30 "$TEST_KYCD_BIN" migrate 2>>"$jlog" >/dev/null || jrc=$?
}
jrun "KYCD_DATABASE_URL=$E2E_DB_URL" "JOURNAL_STREAM=$js"
assert_eq 0 "$jrc" "kycd migrate with JOURNAL_STREAM: exit 0"
assert_match "$(tail -n 1 "$jlog")" '^<6>ts=[^ ]+ level=info msg="migrate done"' "an info line starts with <6>"
jrun "KYCD_DATABASE_URL=host=127.0.0.1 port=1 dbname=none connect_timeout=2" "JOURNAL_STREAM=$js"
assert_eq 1 "$jrc" "kycd migrate against a closed port: exit 1"
assert_match "$(tail -n 1 "$jlog")" '^<3>ts=[^ ]+ level=error msg="migrate failed"' "an error line starts with <3>"
assert_eq "" "$(grep -v '^<[3467]>ts=' "$jlog" || true)" "every line to the journal has its priority"
sed 's/^<[0-7]>//' "$jlog" >"$E2E_TMP/journal.stripped"
e2e_logfmt_check "$E2E_TMP/journal.stripped" "the lines are logfmt after the priority"
other=$E2E_TMP/other
: >"$other"
: >"$jlog"
jrun "KYCD_DATABASE_URL=$E2E_DB_URL" "JOURNAL_STREAM=$(stat -c '%d:%i' "$other")"
assert_match "$(tail -n 1 "$jlog")" '^ts=' "JOURNAL_STREAM naming another file: no prefix"
: >"$jlog"
jrun "KYCD_DATABASE_URL=$E2E_DB_URL"
assert_match "$(tail -n 1 "$jlog")" '^ts=' "no JOURNAL_STREAM: no prefix"

e2e_section "the unit file"
assert_contains "$(cat "$TEST_KYCD_SRC/deploy/kycd.service")" $'\nLogRateLimitIntervalSec=0\n' \
  "the unit turns journald's rate limit off for kycd (errors are never dropped)"
if command -v systemd-analyze >/dev/null; then
  unit=$E2E_TMP/kycd.service
  sed "s|/usr/local/bin/kycd|$TEST_KYCD_BIN|g" "$TEST_KYCD_SRC/deploy/kycd.service" >"$unit"
  # Its Documentation= names man pages installed only by the package:
  # e2e/test_package verifies the installed unit with them.
  if out=$(timeout 60 systemd-analyze verify --man=no "$unit" 2>&1); then
    pass "systemd-analyze verify accepts deploy/kycd.service${out:+ (said: $(e2e__clip "$out"))}"
  else
    fail "systemd-analyze verify: $(e2e__clip "$out")"
  fi
else
  fail "systemd-analyze is not installed (package systemd)"
fi
