#!/usr/bin/env bash
# kycd demo: everything on one machine, from a clone of the repository, on
# Debian 12, as root (or as a user that already has the packages), with P100
# replaced by the project's simulator, p100-sim (tests/sim/).
#
#   1. installs the Debian packages building and running kycd need, if any
#      is missing (deploy/packages.sh's build set, not the test suite's
#      tools; not root: prints the apt-get line and stops);
#   2. builds kycd and p100-sim with CMake into build/demo (reusing build/ci's
#      CivetWeb source when tests/run.sh already fetched it);
#   3. starts a throwaway PostgreSQL 15 (deploy/pg-local.sh, under /tmp),
#      makes development certificates in certs/ (certs/make-dev-certs.sh),
#      writes a random webhook token and a random P100 API key to 0600 files
#      in a temporary folder, starts p100-sim on a free port (webhooks to
#      kycd, P100's retry schedule scaled by 0.05), runs `kycd migrate` and
#      starts `kycd serve` on https://localhost:8443 (or the next free port,
#      said so) with the reconciler on, logging to that folder;
#   4. act one: sends sample P100 webhooks with curl and prints, for each,
#      the HTTP status and what kycd did with it (from kycd's request log
#      line), then the reconciler's checks of the reports kycd held;
#   5. act two, driven through the simulator: `kycd create-kyc`, a webhook
#      the simulator sends, one it drops (the reconciler corrects the state),
#      two it delivers in reverse order, and a user P100 does not know;
#   6. shows what a compliance analyst sees in the views (psql), and that
#      the read-only role kyc_analyst can read but not change anything;
#   7. leaves kycd and p100-sim running and shows their logs until Ctrl-C (or
#      SIGTERM), then stops both, removes the database and the temporary
#      folder, exits 0. With DEMO_NONINTERACTIVE=1, or when stdin is not a
#      terminal, it stops right after step 6 (for CI).
#
# Everything it starts is stopped on every exit path, and every wait is
# bounded. Usage: deploy/demo.sh      Exit status: 0 when the demo ran and
# every step turned out as shown (1 otherwise, with a message).
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
sim_pid=
tailer_pid=
cleaned=0
surprises=0   # steps that did not turn out as the demo says they should

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

stop_sim() {
  local pid=$sim_pid rc=0 _
  [ -n "$pid" ] || return 0
  sim_pid=
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "p100-sim (pid $pid) still running 10 s after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  say "stopped p100-sim (pid $pid, exit status $rc)"
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
  if [ -n "$kycd_pid$sim_pid$pg_dir$tmp" ]; then heading "Stopping"; fi
  stop_tailer
  stop_kycd   # first: its reconciler calls the simulator
  stop_sim
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    if pg_local_stop "$pg_dir"; then
      say "stopped PostgreSQL and removed $pg_dir"
    else
      warn "could not remove the PostgreSQL cluster in $pg_dir"
    fi
  fi
  pg_dir=
  if [ -n "$tmp" ] && [ -d "$tmp" ]; then
    rm -rf -- "$tmp" && say "removed $tmp (token, API key, logs)"
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
kycd_install_packages "$me" build || exit 1

# --- 2. build -----------------------------------------------------------------
heading "2. Building kycd and p100-sim (build/demo)"
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
       cmake --build "$bdir" --target kycd p100-sim -j"$(nproc 2>/dev/null || echo 2)"; } >"$build_log" 2>&1 </dev/null; then
  tail -n 30 "$build_log" | sed 's/^/  | /' >&2
  die "the build failed (whole log: $build_log)"
fi
kycd=$bdir/kycd
simbin=$bdir/tests/p100-sim
say "built: $("$kycd" version)"
say "       ${simbin#"$root"/} (P100's Partner API, simulated)"

# --- 3. PostgreSQL, certificates, secrets, p100-sim, kycd --------------------
heading "3. Starting PostgreSQL, p100-sim and kycd"
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
api_key_file=$tmp/p100-api-key
(umask 077 && openssl rand -hex 20 >"$api_key_file")
say "P100 API key:  random, in $api_key_file (mode $(stat -c %a "$api_key_file"))"

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

