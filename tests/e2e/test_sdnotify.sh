#!/usr/bin/env bash
# End-to-end: systemd's notify protocol, with a socket the test opens in
# place of systemd's (README, "Operations"): READY=1 once kycd listens,
# WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a
# SIGHUP, STOPPING=1 on SIGTERM; for a socket path and an abstract socket.
# And `systemd-analyze verify` accepts deploy/kycd.service.
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

e2e_section "the unit file"
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
