#!/usr/bin/env bash
# kycd demo: everything on one machine, from a clone of the repository, on
# Debian 12, as root (or as a user that already has the packages).
#
#   1. installs the Debian packages kycd needs, if any is missing
#      (deploy/packages.sh, shared with tests/run.sh; not root: prints the
#      apt-get line and stops);
#   2. builds kycd with CMake into build/demo (reusing build/ci's CivetWeb
#      source when tests/run.sh already fetched it);
#   3. starts a throwaway PostgreSQL 15 (deploy/pg-local.sh, under /tmp),
#      makes development certificates in certs/ (certs/make-dev-certs.sh),
#      writes a random webhook token to a 0600 file in a temporary folder,
#      runs `kycd migrate` and starts `kycd serve` on https://localhost:8443
#      (or the next free port, said so), logging to that folder;
#   4. sends sample P100 webhooks with curl and prints, for each, the HTTP
#      status and what kycd did with it (from kycd's request log line);
#   5. shows what a compliance analyst sees in the views (psql), and that
#      the read-only role kyc_analyst can read but not change anything;
#   6. leaves kycd running and shows its log until Ctrl-C (or SIGTERM), then
#      stops kycd, removes the database and the temporary folder, exits 0.
#      With DEMO_NONINTERACTIVE=1, or when stdin is not a terminal, it stops
#      right after step 5 (for CI).
#
# Everything it starts is stopped on every exit path, and every wait is
# bounded. Usage: deploy/demo.sh      Exit status: 0 when the demo ran.
# shellcheck disable=SC2317  # the cleanup functions run from traps
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me=demo.sh