# p100-sim: P100's Partner API on a free port; its webhooks go to kycd, with
# kycd's token, and its retry schedule (8, 16, 32, 64 s) scaled by 0.05.
sim_port=
for _ in $(seq 1 100); do
  p=$((20000 + RANDOM % 30000))
  if [ "$p" != "$port" ] && ! port_busy "$p"; then sim_port=$p; break; fi
done
[ -n "$sim_port" ] || die "no free port for p100-sim"
# kycd's admin listener (/metrics, /status), plain HTTP on loopback.
admin_port=
for _ in $(seq 1 100); do
  p=$((20000 + RANDOM % 30000))
  if [ "$p" != "$port" ] && [ "$p" != "$sim_port" ] && ! port_busy "$p"; then admin_port=$p; break; fi
done
[ -n "$admin_port" ] || die "no free port for kycd's admin listener"
sim_url=https://localhost:$sim_port
sim_log=$tmp/p100-sim.log
"$simbin" --listen "127.0.0.1:$sim_port" --cert "$root/certs/server.pem" --key "$root/certs/server.key" \
  --api-key-file "$api_key_file" --webhook-url "$base_url/webhooks/p100" \
  --webhook-token-file "$token_file" --webhook-ca "$ca" --retry-scale 0.05 \
  >"$tmp/p100-sim.out" 2>"$sim_log" </dev/null &
sim_pid=$!
started=0
for _ in $(seq 1 100); do
  if grep -qF "p100-sim listening port=$sim_port" "$tmp/p100-sim.out"; then started=1; break; fi
  kill -0 "$sim_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$started" != 1 ]; then
  sed 's/^/  | /' "$sim_log" >&2
  die "p100-sim did not start listening within 10 s"
fi
say "p100-sim (pid $sim_pid) listening on $sim_url (control API: $sim_url/_sim/); log: $sim_log"
grep -m 1 'msg=listening' "$sim_log" | sed 's/^/  | /'
say "  (a webhook kycd does not acknowledge is retried 0.4, 0.8, 1.6, 3.2 s later: P100's 8-64 s x 0.05)"

# kycd refuses unknown KYCD_* variables: run it with exactly these.
kycd_env=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
          "HOME=${HOME:-/tmp}" "LANG=C.UTF-8"
          "KYCD_DATABASE_URL=$db_url"
          "KYCD_LISTEN=127.0.0.1:$port"
          "KYCD_ADMIN_LISTEN=127.0.0.1:$admin_port"
          "KYCD_TLS_CERT=$root/certs/server.pem"
          "KYCD_TLS_KEY=$root/certs/server.key"
          "KYCD_TLS_CHAIN=$root/certs/chain.pem"
          "KYCD_WEBHOOK_TOKENS_FILE=$token_file"
          "KYCD_LOG_LEVEL=info"
          "KYCD_P100_BASE_URL=$sim_url"
          "KYCD_P100_API_KEY_FILE=$api_key_file"
          "KYCD_P100_CA_FILE=$ca"
          "KYCD_P100_RATE=20"
          "KYCD_PENDING_AFTER=5s"
          "KYCD_RECONCILE_INTERVAL=1s"
          "KYCD_SPOOL_DIR=$tmp/spool")
# The same settings as a file, for the kycd commands (and for you, afterwards).
kycd_conf=$tmp/kycd.conf
cat >"$kycd_conf" <<CONF
# written by deploy/demo.sh; removed when the demo stops
database_url = $db_url
p100_base_url = $sim_url
p100_api_key_file = $api_key_file
p100_ca_file = $ca
log_level = info
CONF
kycd_cli=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
          "HOME=${HOME:-/tmp}" "LANG=C.UTF-8" "KYCD_CONFIG=$kycd_conf")

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
say "kycd serve (pid $kycd_pid) listening on $base_url, reconciler on (P100 = p100-sim); log: $kycd_log"
grep -m 1 'msg=listening' "$kycd_log" | sed 's/^/  | /'
grep -m 1 'msg="reconciler' "$kycd_log" | sed 's/^/  | /' || true

# --- 4. sample webhooks -------------------------------------------------------
heading "4. Act one: sample P100 webhooks, sent with curl as P100 would"

