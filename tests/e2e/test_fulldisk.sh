#!/usr/bin/env bash
# End-to-end: a full disk under the spool while the database is away. On a
# 1 MiB tmpfs (root: mount), with kycd's spool cap far above it, the
# database stopped (a private cluster): deliveries are answered 200 while
# the disk takes them, then 503 with Retry-After once it is full -- never a
# 200 that was not written -- and the log says why in words
# ("No space left on device", not garbled). Room again and the database
# back: every delivery answered 200 is stored exactly once.
# Needs root (mount); exit 77 otherwise (tests/run.sh fails on it unless
# TEST_ALLOW_SKIP names it).
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: test_fulldisk: mounting a small tmpfs needs root"
  exit 77
fi
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"

SPOOL=$E2E_TMP/spool
mkdir -p "$SPOOL"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$SPOOL" || e2e_abort "cannot mount a tmpfs on $SPOOL"
unmount() { umount "$SPOOL" 2>/dev/null || umount -l "$SPOOL" 2>/dev/null || true; }
E2E_EXIT_HOOKS+=(unmount)

e2e_section "private PostgreSQL, kycd with its spool on a 1 MiB disk"
e2e_private_pg
e2e_start_kycd "KYCD_SPOOL_DIR=$SPOOL" KYCD_SPOOL_MAX=1g KYCD_RETRY_AFTER=5s KYCD_DB_TIMEOUT=2s
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"

ACKS=$E2E_TMP/acks
# A body of about 8 KiB, so that the disk fills within a few hundred.
pad=$(head -c 6000 /dev/zero | tr '\0' x)
deliver() {
  local u st
  u=fd-$(e2e_uuid)
  st=$(post "$E2E_KYC_PATH" "{\"externalUserId\":\"$u\",\"verificationStatus\":\"$(p100_word verificationStatus NOT_VERIFIED)\",\"attemptStatus\":\"$(p100_word attemptStatus PENDING)\",\"pad\":\"$pad\"}")
  echo "$u $st" >>"$ACKS"
  echo "$st"
}

e2e_section "the disk fills"
n200=0
n503=0
for _ in $(seq 1 400); do
  st=$(deliver)
  case $st in
    200) n200=$((n200 + 1)) ;;
    503) n503=$((n503 + 1)); [ "$n503" -ge 5 ] && break ;;
    *) fail "a delivery got $st while the disk filled"; break ;;
  esac
done
echo "  answered 200: $n200, then 503: $n503 (df: $(df -k --output=avail "$SPOOL" | tail -1 | tr -d ' ') KiB free)"
assert_ne 0 "$n200" "deliveries were spooled while the disk had room (200)"
assert_eq 5 "$n503" "once the disk is full: 503 (5 in a row)"
assert_eq 5 "$(resp_header Retry-After)" "... with Retry-After"
line=$(grep 'status=503' "$E2E_KYCD_LOG" | tail -n 1)
assert_contains "$line" "No space left on device" "the log says why in words"
assert_contains "$line" "the spool refused the delivery" "... and what was refused"
assert_match "$line" '^ts=[^ ]+ level=[a-z]+ msg=' "... in a well-formed log line"
assert_eq 1 "$(kill -0 "$E2E_KYCD_PID" 2>/dev/null && echo 1 || echo 0)" "kycd still runs"

e2e_section "room again, the database back: every 200 stored once"
mount -o remount,size=16m "$SPOOL" || e2e_abort "cannot grow the tmpfs"
pg_local_start_server_only "$PRIV_DIR" || e2e_abort "cannot start the private PostgreSQL"
want=$(awk '$2 == 200' "$ACKS" | wc -l)
if e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE 'fd-%'" "$want" 60; then
  pass "the $want deliveries answered 200 are stored ($(grep -c ' 503$' "$ACKS") answered 503 were not)"
else
  fail "stored: $E2E_SQL_LAST, answered 200: $want"
fi
missing=$(timeout 30 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 \
  -c "CREATE TEMP TABLE acks (u text, st int)" \
  -c "\\copy acks FROM '$ACKS' WITH (DELIMITER ' ')" \
  -c "SELECT count(*) FROM acks a WHERE a.st = 200 AND (SELECT count(*) FROM kyc.webhook_events e WHERE e.external_user_id = a.u) <> 1")
assert_eq 0 "$missing" "each delivery answered 200 is stored exactly once"
e2e_stop_kycd