# --- output helpers -----------------------------------------------------------
if [ -t 1 ]; then
  b=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' yellow=$'\e[33m' off=$'\e[0m'
else
  b='' dim='' red='' green='' yellow='' off=''
fi
heading() { printf '\n%s== %s ==%s\n' "$b" "$*" "$off"; }
say() { printf '%s\n' "$*"; }
warn() { printf '%s%s: %s%s\n' "$yellow" "$me" "$*" "$off" >&2; }
die() { printf '%s%s: %s%s\n' "$red" "$me" "$*" "$off" >&2; exit 1; }

interactive=1
if [ -n "${DEMO_NONINTERACTIVE:-}" ] && [ "${DEMO_NONINTERACTIVE}" != 0 ]; then interactive=0; fi
if [ ! -t 0 ]; then interactive=0; fi

# --- cleanup: whatever was started is stopped, on every exit path -------------
tmp=
pg_dir=
kycd_pid=
tailer_pid=
cleaned=0

stop_kycd() {
  local pid=$kycd_pid rc=0 _
  [ -n "$pid" ] || return 0
  kycd_pid=
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    # kycd finishes in-flight requests within shutdown_timeout (10 s).
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "kycd (pid $pid) still running 15 s after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  say "stopped kycd (pid $pid, exit status $rc)"
}

stop_tailer() {
  [ -n "$tailer_pid" ] || return 0
  # The tailer runs in its own process group (set -m): end all of it.
  kill -TERM -- "-$tailer_pid" 2>/dev/null || true
  wait "$tailer_pid" 2>/dev/null || true
  tailer_pid=
}

cleanup() {
  local rc=$?
  [ "$cleaned" = 0 ] || return 0
  cleaned=1
  trap - ERR INT TERM
  set +e
  if [ -n "$kycd_pid$pg_dir$tmp" ]; then heading "Stopping"; fi
  stop_tailer
  stop_kycd
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    if pg_local_stop "$pg_dir"; then
      say "stopped PostgreSQL and removed $pg_dir"
    else
      warn "could not remove the PostgreSQL cluster in $pg_dir"
    fi
  fi
  pg_dir=
  if [ -n "$tmp" ] && [ -d "$tmp" ]; then
    rm -rf -- "$tmp" && say "removed $tmp (token, kycd log)"
  fi
  tmp=
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'warn "failed: \"$BASH_COMMAND\" (exit $?) at line $LINENO"' ERR

cd "$root"

# --- 1. packages --------------------------------------------------------------
heading "1. Debian packages"
# shellcheck source=SCRIPTDIR/packages.sh
source "$root/deploy/packages.sh"
kycd_install_packages "$me" || exit 1

# --- 2. build -----------------------------------------------------------------
heading "2. Building kycd (build/demo)"
bdir=$root/build/demo
args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DKYCD_WERROR=ON)
civetweb_src=$root/build/ci/_deps/civetweb-1.15
if [ -f "$civetweb_src/src/civetweb.c" ]; then
  args+=("-DKYCD_CIVETWEB_SRC=$civetweb_src")
  say "reusing CivetWeb's source from $civetweb_src"
fi
# A build folder configured from another checkout cannot be reused by CMake.
if [ -f "$bdir/CMakeCache.txt" ] &&
   ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$root" "$bdir/CMakeCache.txt"; then
  say "$bdir was configured for another source folder; starting it afresh"
  rm -rf -- "$bdir"
fi
mkdir -p "$bdir"
build_log=$bdir/demo-build.log
say "cmake configure + build (the first time also fetches CivetWeb's source; log: ${build_log#"$root"/})"
if ! { cmake -S "$root" -B "$bdir" "${args[@]}" &&
       cmake --build "$bdir" --target kycd -j"$(nproc 2>/dev/null || echo 2)"; } >"$build_log" 2>&1 </dev/null; then
  tail -n 30 "$build_log" | sed 's/^/  | /' >&2
  die "the build failed (whole log: $build_log)"
fi
kycd=$bdir/kycd
say "built: $("$kycd" version)"

# --- 3. PostgreSQL, certificates, token, kycd ---------------------------------
heading "3. Starting PostgreSQL and kycd"
tmp=$(mktemp -d /tmp/kycd-demo.XXXXXX)
chmod 700 "$tmp"

# shellcheck source=SCRIPTDIR/pg-local.sh
source "$root/deploy/pg-local.sh"
pg_local_start || die "could not start PostgreSQL"
pg_dir=$PGLOCAL_DIR
pg_port=$PGLOCAL_PORT
admin_db="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
timeout 30 psql "$admin_db" -Xq -v ON_ERROR_STOP=1 -c 'CREATE DATABASE kycd' >/dev/null
db_url="host=127.0.0.1 port=$pg_port user=postgres dbname=kycd"
say "PostgreSQL 15 on 127.0.0.1:$pg_port, database kycd (cluster folder $pg_dir)"

timeout 60 bash "$root/certs/make-dev-certs.sh" | sed 's/^/  /'
ca=$root/certs/ca.pem

token_file=$tmp/webhook-token
(umask 077 && openssl rand -hex 24 >"$token_file")
token=$(cat "$token_file")
say "webhook token: random, in $token_file (mode $(stat -c %a "$token_file"))"

port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
port=8443
if port_busy "$port"; then
  for p in $(seq 8444 8543); do
    if ! port_busy "$p"; then port=$p; break; fi
  done
  [ "$port" != 8443 ] || die "port 8443 is busy and no port in 8444..8543 is free"
  say "${yellow}port 8443 is in use; kycd listens on $port instead${off}"
fi
base_url=https://localhost:$port
kycd_log=$tmp/kycd.log

# kycd refuses unknown KYCD_* variables: run it with exactly these.
kycd_env=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
          "HOME=${HOME:-/tmp}" "LANG=C.UTF-8"
          "KYCD_DATABASE_URL=$db_url"
          "KYCD_LISTEN=127.0.0.1:$port"
          "KYCD_TLS_CERT=$root/certs/server.pem"
          "KYCD_TLS_KEY=$root/certs/server.key"
          "KYCD_TLS_CHAIN=$root/certs/chain.pem"
          "KYCD_WEBHOOK_TOKENS_FILE=$token_file"
          "KYCD_LOG_LEVEL=info"
          "KYCD_RECONCILE=off")

say "kycd migrate:"
if ! timeout 60 "${kycd_env[@]}" "$kycd" migrate >"$tmp/migrate.log" 2>&1; then
  sed 's/^/  | /' "$tmp/migrate.log" >&2
  die "kycd migrate failed"
fi
sed 's/^/  | /' "$tmp/migrate.log"

"${kycd_env[@]}" "$kycd" serve >"$kycd_log" 2>&1 </dev/null &
kycd_pid=$!
started=0
for _ in $(seq 1 150); do
  if grep -q 'msg=listening' "$kycd_log"; then started=1; break; fi
  kill -0 "$kycd_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$started" != 1 ]; then
  sed 's/^/  | /' "$kycd_log" >&2
  die "kycd serve did not start listening within 15 s"