user_a=3f6c2a9e-8b1d-4c57-9e0a-5d2b7f41c8a3
user_b=b7e41d02-6a93-4f1e-a8c5-0e9d3b6f7a21
user_c=5a0d9c7b-2e48-4b16-9f3a-c1e6d8b2a4f0
user_d=e29f4b63-0c7a-4d85-b1e2-7a6c9f03d5b8
user_e=c84a1e7f-93b2-4e6d-8a05-2f7b1d9c6e34
# Act two's users are new each run.
user_f=$(cat /proc/sys/kernel/random/uuid)
user_g=$(cat /proc/sys/kernel/random/uuid)
user_h=$(cat /proc/sys/kernel/random/uuid)
user_i=$(cat /proc/sys/kernel/random/uuid)
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

# q SQL: one value (or rows, |-separated) from kycd's database.
q() { timeout 30 psql "$db_url" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# simctl METHOD PATH [BODY]: a call to the simulator's control API (no key);
# sets sim_code and sim_body.
sim_code='' sim_body=''
simctl() {
  local args=(-sS --max-time 15 --cacert "$ca" -o "$tmp/sim.resp" -w '%{http_code}' -X "$1")
  rm -f -- "$tmp/sim.resp"
  if [ -n "${3:-}" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$3"); fi
  sim_code=$(curl "${args[@]}" "$sim_url$2" 2>"$tmp/curl.err") || sim_code=000
  sim_body=$(cat "$tmp/sim.resp" 2>/dev/null || true)
  if [ "$sim_code" != 200 ]; then
    warn "p100-sim: $1 $2 answered $sim_code: ${sim_body:-$(cat "$tmp/curl.err")}"
    surprises=$((surprises + 1))
  fi
}
jnum() { grep -oE "\"$1\":[0-9.]+" <<<"$2" | head -n 1 | cut -d: -f2 || true; }
jstr() { sed -nE "s/.*\"$1\":\"([^\"]*)\".*/\\1/p" <<<"$2"; }

# What P100 itself knows about act one's users (their state in the
# simulator, set without any webhook), so that the reconciler's checks of
# them find what P100 would answer.
for spec in "$user_a VERIFIED SUCCESSFUL" "$user_b NOT_VERIFIED VERIFICATION" \
            "$user_c NOT_VERIFIED REJECTED_BY_PROVIDER NO_FACE_FOUND" \
            "$user_d VERIFIED SUCCESSFUL" "$user_e NOT_VERIFIED VERIFICATION"; do
  read -r u v a r <<<"$spec"
  simctl POST /_sim/users "{\"externalUserId\":\"$u\",\"verificationStatus\":\"$v\",\"attemptStatus\":\"$a\",\"rejectionReason\":\"${r:-}\"}"
done
say "${dim}(p100-sim was told these users' true state at P100 first, without webhooks:${off}"
say "${dim} A, D VERIFIED/SUCCESSFUL; B, E NOT_VERIFIED/VERIFICATION; C REJECTED_BY_PROVIDER)${off}"

# The kycd request log line of request ID $1 (written just after the answer).
log_line() {
  local _
  for _ in $(seq 1 30); do
    if grep -F "rid=$1 " "$kycd_log" | grep -m 1 -F 'msg=request'; then return 0; fi
    sleep 0.1
  done
  return 0
}
field() { sed -nE "s/.* $1=(\"[^\"]*\"|[^ ]*).*/\\1/p" <<<"$2" | tr -d '"'; }
# what LINE: what kycd did, from its request log line.
what() {
  local outcome reason
  outcome=$(field outcome "$1"); reason=$(field reason "$1")
  case $outcome in
    applied) printf '%s' "${green}$outcome${off} ($reason)" ;;
    held)    printf '%s' "${yellow}$outcome${off} ($reason: user marked for a check with P100)" ;;
    *)       printf '%s' "$outcome ($reason)" ;;
  esac
}

