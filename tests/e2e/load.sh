# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source it
# Load-test helpers shared by e2e scripts that drive kycd with kycd-loadgen
# (tests/tools/loadgen.c, TEST_LOADGEN) and then check that every
# acknowledged delivery is stored exactly once: test_durability.sh,
# test_failover.sh, test_haproxy.sh. Sourced after lib.sh; uses its E2E_*
# variables.
#
#   figures TEXT...          a "figures:" line
#   lg_start NAME THREADS USERS [loadgen args]   (LG_PID, LG_ACKS, LG_TIMES,
#                            LG_TOTAL; LG_URL: target, default the running
#                            kycd's KYC webhook URL)
#   lg_acked / lg_running / lg_wait_progress S PCT / lg_wait S / lg_num KEY
#   spool_depth / depth_poll_start / depth_poll_stop / wait_spool_empty S
#   check_acks NAME ACKS [EXPECTED]   asserts; with CHECK_ACKS_LOSS_OK=1 a
#                            missing delivery (and a state behind it) is
#                            counted in CHECK_ACKS_MISSING and printed, not
#                            failed (asynchronous replication may lose some)
#   no_dead_letters LOG...

TEST_LOADGEN=${TEST_LOADGEN:-}
if [ -z "$TEST_LOADGEN" ] || [ ! -x "$TEST_LOADGEN" ]; then
  e2e_abort "TEST_LOADGEN is not set or not executable ('$TEST_LOADGEN'); build the kycd-loadgen target"
fi

figures() { echo "figures: $*"; }

# --- loadgen ------------------------------------------------------------------

# lg_start NAME THREADS USERS [loadgen args]: kycd-loadgen in the background
# against the running kycd, users NAME-<thread>-<k>; acknowledged deliveries
# go to $LG_ACKS, each delivery's first attempt and 200 to $LG_TIMES (for
# p100_lost_check, lib.sh). Sets LG_PID, LG_TOTAL (deliveries it will make).
lg_start() {
  local name=$1 threads=$2 users=$3
  shift 3
  LG_ACKS=$E2E_TMP/$name.acks
  LG_TIMES=$E2E_TMP/$name.times
  LG_STDOUT=$E2E_TMP/$name.loadgen.out
  LG_STDERR=$E2E_TMP/$name.loadgen.err
  LG_TOTAL=$((threads * users * 3))
  : >"$LG_ACKS"
  : >"$LG_TIMES"
  "$TEST_LOADGEN" --url "${LG_URL:-$(e2e_url "$E2E_KYC_PATH")}" --token-file "$E2E_TOKEN_FILE" --ca "$E2E_CA" \
    --threads "$threads" --users "$users" --prefix "$name" --out "$LG_ACKS" --times "$LG_TIMES" \
    --max-seconds 150 --retry-delay-ms 200 "$@" >"$LG_STDOUT" 2>"$LG_STDERR" &
  LG_PID=$!
  e2e_track_pid "$LG_PID"
  echo "loadgen pid $LG_PID: $threads threads x $users users x 3 steps = $LG_TOTAL deliveries ($name)"
}

lg_acked() { wc -l <"$LG_ACKS" | tr -d ' '; }
lg_running() { kill -0 "$LG_PID" 2>/dev/null; }

# lg_wait_progress SECONDS FRACTION_PERCENT: wait until the loadgen has that
# share of its deliveries acknowledged, at most SECONDS (0.1 s steps).
lg_wait_progress() {
  local limit=$1 pct=$2 end
  end=$(( $(e2e_ms) + limit * 1000 ))
  while [ "$(e2e_ms)" -lt "$end" ] && lg_running; do
    [ "$(lg_acked)" -ge $((LG_TOTAL * pct / 100)) ] && return 0
    sleep 0.1
  done
}

# lg_wait SECONDS: wait for the loadgen to finish (then SIGTERM, then
# SIGKILL); sets LG_RC, LG_LINE (its summary), LG_DETAILS.
lg_wait() {
  local limit=$1 i
  for i in $(seq 1 $((limit * 10))); do lg_running || break; sleep 0.1; done
  if lg_running; then
    fail "loadgen still running after $limit s: stopped"
    kill -TERM "$LG_PID" 2>/dev/null || true
    for i in $(seq 1 50); do lg_running || break; sleep 0.1; done
    kill -KILL "$LG_PID" 2>/dev/null || true
  fi
  LG_RC=0
  wait "$LG_PID" 2>/dev/null || LG_RC=$?
  LG_LINE=$(grep '^loadgen sent=' "$LG_STDOUT" || true)
  LG_DETAILS=$(grep '^loadgen details:' "$LG_STDERR" || true)
  echo "$LG_LINE"
  echo "$LG_DETAILS"
  grep -v '^loadgen details:' "$LG_STDERR" | head -n 5 | sed 's/^/  /' || true
}