fi
say "kycd serve (pid $kycd_pid) listening on $base_url; log: $kycd_log"
grep -m 1 'msg=listening' "$kycd_log" | sed 's/^/  | /'

# --- 4. sample webhooks -------------------------------------------------------
heading "4. Sending sample P100 webhooks"

user_a=3f6c2a9e-8b1d-4c57-9e0a-5d2b7f41c8a3
user_b=b7e41d02-6a93-4f1e-a8c5-0e9d3b6f7a21
user_c=5a0d9c7b-2e48-4b16-9f3a-c1e6d8b2a4f0
user_d=e29f4b63-0c7a-4d85-b1e2-7a6c9f03d5b8
user_e=c84a1e7f-93b2-4e6d-8a05-2f7b1d9c6e34
say "users: A=$user_a  B=$user_b"
say "       C=$user_c  D=$user_d"
say "       E=$user_e"
kyc_path=/webhooks/p100/kyc-verification-status
poa_path=/webhooks/p100/poa-verification-status

kyc() {  # kyc USER VSTATUS ASTATUS [REASON]: a KYC Verification Status body
  if [ -n "${4:-}" ]; then
    printf '{"externalUserId":"%s","verificationStatus":"%s","attemptStatus":"%s","rejectionReason":"%s"}' "$1" "$2" "$3" "$4"
  else
    printf '{"externalUserId":"%s","verificationStatus":"%s","attemptStatus":"%s"}' "$1" "$2" "$3"
  fi
}

# The kycd request log line of request ID $1 (written just after the answer).
log_line() {
  local _
  for _ in $(seq 1 30); do
    if grep -m 1 -F "rid=$1 " "$kycd_log"; then return 0; fi
    sleep 0.1
  done
  return 0
}
field() { sed -nE "s/.* $1=(\"[^\"]*\"|[^ ]*).*/\\1/p" <<<"$2" | tr -d '"'; }

n=0
printf '%s%-3s %-58s %-5s %s%s\n' "$b" "#" "webhook" "HTTP" "what kycd did" "$off"
# send LABEL PATH BODY [curl args...]: post a webhook with the token, as
# application/json, unless the extra curl args say otherwise.
send() {
  local label=$1 path=$2 body=$3; shift 3
  local auth="Bearer $token" ct=application/json code rid line outcome reason err detail what
  local extra=()
  while [ $# -gt 0 ]; do
    case $1 in
      --auth) auth=$2; shift 2 ;;
      --ct) ct=$2; shift 2 ;;
      *) extra+=("$1"); shift ;;
    esac
  done
  n=$((n + 1))
  code=$(curl -sS --max-time 15 --cacert "$ca" -o "$tmp/resp" -D "$tmp/headers" -w '%{http_code}' \
           -H "Authorization: $auth" -H "Content-Type: $ct" --data-binary "$body" \
           ${extra[@]+"${extra[@]}"} "$base_url$path" 2>"$tmp/curl.err") || true
  rid=$(grep -i '^x-request-id:' "$tmp/headers" | tail -n 1 | sed -E 's/^[^:]*:[[:space:]]*//' | tr -d '\r')
  line=
  if [ -n "$rid" ]; then line=$(log_line "$rid"); fi
  outcome=$(field outcome "$line"); reason=$(field reason "$line")
  if [ -n "$outcome" ]; then
    case $outcome in
      applied) what="${green}$outcome${off} ($reason)" ;;
      held)    what="${yellow}$outcome${off} ($reason: user marked for a check with P100)" ;;
      *)       what="$outcome ($reason)" ;;
    esac
  else
    err=$(sed -nE 's/.*"error":"([^"]*)".*/\1/p' "$tmp/resp")
    detail=$(sed -nE 's/.*"detail":"([^"]*)".*/\1/p' "$tmp/resp")
    if [ "$code" = 000 ]; then
      what="${red}no answer: $(head -c 200 "$tmp/curl.err")${off}"
    else
      what="refused: ${err:-?}${detail:+ ($detail)}"
    fi
  fi
  printf '%-3s %-58s %-5s %s\n' "$n" "$label" "$code" "$what"
}