n=0
table_head() { printf '%s%-3s %-58s %-5s %s%s\n' "$b" "#" "webhook" "HTTP" "what kycd did" "$off"; }
row() { n=$((n + 1)); printf '%-3s %-58s %-5s %s\n' "$n" "$1" "$2" "$3"; }
table_head
# send LABEL PATH BODY [curl args...]: post a webhook with the token, as
# application/json, unless the extra curl args say otherwise.
send() {
  local label=$1 path=$2 body=$3; shift 3
  local auth="Bearer $token" ct=application/json code rid line err detail desc
  local extra=()
  while [ $# -gt 0 ]; do
    case $1 in
      --auth) auth=$2; shift 2 ;;
      --ct) ct=$2; shift 2 ;;
      *) extra+=("$1"); shift ;;
    esac
  done
  code=$(curl -sS --max-time 15 --cacert "$ca" -o "$tmp/resp" -D "$tmp/headers" -w '%{http_code}' \
           -H "Authorization: $auth" -H "Content-Type: $ct" --data-binary "$body" \
           ${extra[@]+"${extra[@]}"} "$base_url$path" 2>"$tmp/curl.err") || true
  rid=$(grep -i '^x-request-id:' "$tmp/headers" | tail -n 1 | sed -E 's/^[^:]*:[[:space:]]*//' | tr -d '\r')
  line=
  if [ -n "$rid" ]; then line=$(log_line "$rid"); fi
  if [ -n "$(field outcome "$line")" ]; then
    desc=$(what "$line")
  else
    err=$(sed -nE 's/.*"error":"([^"]*)".*/\1/p' "$tmp/resp")
    detail=$(sed -nE 's/.*"detail":"([^"]*)".*/\1/p' "$tmp/resp")
    if [ "$code" = 000 ]; then
      desc="${red}no answer: $(head -c 200 "$tmp/curl.err")${off}"
    else
      desc="refused: ${err:-?}${detail:+ ($detail)}"
    fi
  fi
  row "$label" "$code" "$desc"
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


# Helpers for what follows: the demo's labels in SQL, an aligned psql table,
# a bounded wait with a dot per second, a user's state in one line.
who="(CASE external_user_id WHEN '$user_a' THEN 'A' WHEN '$user_b' THEN 'B' WHEN '$user_c' THEN 'C'
       WHEN '$user_d' THEN 'D' WHEN '$user_e' THEN 'E' WHEN '$user_f' THEN 'F' WHEN '$user_g' THEN 'G'
       WHEN '$user_h' THEN 'H' WHEN '$user_i' THEN 'I' END)"
show() {  # show TITLE SQL: one aligned psql table
  printf '\n%s-- %s%s\n' "$b" "$1" "$off"
  timeout 30 psql "$db_url" -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='(null)' -c "$2" |
    sed -e '/^$/d' -e 's/^/  /'
}
now_ms() { local t=${EPOCHREALTIME/./}; printf '%s' "$((10#$t / 1000))"; }
wait_until() {  # wait_until SECONDS WHAT SQL: until SQL says t; 1 (and a surprise) if not
  local limit=$1 t0 el dots=0
  t0=$(now_ms)
  printf '  waiting (at most %s s) until %s ' "$limit" "$2"
  while :; do
    el=$(( $(now_ms) - t0 ))
    if [ "$(q "$3")" = t ]; then
      printf ' %sdone after %d.%d s%s\n' "$green" "$((el / 1000))" "$((el % 1000 / 100))" "$off"
      return 0
    fi
    if [ "$el" -ge $((limit * 1000)) ]; then
      printf ' %snot within %s s%s\n' "$red" "$limit" "$off"
      surprises=$((surprises + 1))
      return 1
    fi
    while [ $((dots + 1)) -le $((el / 1000)) ]; do printf '.'; dots=$((dots + 1)); done
    sleep 0.25
  done
}
state_of() {  # state_of USER: kycd's stored state in one line
  q "SELECT coalesce(verification_status, '-') || ' / ' || coalesce(attempt_status, '-')
            || '  (source ' || source || coalesce(', needs_check_reason ' || needs_check_reason, '')
            || coalesce(', attention_reason ' || attention_reason, '') || ')'
     FROM kyc.verifications WHERE external_user_id = '$1'"
}
surprise() { warn "not as expected: $*"; surprises=$((surprises + 1)); }

say ""
say "${dim}-- the reconciler asks P100 (here p100-sim) about the users whose reports were held${off}"
wait_until 15 "kycd has checked B, D and E with P100" "
  SELECT count(DISTINCT external_user_id) = 3 FROM kyc.status_checks
  WHERE external_user_id IN ('$user_b', '$user_d', '$user_e')" || true