# lg_num KEY: a number from the loadgen's summary or details line.
lg_num() {
  local m
  m=$(grep -oE "(^|[ (])$1=[0-9.]+" <<<"$LG_LINE $LG_DETAILS" | head -n 1) || true
  printf '%s' "${m#*=}"
}

# --- spool depth (/readyz) ----------------------------------------------------

# spool_depth: records in kycd's spool per the admin listener's /readyz ("" when kycd does not answer).
SPOOL_DEPTH_BODY=$E2E_TMP/readyz.body
spool_depth() {
  local f=$SPOOL_DEPTH_BODY
  : >"$f"
  curl -sS --max-time 10 -o "$f" "http://127.0.0.1:$E2E_ADMIN_PORT/readyz" 2>/dev/null || true
  json_num records "$(cat "$f")"
}

# depth_poll_start / depth_poll_stop: sample the spool depth every 0.2 s in
# the background; stop prints the peak ("0" if never above).
depth_poll_start() {
  DEPTH_LOG=$E2E_TMP/depth.$SECONDS.log
  DEPTH_FLAG=$E2E_TMP/depth.$SECONDS.run
  : >"$DEPTH_LOG"
  : >"$DEPTH_FLAG"
  # shellcheck disable=SC2030  # the poller's own body file, local on purpose
  ( SPOOL_DEPTH_BODY=$E2E_TMP/readyz.poller.body
    while [ -e "$DEPTH_FLAG" ]; do
      d=$(spool_depth)
      [ -n "$d" ] && echo "$(e2e_ms) $d" >>"$DEPTH_LOG"
      sleep 0.2
    done ) &
  DEPTH_PID=$!
  e2e_track_pid "$DEPTH_PID"
}
depth_poll_stop() {
  rm -f -- "$DEPTH_FLAG"
  wait "$DEPTH_PID" 2>/dev/null || true
  awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$DEPTH_LOG"
}

# wait_spool_empty SECONDS: poll /readyz until the spool holds 0 records;
# sets SPOOL_WAIT_MS (how long it took from now). Non-zero on timeout.
wait_spool_empty() {
  local limit=$1 t0 end d
  t0=$(e2e_ms)
  end=$((t0 + limit * 1000))
  while :; do
    d=$(spool_depth)
    if [ "$d" = 0 ]; then SPOOL_WAIT_MS=$(( $(e2e_ms) - t0 )); return 0; fi
    if [ "$(e2e_ms)" -ge "$end" ]; then SPOOL_WAIT_MS=-1; LAST_DEPTH=$d; return 1; fi
    sleep 0.2
  done
}

# --- the checker --------------------------------------------------------------