say "${dim}-- user A: a normal verification, with one repeated delivery${off}"
send "A  NOT_VERIFIED / PENDING (attempt started)" "$kyc_path" "$(kyc "$user_a" NOT_VERIFIED PENDING)"
send "A  NOT_VERIFIED / VERIFICATION (provider checking)" "$kyc_path" "$(kyc "$user_a" NOT_VERIFIED VERIFICATION)"
send "A  the same VERIFICATION body again (P100 retry)" "$kyc_path" "$(kyc "$user_a" NOT_VERIFIED VERIFICATION)"
sleep 1   # so that time_to_verified is not all zeros
send "A  VERIFIED / SUCCESSFUL" "$kyc_path" "$(kyc "$user_a" VERIFIED SUCCESSFUL)"
send "A  POA Verification Status: APPROVED" "$poa_path" "{\"externalUserId\":\"$user_a\",\"status\":\"APPROVED\"}"
say "${dim}-- user B: a late retry arrives out of order${off}"
send "B  NOT_VERIFIED / VERIFICATION" "$kyc_path" "$(kyc "$user_b" NOT_VERIFIED VERIFICATION)"
send "B  NOT_VERIFIED / PENDING (late, out of order)" "$kyc_path" "$(kyc "$user_b" NOT_VERIFIED PENDING)"
say "${dim}-- user C: rejected by the identity provider${off}"
send "C  NOT_VERIFIED / REJECTED_BY_PROVIDER, NO_FACE_FOUND" "$kyc_path" \
  "$(kyc "$user_c" NOT_VERIFIED REJECTED_BY_PROVIDER NO_FACE_FOUND)"
say "${dim}-- user D: verified, then a report that would downgrade them${off}"
send "D  VERIFIED / SUCCESSFUL" "$kyc_path" "$(kyc "$user_d" VERIFIED SUCCESSFUL)"
send "D  NOT_VERIFIED / PENDING (would leave VERIFIED)" "$kyc_path" "$(kyc "$user_d" NOT_VERIFIED PENDING)"
say "${dim}-- user E: a status P100 does not document${off}"
send "E  UNDER_REVIEW / VERIFICATION (undocumented value)" "$kyc_path" "$(kyc "$user_e" UNDER_REVIEW VERIFICATION)"
say "${dim}-- requests kycd refuses (nothing is stored)${off}"
send "wrong webhook token" "$kyc_path" "$(kyc "$user_a" VERIFIED SUCCESSFUL)" \
  --auth "Bearer $(openssl rand -hex 24)"
send "malformed JSON" "$kyc_path" "{\"externalUserId\":\"$user_a\",\"verificationStatus\":"
send "Content-Type: text/plain" "$kyc_path" "$(kyc "$user_a" VERIFIED SUCCESSFUL)" --ct text/plain
big=$tmp/big.json
{ printf '{"externalUserId":"%s","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","padding":"' "$user_a"
  head -c $((70 * 1024)) /dev/zero | tr '\0' x
  printf '"}'; } >"$big"
send "a 70 KB body (limit: max_body = 64k)" "$kyc_path" "@$big"

# --- 5. what an analyst sees --------------------------------------------------
heading "5. What an analyst sees (psql)"
who="(CASE external_user_id WHEN '$user_a' THEN 'A' WHEN '$user_b' THEN 'B' WHEN '$user_c' THEN 'C'
       WHEN '$user_d' THEN 'D' WHEN '$user_e' THEN 'E' END)"
show() {  # show TITLE SQL: one aligned psql table
  printf '\n%s-- %s%s\n' "$b" "$1" "$off"
  timeout 30 psql "$db_url" -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='(null)' -c "$2" |
    sed -e '/^$/d' -e 's/^/  /'
}
show "kyc.current_status: one row per user (the demo's label first)" "
  SELECT $who AS \"user\", external_user_id, verification_status, attempt_status,
         rejection_reason, pending, needs_check_reason, poa_status
  FROM kyc.current_status ORDER BY first_seen_at"