p100_says="coalesce(substring(body from '\"verificationStatus\":\"([^\"]*)\"') || ' / '
                    || substring(body from '\"attemptStatus\":\"([^\"]*)\"'),
                    substring(body from '\"errorCode\":\"([^\"]*)\"'))"
show "kyc.status_checks of B, D, E (P100's Get KYC Status, called by kycd's reconciler)" "
  SELECT DISTINCT ON (external_user_id) id, $who AS \"user\", checked_at::time(0) AS checked,
         http_status AS http, $p100_says AS \"P100 says\", outcome, result,
         round(latency_ms::numeric, 1) AS ms
  FROM kyc.status_checks WHERE external_user_id IN ('$user_b', '$user_d', '$user_e')
  ORDER BY external_user_id, id"
show "their state now" "
  SELECT $who AS \"user\", verification_status, attempt_status, source, needs_check_reason
  FROM kyc.verifications WHERE external_user_id IN ('$user_b', '$user_d', '$user_e') ORDER BY 1"
say "  B and D: P100 agrees with what kycd kept (the held reports were stale); E: P100's"
say "  answer replaced the undocumented UNDER_REVIEW (a reconciler correction)"

# --- 5. act two: driven through the simulator ---------------------------------
heading "5. Act two: P100 simulated (p100-sim acts, kycd and its reconciler follow)"
say "users: F=$user_f  G=$user_g"
say "       H=$user_h"
say "${dim}(p100-sim's control API: $sim_url/_sim/; P100 itself is $sim_url/v1/...)${off}"