# check_acks NAME ACKS_FILE [EXPECTED_ACKS]: every acknowledged "user step"
# in ACKS_FILE (users NAME-...) has exactly one stored non-repeat event with
# that step's body, and each user's state is at or past its last
# acknowledged step. Prints the counts; asserts.
check_acks() {
  local name=$1 acks=$2 expected=${3:-} out
  local n_acks n_pairs n_users n_stored n_repeats n_missing n_dup n_unacked n_state_bad n_unknown n_nostate
  out=$(timeout 120 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -F ' ' <<SQL
CREATE TEMP TABLE acked (u text, step int, code int);
\copy acked FROM '$acks' WITH (FORMAT text, DELIMITER ' ')
CREATE TEMP TABLE steps (step int, v text, a text);
INSERT INTO steps VALUES (1, 'NOT_VERIFIED', 'PENDING'), (2, 'NOT_VERIFIED', 'VERIFICATION'),
                         (3, 'VERIFIED', 'SUCCESSFUL');
CREATE TEMP TABLE ev AS
  SELECT e.id, e.external_user_id AS u, s.step, e.repeat_of
  FROM kyc.webhook_events e
  LEFT JOIN steps s ON s.v = e.body->>'verificationStatus' AND s.a = e.body->>'attemptStatus'
  WHERE e.external_user_id LIKE '$name-%';
CREATE INDEX ON ev (u, step);
CREATE TEMP TABLE last_acked AS SELECT u, max(step) AS s FROM acked GROUP BY u;
SELECT
  (SELECT count(*) FROM acked),
  (SELECT count(*) FROM (SELECT DISTINCT u, step FROM acked) x),
  (SELECT count(*) FROM last_acked),
  (SELECT count(*) FROM ev WHERE repeat_of IS NULL),
  (SELECT count(*) FROM ev WHERE repeat_of IS NOT NULL),
  (SELECT count(*) FROM (SELECT DISTINCT u, step FROM acked) a
     WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.u = a.u AND ev.step = a.step AND ev.repeat_of IS NULL)),
  (SELECT count(*) FROM (SELECT u, step FROM ev WHERE repeat_of IS NULL
                         GROUP BY u, step HAVING count(*) > 1) d),
  (SELECT count(*) FROM (SELECT DISTINCT u, step FROM ev) x
     WHERE NOT EXISTS (SELECT 1 FROM acked a WHERE a.u = x.u AND a.step = x.step)),
  (SELECT count(*) FROM last_acked l
     JOIN kyc.verifications v ON v.external_user_id = l.u
     LEFT JOIN steps st ON st.v = v.verification_status AND st.a = v.attempt_status
     WHERE st.step IS NULL OR st.step < l.s),
  (SELECT count(*) FROM ev WHERE step IS NULL),
  (SELECT count(*) FROM last_acked l
     WHERE NOT EXISTS (SELECT 1 FROM kyc.verifications v WHERE v.external_user_id = l.u));
SQL
  ) || { fail "checker: psql failed: $out"; return 0; }
  read -r n_acks n_pairs n_users n_stored n_repeats n_missing n_dup n_unacked n_state_bad n_unknown n_nostate <<<"$out"
  figures "checker $name: acknowledged=$n_acks (distinct $n_pairs, users $n_users)" \
    "stored_non_repeat=$n_stored repeats=$n_repeats missing=$n_missing stored_twice=$n_dup" \
    "stored_unacknowledged=$n_unacked state_behind=$n_state_bad no_state_row=$n_nostate unexpected_bodies=$n_unknown"
  if [ -n "$expected" ]; then
    assert_eq "$expected" "$n_acks" "$name: the loadgen got 200 for all $expected deliveries"
  fi
  assert_eq "$n_acks" "$n_pairs" "$name: each delivery acknowledged once by the loadgen"
  CHECK_ACKS_MISSING=$n_missing
  if [ "${CHECK_ACKS_LOSS_OK:-0}" = 1 ]; then
    echo "$name: acknowledged deliveries missing (lost): $n_missing; users whose state is behind: $n_state_bad"
  else
    assert_eq 0 "$n_missing" "$name: every acknowledged delivery is in kyc.webhook_events (non-repeat)"
  fi
  assert_eq 0 "$n_dup" "$name: no acknowledged delivery is stored twice as a non-repeat"
  assert_eq 0 "$n_unknown" "$name: no event with an unexpected body"
  if [ "${CHECK_ACKS_LOSS_OK:-0}" != 1 ]; then
    assert_eq 0 "$n_nostate" "$name: every acknowledged user has a kyc.verifications row"
    assert_eq 0 "$n_state_bad" "$name: every user's state is at or past its last acknowledged step"
  fi
  if [ "$n_missing" != 0 ] || [ "$n_dup" != 0 ] || [ "$n_state_bad" != 0 ]; then
    timeout 60 psql "$E2E_DB_URL" -XAtq -F ' ' <<SQL | head -n 10 | sed 's/^/  missing: /'
CREATE TEMP TABLE acked (u text, step int, code int);
\copy acked FROM '$acks' WITH (FORMAT text, DELIMITER ' ')
SELECT a.u, a.step FROM acked a WHERE NOT EXISTS (
  SELECT 1 FROM kyc.webhook_events e WHERE e.external_user_id = a.u AND e.repeat_of IS NULL AND
    e.body->>'attemptStatus' = (ARRAY['PENDING','VERIFICATION','SUCCESSFUL'])[a.step]) LIMIT 10;
SQL
  fi
}

# no_dead_letters LOG...: kycd never gave up on a spooled delivery.
no_dead_letters() {
  local hits
  hits=$(cat "$@" | grep -c 'dead letter' || true)
  assert_eq 0 "$hits" "no spooled delivery became a dead letter"
}