show "kyc.held_events: reports stored but not applied" "
  SELECT event_id, $who AS \"user\", outcome_reason, verification_status AS reported_v,
         attempt_status AS reported_a, current_verification_status AS current_v,
         current_attempt_status AS current_a, unknown_fields
  FROM kyc.held_events ORDER BY event_id"
show "kyc.daily_funnel" "SELECT * FROM kyc.daily_funnel"
show "kyc.time_to_verified" "
  SELECT $who AS \"user\", external_user_id, first_seen_at::time(0) AS first_seen,
         verified_at::time(0) AS verified, date_trunc('millisecond', time_to_verified) AS time_to_verified
  FROM kyc.time_to_verified ORDER BY verified_at"
show "kyc.pending" "
  SELECT $who AS \"user\", external_user_id, verification_status, attempt_status,
         pending_since::time(0) AS pending_since, date_trunc('second', pending_for) AS pending_for,
         needs_check_reason
  FROM kyc.pending ORDER BY pending_since"
show "Event log of user B ($user_b)" "
  SELECT id, to_char(received_at, 'HH24:MI:SS.MS') AS received, body->>'verificationStatus' AS verification,
         body->>'attemptStatus' AS attempt, outcome, outcome_reason, repeat_of
  FROM kyc.webhook_events WHERE external_user_id = '$user_b' ORDER BY id"

printf '\n%s-- The read-only role kyc_analyst%s\n' "$b" "$off"
say "  CREATE ROLE analyst_demo LOGIN IN ROLE kyc_analyst;"
timeout 30 psql "$db_url" -Xq -v ON_ERROR_STOP=1 -c 'CREATE ROLE analyst_demo LOGIN IN ROLE kyc_analyst' >/dev/null
analyst_db="host=127.0.0.1 port=$pg_port user=analyst_demo dbname=kycd"
say "  as analyst_demo: SELECT count(*) AS users, count(*) FILTER (WHERE needs_check) AS to_check FROM kyc.current_status;"
timeout 30 psql "$analyst_db" -X -q -v ON_ERROR_STOP=1 -P pager=off -c \
  'SELECT count(*) AS users, count(*) FILTER (WHERE needs_check) AS to_check FROM kyc.current_status' | sed -e '/^$/d' -e 's/^/    /'
upd="UPDATE kyc.verifications SET verification_status = 'VERIFIED' WHERE external_user_id = '$user_c'"
say "  as analyst_demo: $upd;"
if out=$(timeout 30 psql "$analyst_db" -X -q -v ON_ERROR_STOP=1 -c "$upd" 2>&1); then
  warn "the analyst's UPDATE was NOT refused: $out"
else
  say "    ${green}refused${off}: $out"
fi

# --- 6. keep running until Ctrl-C ---------------------------------------------
pg_url="postgresql://postgres@127.0.0.1:$pg_port/kycd"
if [ "$interactive" = 0 ]; then
  heading "Done"
  say "Non-interactive run (DEMO_NONINTERACTIVE=1 or stdin is not a terminal): stopping now."
  exit 0
fi

heading "kycd is still running"
cat <<EOF
  URL         $base_url   (trusts certs/ca.pem)
  token file  $token_file
  database    psql '$pg_url'
              psql 'postgresql://analyst_demo@127.0.0.1:$pg_port/kycd'   (read-only)
  kycd log    $kycd_log

Try (a new user's first report):
  curl --cacert $ca \\
    -H "Authorization: Bearer \$(cat $token_file)" -H 'Content-Type: application/json' \\
    --data '{"externalUserId":"$(cat /proc/sys/kernel/random/uuid)","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}' \\
    $base_url$kyc_path

${b}Press Ctrl-C to stop${off} (kycd, PostgreSQL and $tmp are removed). kycd's log from now on:
EOF
# The log, prefixed, in its own process group so that cleanup can end all of it.
set -m
(tail -n 0 -F "$kycd_log" 2>/dev/null | sed -u "s/^/  ${dim}kycd |${off} /") &
tailer_pid=$!
set +m
trap 'printf "\n"; exit 0' INT TERM
# Blocks without polling; a signal runs its trap (exit 0 -> cleanup) at once.
rc=0
wait "$kycd_pid" || rc=$?
# Only reached when kycd ended on its own.
kycd_pid=
die "kycd stopped by itself (exit status $rc); its log is above"