run_kycd() {  # run_kycd ARGS...: shows `kycd ARGS`, its output and exit status; sets cmd_rc, cmd_out
  cmd_rc=0
  printf '  %s$ kycd %s%s\n' "$b" "$*" "$off"
  timeout 60 "${kycd_cli[@]}" "$kycd" "$@" >"$tmp/cmd.out" 2>&1 </dev/null || cmd_rc=$?
  cmd_out=$(cat "$tmp/cmd.out")
  sed 's/^/    /' "$tmp/cmd.out"
  printf '    %s-> exit status %s%s\n' "$dim" "$cmd_rc" "$off"
}
# advance USER JSON: p100-sim changes the user's state at P100 (and sends,
# drops or holds the webhook, as JSON says).
advance() {
  printf '  %s$ curl -X POST %s/_sim/users/%s/advance -d '"'"'%s'"'"'%s\n' "$b" "$sim_url" "$1" "$2" "$off"
  simctl POST "/_sim/users/$1/advance" "$2"
  printf '    -> P100 now: %s / %s; webhook %s%s\n' "$(jstr verificationStatus "$sim_body")" \
    "$(jstr attemptStatus "$sim_body")" "$(jstr webhook "$sim_body")" \
    "$(d=$(grep -oE '"deliveries":\[[0-9,]*\]' <<<"$sim_body" | grep -oE '[0-9,]+' || true); [ -z "$d" ] || printf ' (delivery %s)' "$d")"
}
hook_lines() { grep -F 'msg=request' "$kycd_log" | grep -F " user=$1 " || true; }
hook_count() { hook_lines "$1" | wc -l; }
# wait_hooks USER FROM K LABEL: until kycd has logged K more webhooks for USER
# than FROM (10 s at most), then one table row each, labelled from the event log.
wait_hooks() {
  local user=$1 from=$2 k=$3 _ line ev label
  for _ in $(seq 1 100); do
    [ "$(hook_count "$user")" -lt $((from + k)) ] || break
    sleep 0.1
  done
  if [ "$(hook_count "$user")" -lt $((from + k)) ]; then
    surprise "kycd did not receive $k webhook(s) for $user from p100-sim within 10 s"
  fi
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    ev=$(field event "$line")
    label=$(q "SELECT body->>'verificationStatus' || ' / ' || (body->>'attemptStatus')
               FROM kyc.webhook_events WHERE id = ${ev:-0}")
    row "$4  ${label:-?} (from p100-sim)" "$(field status "$line")" "$(what "$line")"
  done < <(hook_lines "$user" | tail -n +"$((from + 1))")
}

# 5.1 ---------------------------------------------------------------------------
printf '\n%s5.1  kycd create-kyc: P100'"'"'s Create KYC verification (POST /v1/kyc) for a new user, F%s\n' "$b" "$off"
create=(create-kyc --external-user-id "$user_f" --document-type PASSPORT --country LT
        --income-source SALARY --occupation IT --open-account-reason DAILY_USE)
run_kycd "${create[@]}"
[ "$cmd_rc" = 0 ] || surprise "create-kyc exited $cmd_rc"
redirect=$(grep -m 1 -E '^https://' <<<"$cmd_out" || true)
if [ -n "$redirect" ]; then
  say "    the redirect page answers: $(curl -sS --max-time 10 --cacert "$ca" -o /dev/null \
        -w 'HTTP %{http_code}, %{content_type}' "$redirect" 2>&1 || true)"
fi
say "    kycd recorded F: $(state_of "$user_f")"
say "  the same call again, before F has finished:"
run_kycd "${create[@]}"
grep -q 'P212' <<<"$cmd_out" || surprise "the second create-kyc did not report 202 P212"
say "    kycd recorded F: $(state_of "$user_f")"
wait_until 10 "the reconciler has checked F (P212 asks for a check at once)" "
  SELECT count(*) > 0 FROM kyc.status_checks WHERE external_user_id = '$user_f'" || true
say "    P100 says: $(q "SELECT $p100_says || ', ' || result FROM kyc.status_checks
                       WHERE external_user_id = '$user_f' ORDER BY id DESC LIMIT 1")"
say "  a bad field (--country lt: not an ISO 3166-1 alpha-2 code in upper case):"
simctl GET /_sim/stats
creates=$(jnum create_calls "$sim_body")
run_kycd create-kyc --external-user-id "$user_f" --document-type PASSPORT --country lt \
  --income-source SALARY --occupation IT --open-account-reason DAILY_USE
[ "$cmd_rc" = 2 ] || surprise "create-kyc with a bad field exited $cmd_rc, not 2"
simctl GET /_sim/stats
say "    create calls received by p100-sim: $creates before, $(jnum create_calls "$sim_body") after: no call made"

# 5.2 ---------------------------------------------------------------------------
printf '\n%s5.2  F'"'"'s identity check starts at P100; P100 sends the webhook%s\n' "$b" "$off"
h0=$(hook_count "$user_f")
advance "$user_f" '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"VERIFICATION","webhook":"send"}'
table_head
wait_hooks "$user_f" "$h0" 1 F
say "    kycd now: $(state_of "$user_f")"

# 5.3 ---------------------------------------------------------------------------
printf '\n%s5.3  P100 verifies F, but its webhook is lost (dropped by p100-sim)%s\n' "$b" "$off"
advance "$user_f" '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","webhook":"drop"}'
say "    kycd still says: $(state_of "$user_f")"
say "    the reconciler asks P100 about a user pending for KYCD_PENDING_AFTER (5 s here; 10m by default)"
wait_until 20 "the reconciler has corrected F" "
  SELECT attempt_status = 'SUCCESSFUL' FROM kyc.verifications WHERE external_user_id = '$user_f'" || true
grep -F "user=$user_f " "$kycd_log" | grep -m 1 -F 'reconciler corrected' | sed "s/^/    ${dim}kycd | /; s/\$/${off}/" || true
run_kycd status "$user_f"
show "kyc.reconciler_corrections: each row is a webhook that was missed or wrong" "
  SELECT change_id, $who AS \"user\", changed_at::time(0) AS changed,
         coalesce(old_verification_status || ' / ' || old_attempt_status, '-') AS \"old\",
         new_verification_status || ' / ' || new_attempt_status AS \"new\",
         http_status AS http, round(latency_ms::numeric, 1) AS ms, last_webhook_at::time(0) AS last_webhook
  FROM kyc.reconciler_corrections ORDER BY change_id"

# 5.4 ---------------------------------------------------------------------------
printf '\n%s5.4  Out of order: user G'"'"'s two webhooks, held by P100 and delivered in reverse%s\n' "$b" "$off"
simctl POST /_sim/users "{\"externalUserId\":\"$user_g\"}"
say "  (G exists at P100, created there by another of the partner's systems: kycd learns of G from webhooks)"
h0=$(hook_count "$user_g")
advance "$user_g" '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","webhook":"hold"}'
advance "$user_g" '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"VERIFICATION","webhook":"hold"}'
printf '  %s$ curl -X POST %s/_sim/flush -d '"'"'{"order":"reverse"}'"'"'%s\n' "$b" "$sim_url" "$off"
simctl POST /_sim/flush '{"order":"reverse"}'
say "    -> flushed $(jnum flushed "$sim_body"): VERIFICATION goes first, the PENDING arrives last"
table_head
wait_hooks "$user_g" "$h0" 2 G
wait_until 10 "the reconciler has checked G" "
  SELECT count(*) > 0 FROM kyc.status_checks WHERE external_user_id = '$user_g'" || true
show "kyc.status_checks of G" "
  SELECT id, checked_at::time(3) AS checked, http_status AS http, $p100_says AS \"P100 says\", outcome, result
  FROM kyc.status_checks WHERE external_user_id = '$user_g' ORDER BY id"
say "    kycd now: $(state_of "$user_g")"

# 5.5 ---------------------------------------------------------------------------
printf '\n%s5.5  A user kycd knows but P100 does not: a webhook for a random id, H (curl)%s\n' "$b" "$off"
table_head
send "H  NOT_VERIFIED / PENDING (P100 never heard of H)" "$kyc_path" "$(kyc "$user_h" NOT_VERIFIED PENDING)"
say "    after 5 s pending, the reconciler asks P100, which answers 400 P412 (user does not exist): final"
wait_until 20 "the reconciler has flagged H" "
  SELECT attention_reason IS NOT NULL FROM kyc.verifications WHERE external_user_id = '$user_h'" || true
grep -F "user=$user_h " "$kycd_log" | grep -m 1 -F 'result=flagged' | sed "s/^/    ${dim}kycd | /; s/\$/${off}/" || true
show "kyc.needs_attention: users the reconciler gave up on (a person must look)" "
  SELECT $who AS \"user\", external_user_id, attention_reason, verification_status, attempt_status,
         failures, last_checked_at::time(0) AS last_checked
  FROM kyc.needs_attention ORDER BY updated_at"

# 5.6 ---------------------------------------------------------------------------
printf '\n%s5.6  PostgreSQL goes away: kycd keeps answering 200 from its spool (curl)%s\n' "$b" "$off"
say "    stopping PostgreSQL (kycd runs with KYCD_SPOOL_DIR=$tmp/spool)"
pg_local_stop_server_only "$pg_dir" >/dev/null 2>&1 || die "could not stop PostgreSQL"
table_head
send "I  NOT_VERIFIED / PENDING (database down)" "$kyc_path" "$(kyc "$user_i" NOT_VERIFIED PENDING)"
send "I  NOT_VERIFIED / VERIFICATION (database down)" "$kyc_path" "$(kyc "$user_i" NOT_VERIFIED VERIFICATION)"
send "I  VERIFIED / SUCCESSFUL (database down)" "$kyc_path" "$(kyc "$user_i" VERIFIED SUCCESSFUL)"
say "    /readyz while the database is down (admin listener): $(curl -s --max-time 10 "http://127.0.0.1:$admin_port/readyz")"
say "    each 200 above was written to the spool and fsynced first: it will reach the database"
say "    starting PostgreSQL again"
pg_local_start_server_only "$pg_dir" >/dev/null 2>&1 || die "could not start PostgreSQL again"
wait_until 20 "the spool has been replayed into the database" "
  SELECT count(*) = 3 FROM kyc.webhook_events WHERE external_user_id = '$user_i'" || true
grep -m 1 -F 'msg="spool drained"' "$kycd_log" | sed "s/^/    ${dim}kycd | /; s/\$/${off}/" || true
show "I's deliveries, replayed in order with the time kycd accepted them" "
  SELECT id, received_at::time(3) AS accepted, body->>'attemptStatus' AS attempt, outcome, outcome_reason
  FROM kyc.webhook_events WHERE external_user_id = '$user_i' ORDER BY id"
say "    kycd now: $(state_of "$user_i")"

# --- 6. what an analyst sees --------------------------------------------------
heading "6. What an analyst sees (psql)"
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
show "kyc.reconciler_corrections: state changes made by the reconciler (a webhook missed or wrong)" "
  SELECT change_id, $who AS \"user\", changed_at::time(0) AS changed,
         coalesce(old_verification_status || ' / ' || old_attempt_status, '-') AS \"old\",
         new_verification_status || ' / ' || new_attempt_status AS \"new\", new_rejection_reason,
         http_status AS http, round(latency_ms::numeric, 1) AS ms, last_webhook_at::time(0) AS last_webhook
  FROM kyc.reconciler_corrections ORDER BY change_id"
show "kyc.needs_attention: users the reconciler gave up on" "
  SELECT $who AS \"user\", external_user_id, attention_reason, verification_status, attempt_status,
         failures, last_checked_at::time(0) AS last_checked, updated_at::time(0) AS updated
  FROM kyc.needs_attention ORDER BY updated_at"
show "kyc.reconciler_daily: P100 checks per UTC day, by outcome and result" "SELECT * FROM kyc.reconciler_daily"

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

# --- 7. keep running until Ctrl-C ---------------------------------------------
pg_url="postgresql://postgres@127.0.0.1:$pg_port/kycd"
if [ "$surprises" != 0 ]; then
  warn "$surprises step(s) did not turn out as the demo expected (see the messages above)"
fi
if [ "$interactive" = 0 ]; then
  heading "Done"
  say "Non-interactive run (DEMO_NONINTERACTIVE=1 or stdin is not a terminal): stopping now."
  [ "$surprises" = 0 ] || exit 1
  exit 0
fi

heading "kycd and p100-sim are still running"
cat <<EOF
  kycd        $base_url   (trusts certs/ca.pem), reconciler on
  token file  $token_file
  database    psql '$pg_url'
              psql 'postgresql://analyst_demo@127.0.0.1:$pg_port/kycd'   (read-only)
  kycd log    $kycd_log
  p100-sim    $sim_url   (P100's Partner API, simulated; API key in $api_key_file)
  control     $sim_url/_sim/   ($simbin --help lists it all)
  sim log     $sim_log

Try (a new user's first report, as P100 would send it):
  curl --cacert $ca \\
    -H "Authorization: Bearer \$(cat $token_file)" -H 'Content-Type: application/json' \\
    --data '{"externalUserId":"$(cat /proc/sys/kernel/random/uuid)","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}' \\
    $base_url$kyc_path

Or let the simulator act: user G is still in VERIFICATION at P100. Have P100
reject G and send the webhook ("webhook": "drop" loses it, "duplicate" sends it
twice, "hold" keeps it until POST /_sim/flush):
  curl --cacert $ca -X POST \\
    --data '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"REJECTED_BY_PROVIDER","rejectionReason":"NO_FACE_FOUND","webhook":"send"}' \\
    $sim_url/_sim/users/$user_g/advance
  curl --cacert $ca '$sim_url/_sim/webhooks?user=$user_g'    (what P100 delivered)

and compare what kycd stored with what P100 says now:
  KYCD_CONFIG=$kycd_conf $kycd status $user_g --live

${b}Press Ctrl-C to stop${off} (kycd, p100-sim, PostgreSQL and $tmp are removed). Their logs from now on
(without p100-sim's routine "200" answers to the reconciler's status calls, every 5 s
for each pending user: those are in its log file):
EOF
# The logs, prefixed, in their own process group so that cleanup can end all of it.
set -m
( tail -n 0 -F "$kycd_log" 2>/dev/null | sed -u "s/^/  ${dim}kycd     |${off} /" &
  tail -n 0 -F "$sim_log" 2>/dev/null |
    grep --line-buffered -v -E 'msg=request .*path=/v1/kyc/status/[^ ]* status=200 ' |
    sed -u "s/^/  ${dim}p100-sim |${off} /" &
  wait ) &
tailer_pid=$!
set +m
trap 'printf "\n"; exit 0' INT TERM
# Blocks without polling; a signal runs its trap (exit 0 -> cleanup) at once.
rc=0
wait "$kycd_pid" || rc=$?
# Only reached when kycd ended on its own.
kycd_pid=
die "kycd stopped by itself (exit status $rc); its log is above"
