# shellcheck shell=bash disable=SC2034  # variables here are used by the test scripts
# End-to-end test library for kycd, sourced by tests/e2e/test_*.sh.
#
# Drives the real kycd binary over real TLS on loopback and reads the real
# database with psql. Every test script gets its own temporary folder, its own
# databases (CREATE DATABASE on the shared throwaway server TEST_PG) and its
# own kycd processes; scripts may run in parallel.
#
# Must never: leave a process it started running, wait without a bound,
# stop the shared PostgreSQL server (TEST_PG), or let a stray KYCD_* variable
# of the caller's environment reach kycd (kycd refuses unknown ones): kycd
# always runs under `env -i` with an explicit environment.
#
# Environment (set by tests/CMakeLists.txt and tests/run.sh):
#   TEST_KYCD_BIN  the kycd binary          TEST_KYCD_SRC  the repo root
#   TEST_PG        superuser conninfo of a throwaway PostgreSQL
#   TEST_PG_DIR    its pg-local folder (not needed by these tests)
#   TEST_P100_SIM  the p100-sim binary (only for e2e_start_sim)
#   TEST_KYCD_WRAP optional wrapper command (word-split) put before
#                  `kycd serve` in e2e_start_kycd, e.g. tests/run.sh's
#                  "valgrind --quiet --error-exitcode=99 ...". Not used for
#                  e2e_kycd_cmd (foreground runs stay direct). With a wrapper,
#                  starts and stops wait up to 60 s, and e2e_stop_kycd fails
#                  on exit code 99 or a valgrind error or leak in the log; a
#                  kycd still running at exit is stopped (and checked) the
#                  same way before the processes are killed.
#
# Functions, in the order a test uses them:
#   e2e_fresh_db [BASE_CONNINFO]   new database; exports E2E_DB_URL
#   e2e_track_role ROLE [CONNINFO] drop cluster role ROLE at exit, after the
#                                  databases (CONNINFO: a superuser's, default
#                                  TEST_PG)
#   e2e_certs                      dev CA + server cert in the temp dir
#   e2e_free_port                  prints a free TCP port on 127.0.0.1
#   e2e_start_kycd [--no-migrate] [KYCD_X=v ...]
#                                  migrate, then serve in the background;
#                                  sets E2E_PORT, E2E_ADMIN_PORT (its admin
#                                  listener, plain HTTP), E2E_KYCD_PID, E2E_KYCD_LOG
#   post PATH BODY [curl args]     prints the HTTP status (000: no answer);
#   get PATH [curl args]           body in $E2E_RESP_BODY, headers in
#                                  $E2E_RESP_HEADERS. BODY "@file" sends a file.
#                                  E2E_AUTH (default "Bearer $E2E_TOKEN") and
#                                  E2E_CT (default application/json) give the
#                                  Authorization and Content-Type headers;
#                                  empty leaves the header out.
#   admin_get PATH [curl args]     the same on the admin listener (/metrics...)
#   sql "query"                    psql -XAtq on E2E_DB_URL
#   as_super SQL [CONNINFO]        one statement as the superuser (TEST_PG)
#   with_user CONNINFO USER        the same conninfo, as USER
#   try CONNINFO SQL               output and errors in $TRY_OUT, rc in $TRY_RC
#   e2e_kycd_cmd [--bare] [--without NAME] [KYCD_X=v ...] -- ARGS
#                                  kycd in the foreground (bounded); output in
#                                  $E2E_OUT, exit code in $E2E_RC
#   e2e_stop_kycd [--signaled]     SIGTERM, wait, assert exit 0 + stopped line
#   E2E_NEXT_PORT=P                the next e2e_start_kycd listens on P (once)
#   e2e_start_sim [--no-webhooks | --webhook-url URL] [p100-sim args]
#                                  p100-sim (TEST_P100_SIM) on a free port with
#                                  the dev certificates and a random API key;
#                                  webhooks go to the running kycd, or to the
#                                  port the next kycd will take (E2E_NEXT_PORT);
#                                  sets E2E_SIM_PORT, E2E_SIM_PID, E2E_SIM_LOG,
#                                  E2E_SIM_KEY_FILE, E2E_SIM_KEY
#   e2e_sim_env                    prints the KYCD_P100_* assignments (one a
#                                  line) that point kycd at the simulator
#   sim METHOD PATH [JSON]         the simulator (control API); prints the body,
#                                  status in $E2E_TMP/sim.code; non-zero if not 2xx
#   e2e_stop_sim                   SIGTERM the simulator, wait (bounded)
#   json_num KEY JSON / json_str KEY JSON
#                                  the first number / string value of KEY
#   e2e_wait_sql QUERY EXPECTED [SECONDS]
#                                  poll (100 ms steps, default 10 s) until the
#                                  query prints EXPECTED; last value in
#                                  $E2E_SQL_LAST; non-zero on timeout
#   e2e_wait_cmd SECONDS CMD...    poll until CMD succeeds; non-zero on timeout
#   e2e_wait_exit PID SECONDS      poll until PID has exited; non-zero on timeout
#   e2e_stall_request              a webhook whose body never ends (holds a drain);
#                                  sets E2E_STALLER
#   e2e_logfmt_track FILE          check FILE's kycd log lines at exit too (a
#                                  kycd the test started itself)
#   e2e_logfmt_check FILE... MSG   assert now that the kycd log lines parse
#   e2e_ms                         milliseconds since the epoch
#   assert_eq / assert_ne / assert_contains / assert_not_contains /
#   assert_match / pass / fail     print PASS/FAIL lines and count them
# At exit: background processes killed; every kycd log line of the test
# (E2E_KYCD_LOG files, each e2e_kycd_cmd output, tracked files) checked as
# strict logfmt by logfmt_check.py, one PASS or FAIL; databases dropped,
# private clusters stopped, temp dir removed, "N passed, M failed" printed;
# the exit code is non-zero on any failure or if the script stopped early.

set -Eeuo pipefail

# --- environment --------------------------------------------------------------

TEST_PG=${TEST_PG:-}
TEST_PG_DIR=${TEST_PG_DIR:-}
E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_KYCD_SRC=${TEST_KYCD_SRC:-$(cd "$E2E_LIB_DIR/../.." && pwd)}
TEST_KYCD_BIN=${TEST_KYCD_BIN:-}
E2E_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
# shellcheck source=tests/lib/ports.sh
source "$E2E_LIB_DIR/../lib/ports.sh"

if [ -z "$TEST_KYCD_BIN" ] || [ ! -x "$TEST_KYCD_BIN" ]; then
  echo "$E2E_NAME: TEST_KYCD_BIN is not set or not executable ('$TEST_KYCD_BIN')" >&2
  exit 2
fi
if [ -z "$TEST_PG" ]; then
  echo "$E2E_NAME: TEST_PG is not set (a superuser conninfo; tests/run.sh sets it)" >&2
  exit 2
fi
for tool in curl openssl psql timeout ss; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$E2E_NAME: needs $tool" >&2; exit 2; }
done

E2E_TMP=$(mktemp -d "/tmp/kycd-e2e-$E2E_NAME.XXXXXX")
chmod 755 "$E2E_TMP"
E2E_RESP_BODY=$E2E_TMP/resp.body
E2E_RESP_HEADERS=$E2E_TMP/resp.headers
E2E_OUT=$E2E_TMP/cmd.out
E2E_RC=0
E2E_PASS=0
E2E_FAIL=0
E2E_PIDS=()        # background processes to kill at exit
E2E_DBS=()         # "conninfo|dbname" to drop at exit
E2E_ROLES=()       # "conninfo|role" to drop at exit, after the databases
E2E_PG_DIRS=()     # private pg-local clusters to remove at exit
E2E_EXIT_HOOKS=()  # functions to run at exit, before the temp folder is removed
E2E_KYCD_PID=
E2E_KYCD_LOG=
E2E_KYCD_N=0
E2E_PORT=
E2E_ADMIN_PORT=
E2E_NEXT_PORT=
E2E_SIM_PORT=
E2E_SIM_PID=
E2E_SIM_LOG=
E2E_SIM_N=0
E2E_SIM_KEY=
E2E_SIM_KEY_FILE=
E2E_SQL_LAST=
E2E_LOGFMT_FILES=() # more files with kycd log lines to check at exit
TEST_P100_SIM=${TEST_P100_SIM:-}
E2E_KYCD_WRAP=()
read -r -a E2E_KYCD_WRAP <<<"${TEST_KYCD_WRAP:-}" || true
# Seconds a start waits for "listening" and a stop for the exit.
if [ "${#E2E_KYCD_WRAP[@]}" -gt 0 ]; then E2E_KYCD_WAIT=60; else E2E_KYCD_WAIT=10; fi
E2E_DB_URL=
E2E_CA=
E2E_T0=$SECONDS
E2E_ABORT=

# The webhook token: random, 48 hex digits, in a file as kycd reads it.
E2E_TOKEN=$(openssl rand -hex 24)
E2E_TOKEN_FILE=$E2E_TMP/webhook-tokens
printf '%s\n' "$E2E_TOKEN" >"$E2E_TOKEN_FILE"
E2E_AUTH="Bearer $E2E_TOKEN"
E2E_CT=application/json

# --- reporting ----------------------------------------------------------------

pass() { E2E_PASS=$((E2E_PASS + 1)); echo "PASS: $*"; }
fail() { E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL: $*"; }
e2e_section() { echo "--- $* ($((SECONDS - E2E_T0)) s)"; }

assert_eq() {
  local expected=$1 actual=$2 msg=$3
  if [ "$expected" = "$actual" ]; then pass "$msg"; else fail "$msg: expected '$expected', got '$actual'"; fi
}
assert_ne() {
  local unexpected=$1 actual=$2 msg=$3
  if [ "$unexpected" != "$actual" ]; then pass "$msg"; else fail "$msg: got '$actual'"; fi
}
# assert_contains HAYSTACK NEEDLE MESSAGE (fixed string)
assert_contains() {
  local hay=$1 needle=$2 msg=$3
  if [[ "$hay" == *"$needle"* ]]; then pass "$msg"; else fail "$msg: '$needle' not in: $(e2e__clip "$hay")"; fi
}
assert_not_contains() {
  local hay=$1 needle=$2 msg=$3 before at
  if [[ "$hay" != *"$needle"* ]]; then pass "$msg"; return 0; fi
  # Show where it was found, not just the start of a long log.
  before=${hay%%"$needle"*}
  at=$(( ${#before} > 120 ? ${#before} - 120 : 0 ))
  fail "$msg: found at character ${#before}: ...$(e2e__clip "${hay:$at:$(( ${#before} - at + ${#needle} + 120 ))}")..."
}
# assert_match STRING ERE MESSAGE
assert_match() {
  local s=$1 re=$2 msg=$3
  if [[ "$s" =~ $re ]]; then pass "$msg"; else fail "$msg: '$(e2e__clip "$s")' does not match /$re/"; fi
}
e2e__clip() {
  local s=${1//$'\n'/ | }
  if [ "${#s}" -gt 400 ]; then s="${s:0:400}..."; fi
  printf '%s' "$s"
}

# Stop the script here (kycd did not start, the database is unreachable, ...).
e2e_abort() {
  E2E_ABORT=$*
  exit 1
}

# --- exit ---------------------------------------------------------------------

e2e__on_err() {
  # With set -e the script is about to stop: say where.
  echo "ERROR: '$2' failed (exit $3) at line $1" >&2
}
trap 'e2e__on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR

e2e__cleanup() {
  local rc=$? pid dir item
  trap - ERR
  set +e
  # Under a wrapper (valgrind) the kycd a script leaves running must exit
  # normally too, or its leak check never runs: stop it and check it.
  if [ "${#E2E_KYCD_WRAP[@]}" -gt 0 ] && [ -n "$E2E_KYCD_PID" ] && kill -0 "$E2E_KYCD_PID" 2>/dev/null; then
    e2e_stop_kycd "kycd (still running at exit)"
  fi
  for pid in "${E2E_PIDS[@]}" $(jobs -p); do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${E2E_PIDS[@]}" $(jobs -p); do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  e2e__logfmt_at_exit
  for item in "${E2E_DBS[@]}"; do
    timeout 20 psql "${item%|*}" -XAtq -c "DROP DATABASE IF EXISTS \"${item##*|}\" WITH (FORCE)" >/dev/null 2>&1
  done
  for item in "${E2E_ROLES[@]}"; do
    # Its databases are gone; what it still owns or was granted in the
    # maintenance database goes with REASSIGN/DROP OWNED.
    timeout 20 psql "${item%|*}" -XAtq -c "DROP ROLE IF EXISTS \"${item##*|}\"" >/dev/null 2>&1 ||
      timeout 20 psql "${item%|*}" -XAtq -v ON_ERROR_STOP=1 \
        -c "REASSIGN OWNED BY \"${item##*|}\" TO CURRENT_USER" -c "DROP OWNED BY \"${item##*|}\"" \
        -c "DROP ROLE \"${item##*|}\"" >/dev/null 2>&1 ||
      echo "$E2E_NAME: could not drop role ${item##*|}" >&2
  done
  if [ "${#E2E_PG_DIRS[@]}" -gt 0 ]; then
    # shellcheck source=/dev/null
    source "$TEST_KYCD_SRC/deploy/pg-local.sh"
    for dir in "${E2E_PG_DIRS[@]}"; do
      pg_local_stop "$dir" >/dev/null 2>&1 || echo "$E2E_NAME: could not remove cluster $dir" >&2
    done
  fi
  # A script's own undo steps (E2E_EXIT_HOOKS: function names), after its
  # processes are gone and before the temp folder goes (an unmount).
  for item in "${E2E_EXIT_HOOKS[@]}"; do "$item"; done
  if [ -n "${E2E_KEEP_TMP:-}" ]; then echo "kept $E2E_TMP"; else rm -rf -- "$E2E_TMP"; fi
  if [ -n "$E2E_ABORT" ]; then
    fail "stopped early: $E2E_ABORT"
  elif [ "$rc" != 0 ] && [ "$E2E_FAIL" = 0 ]; then
    fail "script stopped early with exit code $rc"
  elif [ "$rc" != 0 ]; then
    echo "script stopped early with exit code $rc"
    E2E_FAIL=$((E2E_FAIL + 1))
  fi
  echo "$E2E_NAME: $E2E_PASS passed, $E2E_FAIL failed ($((SECONDS - E2E_T0)) s)"
  if [ "$E2E_FAIL" != 0 ]; then exit 1; fi
  exit 0
}
trap e2e__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

e2e_track_pid() { E2E_PIDS+=("$1"); }

# --- log format ---------------------------------------------------------------

# kycd's log must stay machine-readable whatever it carries (libpq errors,
# paths, P100's messages, request paths): logfmt_check.py reads every line
# kycd logged the way a log pipeline would. Lines that are not kycd log lines
# (valgrind, sanitizers, command output) are left alone; it knows them by
# their start (ts=).
E2E_LOGFMT=$E2E_LIB_DIR/logfmt_check.py

e2e_logfmt_track() { E2E_LOGFMT_FILES+=("$1"); }

# e2e_logfmt_check FILE... MESSAGE: PASS if every kycd log line in the
# files is valid logfmt, else FAIL with the offending lines (clipped).
e2e_logfmt_check() {
  local msg=${*: -1} out
  local files=("${@:1:$#-1}")
  if ! command -v python3 >/dev/null 2>&1; then
    fail "$msg: python3 (a listed dependency) is missing"
    return 0
  fi
  if out=$(python3 "$E2E_LOGFMT" "${files[@]}" 2>&1); then
    pass "$msg: $out"
  else
    fail "$msg: kycd log lines that are not valid logfmt:"
    printf '%s\n' "$out" | head -n 25 | cut -c 1-400 | sed 's/^/  /'
  fi
  return 0
}

e2e__logfmt_at_exit() {
  local f files=()
  for f in "$E2E_TMP"/kycd.*.log "$E2E_TMP"/logfmt.cmd.* "${E2E_LOGFMT_FILES[@]}"; do
    if [ -f "$f" ]; then files+=("$f"); fi
  done
  if [ "${#files[@]}" -eq 0 ]; then return 0; fi
  e2e_logfmt_check "${files[@]}" "every kycd log line of this test is logfmt"
}

# e2e_stall_request: a webhook to the running kycd whose body never ends (it
# sends 5 of the 100 bytes it declares, then waits, for at most 120 s), so a
# drain waits for it; sets E2E_STALLER (its pid, tracked). kycd gives up on
# it after header_timeout (the longest pause between two reads) or
# request_timeout: start kycd with both long enough.
e2e_stall_request() {
  python3 - "$E2E_PORT" "$E2E_CA" "$E2E_KYC_PATH" "$E2E_TOKEN" <<'PY' &
import socket, ssl, sys, time
port, ca, path, token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = ssl.create_default_context(cafile=ca).wrap_socket(
    socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.sendall(("POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":" % (path, token)).encode())
time.sleep(120)
PY
  E2E_STALLER=$!
  e2e_track_pid "$E2E_STALLER"
}

# e2e_wait_exit PID SECONDS: wait (0.1 s steps) until PID has exited; non-zero
# if it is still running after SECONDS.
e2e_wait_exit() {
  local pid=$1 i
  for i in $(seq 1 $(($2 * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  ! kill -0 "$pid" 2>/dev/null
}

# --- database -----------------------------------------------------------------

# Conninfo BASE with its database replaced by NAME (keyword or URI form).
e2e__with_db() {
  local base=$1 name=$2
  case $base in
    postgres://*|postgresql://*)
      local scheme=${base%%://*} rest=${base#*://} query=
      if [[ $rest == *\?* ]]; then query="?${rest#*\?}"; rest=${rest%%\?*}; fi
      printf '%s://%s/%s%s' "$scheme" "${rest%%/*}" "$name" "$query" ;;
    *)
      # libpq takes the last of repeated keywords; drop the old one anyway.
      printf '%s dbname=%s' "$(printf '%s' "$base" | sed -E 's/(^| )dbname=[^ ]*//g')" "$name" ;;
  esac
}

# e2e_fresh_db [BASE_CONNINFO]: create an empty database with a unique name
# (dropped at exit) and export its conninfo as E2E_DB_URL.
e2e_fresh_db() {
  local base=${1:-$TEST_PG} name
  name="e2e_${E2E_NAME#test_}_$$_$(openssl rand -hex 4)"
  timeout 30 psql "$base" -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$name\"" >/dev/null ||
    e2e_abort "cannot create database $name on $base"
  E2E_DBS+=("$base|$name")
  E2E_DB_URL=$(e2e__with_db "$base" "$name")
  export E2E_DB_URL
}

# e2e_two_roles NAME: the two roles of README's "Two roles" on a fresh
# database: OWNER (owns the database and schema public, migrates) and
# SERVICE (will serve with DML only), both NOSUPERUSER, dropped at exit;
# kyc_analyst made sure of (a cluster role). Sets OWNER, SERVICE,
# SUPER_URL (the database as the superuser), OWNER_URL, SERVICE_URL, and
# E2E_DB_URL=OWNER_URL.
e2e_two_roles() {
  as_super "DO \$\$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kyc_analyst') THEN
                CREATE ROLE kyc_analyst NOLOGIN; END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END \$\$" >/dev/null
  OWNER=kycd_${1}_owner_$$
  SERVICE=kycd_${1}_service_$$
  as_super "CREATE ROLE \"$OWNER\" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB" >/dev/null
  as_super "CREATE ROLE \"$SERVICE\" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB" >/dev/null
  e2e_track_role "$OWNER"
  e2e_track_role "$SERVICE"
  e2e_fresh_db
  SUPER_URL=$E2E_DB_URL
  as_super "ALTER DATABASE \"$(sql 'SELECT current_database()')\" OWNER TO \"$OWNER\"" >/dev/null
  as_super "ALTER SCHEMA public OWNER TO \"$OWNER\"" "$SUPER_URL" >/dev/null
  OWNER_URL=$(with_user "$SUPER_URL" "$OWNER")
  SERVICE_URL=$(with_user "$SUPER_URL" "$SERVICE")
  E2E_DB_URL=$OWNER_URL
}

# e2e_track_role ROLE [CONNINFO]: drop the cluster role ROLE at exit (after
# the databases, which it may own), as the superuser of CONNINFO (TEST_PG).
e2e_track_role() { E2E_ROLES+=("${2:-$TEST_PG}|$1"); }

# sql "query": one psql call on the test database, unaligned, tuples only.
sql() {
  timeout 30 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# as_super SQL [CONNINFO]: one statement as the superuser (TEST_PG).
as_super() { timeout 30 psql "${2:-$TEST_PG}" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# with_user CONNINFO USER: the same conninfo (key/value or URI), as USER.
with_user() {
  case $1 in
    postgres://*|postgresql://*)
      if [[ $1 == *\?* ]]; then printf '%s&user=%s' "$1" "$2"; else printf '%s?user=%s' "$1" "$2"; fi ;;
    *) printf '%s user=%s' "$(printf '%s' "$1" | sed -E 's/(^| )user=[^ ]*//g')" "$2" ;;
  esac
}

# try CONNINFO SQL: run SQL; output and errors (with SQLSTATE) in $TRY_OUT,
# exit code in $TRY_RC.
try() {
  TRY_RC=0
  TRY_OUT=$(timeout 30 psql "$1" -XAtq -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$2" 2>&1) || TRY_RC=$?
}


# --- TLS ----------------------------------------------------------------------

e2e_certs() {
  if [ -n "$E2E_CA" ]; then return 0; fi
  timeout 60 bash "$TEST_KYCD_SRC/certs/make-dev-certs.sh" "$E2E_TMP/certs" >/dev/null ||
    e2e_abort "make-dev-certs.sh failed"
  E2E_CA=$E2E_TMP/certs/ca.pem
  E2E_CERT=$E2E_TMP/certs/server.pem
  E2E_KEY=$E2E_TMP/certs/server.key
  E2E_CHAIN=$E2E_TMP/certs/chain.pem
}

# A TCP port nobody listens on (another process may still take it before
# kycd binds it: e2e_start_kycd retries with another port then).
e2e_free_port() { kycd_free_port; }

# --- kycd ---------------------------------------------------------------------

# The environment kycd runs with: nothing of ours but what is listed.
e2e__env() {
  local v
  E2E_ENV=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}" "LANG=C.UTF-8")
  for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TZ; do
    if [ -n "${!v:-}" ]; then E2E_ENV+=("$v=${!v}"); fi
  done
}

# The standard settings: this test's database, port, certificates, tokens;
# minus the names listed in $1 (space-separated).
e2e__std_env() {
  local skip=" ${1:-} " a
  for a in "KYCD_DATABASE_URL=$E2E_DB_URL" "KYCD_LISTEN=127.0.0.1:${E2E_PORT:-8443}" \
           "KYCD_TLS_CERT=$E2E_CERT" "KYCD_TLS_KEY=$E2E_KEY" "KYCD_TLS_CHAIN=$E2E_CHAIN" \
           "KYCD_WEBHOOK_TOKENS_FILE=$E2E_TOKEN_FILE" "KYCD_LOG_LEVEL=debug" "KYCD_RECONCILE=off" \
           "KYCD_ADMIN_LISTEN=127.0.0.1:${E2E__STD_ADMIN:-$(e2e_free_port)}"; do
    [[ $skip == *" ${a%%=*} "* ]] || E2E_ENV+=("$a")
  done
}

# e2e_kycd_cmd [--bare] [--without NAME] [--timeout S] [NAME=value ...] -- ARGS...
# Run kycd in the foreground for at most S seconds (default 20). --bare: no
# standard settings, only the assignments given; --without NAME: the
# standard settings but NAME (repeatable). Output (stdout and stderr) goes to
# $E2E_OUT, the exit code to $E2E_RC (124: timed out), the time taken in
# seconds to $E2E_SECS.
e2e_kycd_cmd() {
  local bare=0 limit=20 without='' t0
  e2e__env
  while [ $# -gt 0 ]; do
    case $1 in
      --bare) bare=1; shift ;;
      --without) without="$without $2"; shift 2 ;;
      --timeout) limit=$2; shift 2 ;;
      *) break ;;
    esac
  done
  # A foreground kycd gets an admin port of its own (a background one may run).
  if [ "$bare" = 0 ]; then e2e_certs; E2E__STD_ADMIN='' e2e__std_env "$without"; fi
  while [ $# -gt 0 ] && [ "$1" != -- ]; do E2E_ENV+=("$1"); shift; done
  if [ "${1:-}" = -- ]; then shift; fi
  E2E_RC=0
  t0=$(date +%s%N)
  timeout -k 2 "$limit" "${E2E_ENV[@]}" "$TEST_KYCD_BIN" "$@" >"$E2E_OUT" 2>&1 || E2E_RC=$?
  # The next run overwrites E2E_OUT: keep this one's log lines for the exit check.
  cp -- "$E2E_OUT" "$(mktemp "$E2E_TMP/logfmt.cmd.$(printf '%s' "${1:-none}" | tr -c 'a-z' _).XXXXXX")" \
    2>/dev/null || true
  E2E_SECS=$(( ($(date +%s%N) - t0) / 1000000 ))
  E2E_SECS="$((E2E_SECS / 1000)).$(printf '%03d' $((E2E_SECS % 1000)))"
  e2e__sanitizer_check "$E2E_OUT" "kycd $*"
}

# A sanitizer build (tests/run.sh "asan") reports into kycd's output: any
# report is a failure, whatever the test expected of that run.
e2e__sanitizer_check() {
  local file=$1 what=$2 hit
  hit=$(grep -m 3 -E 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:' "$file" 2>/dev/null || true)
  if [ -n "$hit" ]; then fail "$what: sanitizer report: $(e2e__clip "$hit")"; fi
  return 0
}

# e2e__valgrind_check LOG WHAT RC: a kycd run under TEST_KYCD_WRAP
# (valgrind --error-exitcode=99) fails on exit code 99 or on an error or a
# definite/indirect leak in its log. With --quiet valgrind prints no summary
# lines, only the reports themselves, hence the report patterns as well.
e2e__valgrind_check() {
  local file=$1 what=$2 rc=$3 re hit
  re='ERROR SUMMARY: [1-9]|(definitely|indirectly) lost: [1-9]|are (definitely|indirectly) lost in loss record'
  re+='|^==[0-9]+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised'
  re+='|Syscall param|Source and destination overlap|Process terminating)'
  hit=$(grep -E -m 1 "$re" "$file" 2>/dev/null || true)
  if [ "$rc" = 99 ] || [ -n "$hit" ]; then
    fail "$what: valgrind reports errors or leaks (exit $rc): $(e2e__clip "$hit")"
    echo "--- valgrind report (${file##*/}, first 150 lines):"
    grep -E '^==[0-9]+==' "$file" | head -n 150 || true
    echo "--- end of valgrind report"
  else
    pass "$what: valgrind: no errors, no definite or indirect leaks"
  fi
  return 0
}

e2e_migrate() {
  e2e_kycd_cmd --timeout 60 "$@" -- migrate
  if [ "$E2E_RC" != 0 ]; then
    cat "$E2E_OUT" >&2
    e2e_abort "kycd migrate failed (exit $E2E_RC)"
  fi
}

# e2e_start_kycd [--no-migrate] [NAME=value ...]: kycd serve in the
# background (under $TEST_KYCD_WRAP if set) with the standard settings plus
# the assignments; waits up to 10 s (60 s with a wrapper) for its
# "listening" line. It listens on a free port, or on
# $E2E_NEXT_PORT when that is set (consumed: the next start picks a free port
# again), e.g. the port a simulator already sends its webhooks to.
e2e_start_kycd() {
  local migrate=1 i preset
  if [ "${1:-}" = --no-migrate ]; then migrate=0; shift; fi
  e2e_certs
  if [ -n "$E2E_KYCD_PID" ] && kill -0 "$E2E_KYCD_PID" 2>/dev/null; then
    e2e_abort "e2e_start_kycd: a kycd is already running (pid $E2E_KYCD_PID)"
  fi
  if [ "$migrate" = 1 ]; then e2e_migrate "$@"; fi
  preset=$E2E_NEXT_PORT
  E2E_NEXT_PORT=
  for _ in 1 2 3; do
    if [ -n "$preset" ]; then E2E_PORT=$preset; else E2E_PORT=$(e2e_free_port); fi
    E2E_KYCD_N=$((E2E_KYCD_N + 1))
    E2E_KYCD_LOG=$E2E_TMP/kycd.$E2E_KYCD_N.log
    E2E_ADMIN_PORT=$(e2e_free_port)
    e2e__env
    E2E__STD_ADMIN=$E2E_ADMIN_PORT e2e__std_env
    E2E_ENV+=("$@")
    # env and the wrapper exec: $! is the pid of kycd (valgrind runs its
    # client in its own process), so SIGTERM reaches kycd itself.
    "${E2E_ENV[@]}" "${E2E_KYCD_WRAP[@]}" "$TEST_KYCD_BIN" serve >"$E2E_KYCD_LOG" 2>&1 &
    E2E_KYCD_PID=$!
    e2e_track_pid "$E2E_KYCD_PID"
    for i in $(seq 1 $((E2E_KYCD_WAIT * 10))); do
      if grep -q 'msg=listening' "$E2E_KYCD_LOG"; then
        echo "kycd pid $E2E_KYCD_PID listening on 127.0.0.1:$E2E_PORT (log $E2E_KYCD_LOG)"
        return 0
      fi
      kill -0 "$E2E_KYCD_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$E2E_KYCD_PID" 2>/dev/null; then
      kill -KILL "$E2E_KYCD_PID" 2>/dev/null || true
      wait "$E2E_KYCD_PID" 2>/dev/null || true
      sed 's/^/  kycd: /' "$E2E_KYCD_LOG"
      e2e_abort "kycd serve did not log 'listening' within $E2E_KYCD_WAIT s"
    fi
    wait "$E2E_KYCD_PID" 2>/dev/null || true
    # Someone took the port between the check and the bind: try another.
    if ! grep -qi 'cannot start the HTTPS\? server\|cannot bind\|address already in use' "$E2E_KYCD_LOG"; then
      break
    fi
    if [ -n "$preset" ]; then
      sed 's/^/  kycd: /' "$E2E_KYCD_LOG"
      e2e_abort "kycd serve could not bind the preset port $preset (E2E_NEXT_PORT)"
    fi
  done
  sed 's/^/  kycd: /' "$E2E_KYCD_LOG"
  e2e_abort "kycd serve exited before listening"
}

# e2e_stop_kycd [--signaled] [MESSAGE]: SIGTERM (unless the caller already
# sent it), wait up to 15 s (60 s with a wrapper); asserts exit code 0 and
# the "stopped" line, and with a wrapper that valgrind found nothing.
e2e_stop_kycd() {
  local signal=1
  if [ "${1:-}" = --signaled ]; then signal=0; shift; fi
  local what=${1:-kycd} pid=$E2E_KYCD_PID rc=0 limit=15
  if [ "${#E2E_KYCD_WRAP[@]}" -gt 0 ]; then limit=60; fi
  if [ -z "$pid" ]; then fail "$what: no kycd to stop"; return 0; fi
  if [ "$signal" = 1 ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  for _ in $(seq 1 $((limit * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$what: still running $limit s after SIGTERM (killed)"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  E2E_KYCD_PID=
  e2e__sanitizer_check "$E2E_KYCD_LOG" "$what"
  if [ "${#E2E_KYCD_WRAP[@]}" -gt 0 ]; then e2e__valgrind_check "$E2E_KYCD_LOG" "$what" "$rc"; fi
  assert_eq 0 "$rc" "$what exits 0 after SIGTERM"
  if grep -q 'msg=stopped' "$E2E_KYCD_LOG"; then
    pass "$what logs the 'stopped' line"
  else
    fail "$what logs the 'stopped' line; log tail: $(tail -n 5 "$E2E_KYCD_LOG")"
  fi
}

# --- HTTP ---------------------------------------------------------------------

e2e_url() { printf 'https://localhost:%s%s' "$E2E_PORT" "$1"; }

# e2e_curl PATH [curl args]: one request to kycd; prints the status.
e2e_curl() {
  local path=$1; shift
  local args=(-sS --max-time 20 --cacert "$E2E_CA" -o "$E2E_RESP_BODY" -D "$E2E_RESP_HEADERS"
              -w '%{http_code}')
  : >"$E2E_RESP_BODY"; : >"$E2E_RESP_HEADERS"
  curl "${args[@]}" "$@" "$(e2e_url "$path")" 2>"$E2E_TMP/curl.err" || true
}

# post PATH BODY [curl args]: POST a webhook; prints the HTTP status.
post() {
  local path=$1 body=$2; shift 2
  local args=(--data-binary "$body")
  if [ -n "${E2E_AUTH:-}" ]; then args+=(-H "Authorization: $E2E_AUTH"); fi
  if [ -n "${E2E_CT:-}" ]; then args+=(-H "Content-Type: $E2E_CT"); fi
  e2e_curl "$path" "${args[@]}" "$@"
}

# get PATH [curl args]: prints the HTTP status.
get() {
  local path=$1; shift
  e2e_curl "$path" "$@"
}

# admin_get PATH [curl args]: GET on the running kycd's admin listener
# (plain HTTP on 127.0.0.1:$E2E_ADMIN_PORT); prints the HTTP status, body
# and headers as for get.
admin_get() {
  local path=$1; shift
  : >"$E2E_RESP_BODY"; : >"$E2E_RESP_HEADERS"
  curl -sS --max-time 20 -o "$E2E_RESP_BODY" -D "$E2E_RESP_HEADERS" -w '%{http_code}' "$@" \
    "http://127.0.0.1:$E2E_ADMIN_PORT$path" 2>"$E2E_TMP/curl.err" || true
}

resp_body() { cat "$E2E_RESP_BODY"; }
# resp_header NAME: the value of a response header (last one), without CR.
resp_header() {
  grep -i "^$1:" "$E2E_RESP_HEADERS" | tail -n 1 | sed -E 's/^[^:]*:[[:space:]]*//' | tr -d '\r'
}

# --- P100 simulator -----------------------------------------------------------

e2e_ms() { date +%s%3N; }

# json_num KEY JSON: the first number value of "KEY" in JSON ("" if none).
json_num() {
  local m
  m=$(grep -oE "\"$1\":-?[0-9.]+" <<<"$2" | head -n 1) || true
  printf '%s' "${m#*:}"
}
# json_str KEY JSON: the first string value of "KEY" in JSON (no escapes).
json_str() {
  local m
  m=$(grep -oE "\"$1\":\"[^\"]*\"" <<<"$2" | head -n 1) || true
  m=${m#*:\"}
  printf '%s' "${m%\"}"
}

# e2e_start_sim [--no-webhooks | --webhook-url URL] [p100-sim args ...]:
# p100-sim in the background on a free port of 127.0.0.1, with the dev
# certificates (kycd's CA) and a random API key in a file (kept across
# restarts of the simulator). Webhooks go to URL, else to the running kycd,
# else to https://localhost:$E2E_NEXT_PORT/webhooks/p100 (chosen here when
# unset; the next e2e_start_kycd listens there), with this test's webhook
# token, kycd's CA and --retry-scale 0.01. Waits up to 10 s for the
# simulator's listening line.
e2e_start_sim() {
  local url='' hooks=1 port i args
  while [ $# -gt 0 ]; do
    case $1 in
      --no-webhooks) hooks=0; shift ;;
      --webhook-url) url=$2; shift 2 ;;
      *) break ;;
    esac
  done
  if [ -z "$TEST_P100_SIM" ] || [ ! -x "$TEST_P100_SIM" ]; then
    e2e_abort "TEST_P100_SIM is not set or not executable ('$TEST_P100_SIM')"
  fi
  if [ -n "$E2E_SIM_PID" ] && kill -0 "$E2E_SIM_PID" 2>/dev/null; then
    e2e_abort "e2e_start_sim: a simulator is already running (pid $E2E_SIM_PID)"
  fi
  e2e_certs
  if [ -z "$E2E_SIM_KEY_FILE" ]; then
    E2E_SIM_KEY=$(openssl rand -hex 20)
    E2E_SIM_KEY_FILE=$E2E_TMP/p100-api-key
    ( umask 077; printf '%s\n' "$E2E_SIM_KEY" >"$E2E_SIM_KEY_FILE" )
  fi
  if [ "$hooks" = 1 ] && [ -z "$url" ]; then
    if [ -n "$E2E_KYCD_PID" ] && kill -0 "$E2E_KYCD_PID" 2>/dev/null; then
      url="https://localhost:$E2E_PORT/webhooks/p100"
    else
      if [ -z "$E2E_NEXT_PORT" ]; then E2E_NEXT_PORT=$(e2e_free_port); fi
      url="https://localhost:$E2E_NEXT_PORT/webhooks/p100"
    fi
  fi
  for _ in 1 2 3; do
    port=$(e2e_free_port)
    E2E_SIM_N=$((E2E_SIM_N + 1))
    E2E_SIM_LOG=$E2E_TMP/sim.$E2E_SIM_N.log
    args=(--listen "127.0.0.1:$port" --cert "$E2E_CERT" --key "$E2E_KEY" --api-key-file "$E2E_SIM_KEY_FILE")
    if [ "$hooks" = 1 ]; then
      args+=(--webhook-url "$url" --webhook-token-file "$E2E_TOKEN_FILE" --webhook-ca "$E2E_CA"
             --retry-scale 0.01)
    fi
    "$TEST_P100_SIM" "${args[@]}" "$@" >"$E2E_SIM_LOG.out" 2>"$E2E_SIM_LOG" &
    E2E_SIM_PID=$!
    e2e_track_pid "$E2E_SIM_PID"
    for i in $(seq 1 100); do
      if grep -q "p100-sim listening port=$port" "$E2E_SIM_LOG.out" 2>/dev/null; then
        E2E_SIM_PORT=$port
        export E2E_SIM_PORT E2E_SIM_KEY_FILE
        echo "p100-sim pid $E2E_SIM_PID listening on 127.0.0.1:$port, webhooks to ${url:-nowhere} (log $E2E_SIM_LOG)"
        return 0
      fi
      kill -0 "$E2E_SIM_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$E2E_SIM_PID" 2>/dev/null; then
      kill -KILL "$E2E_SIM_PID" 2>/dev/null || true
      wait "$E2E_SIM_PID" 2>/dev/null || true
      sed 's/^/  sim: /' "$E2E_SIM_LOG"
      e2e_abort "p100-sim did not say it was listening within 10 s"
    fi
    wait "$E2E_SIM_PID" 2>/dev/null || true
    # Most likely someone took the port: try another.
  done
  sed 's/^/  sim: /' "$E2E_SIM_LOG"
  e2e_abort "p100-sim exited before listening"
}

# e2e_stop_sim: SIGTERM the simulator and wait up to 10 s (then SIGKILL).
# Returns the simulator's exit code.
e2e_stop_sim() {
  local pid=$E2E_SIM_PID rc=0
  if [ -z "$pid" ]; then return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  E2E_SIM_PID=
  return "$rc"
}

# e2e_sim_env: the assignments that point kycd at the simulator, one a line:
#   mapfile -t SIM_ENV < <(e2e_sim_env); e2e_start_kycd "${SIM_ENV[@]}" ...
e2e_sim_env() {
  printf '%s\n' "KYCD_P100_BASE_URL=https://localhost:$E2E_SIM_PORT" \
    "KYCD_P100_API_KEY_FILE=$E2E_SIM_KEY_FILE" "KYCD_P100_CA_FILE=$E2E_CA"
}

# sim METHOD PATH [JSON]: one request to the simulator (meant for /_sim/;
# sends no API key); prints the body; the status goes to $E2E_TMP/sim.code.
# Returns non-zero unless the status is 2xx.
sim() {
  local method=$1 path=$2 body=${3:-} code f=$E2E_TMP/sim.$BASHPID
  local args=(-sS --max-time 20 --cacert "$E2E_CA" -X "$method" -o "$f.body" -w '%{http_code}')
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
  : >"$f.body"
  code=$(curl "${args[@]}" "https://localhost:$E2E_SIM_PORT$path" 2>"$f.err") || code=000
  printf '%s\n' "$code" >"$E2E_TMP/sim.code"
  cat "$f.body"
  rm -f -- "$f.body" "$f.err"
  [[ $code == 2?? ]]
}

# e2e_schema_upto N: the test database at schema N, as an older kycd left
# it: migrations 001..N applied from sql/ by psql, each in one transaction,
# and recorded in kyc.schema_migrations as `kycd migrate` records them (so
# a later `kycd migrate` applies only the newer ones).
e2e_schema_upto() {
  local upto=$1 f b
  sql "CREATE SCHEMA kyc; CREATE TABLE kyc.schema_migrations (version integer PRIMARY KEY,
       name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp())" >/dev/null
  for f in "$TEST_KYCD_SRC"/sql/[0-9]*.sql; do
    b=$(basename "$f" .sql)
    [ "$((10#${b%%_*}))" -le "$upto" ] || continue
    timeout 60 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null 2>&1 || e2e_abort "applying $b"
    sql "INSERT INTO kyc.schema_migrations VALUES ($((10#${b%%_*})), '$b', '$(sha256sum "$f" | cut -d' ' -f1)')" >/dev/null
  done
}

# e2e_periods_diff: "MISSING|EXTRA|CHANGES": rows of the history's periods
# (kyc.derived_periods, sql/018) not in kyc.periods, rows of kyc.periods not
# in them, and the number of kyc.status_changes rows. "0|0|N": kycd kept
# one period per change, each as the history defines it.
e2e_periods_diff() {
  sql "SELECT (SELECT count(*) FROM (SELECT * FROM kyc.derived_periods EXCEPT ALL SELECT * FROM kyc.periods) m)
       || '|' || (SELECT count(*) FROM (SELECT * FROM kyc.periods EXCEPT ALL SELECT * FROM kyc.derived_periods) x)
       || '|' || (SELECT count(*) FROM kyc.status_changes)"
}

# e2e_wait_sql QUERY EXPECTED [SECONDS]: poll every 100 ms (default 10 s)
# until the query's output equals EXPECTED. The last output is in
# $E2E_SQL_LAST. Returns non-zero on timeout.
e2e_wait_sql() {
  local q=$1 want=$2 limit=${3:-10} end
  end=$(( $(e2e_ms) + limit * 1000 ))
  while :; do
    E2E_SQL_LAST=$(sql "$q" 2>&1) || true
    if [ "$E2E_SQL_LAST" = "$want" ]; then return 0; fi
    if [ "$(e2e_ms)" -ge "$end" ]; then return 1; fi
    sleep 0.1
  done
}

# e2e_wait_cmd SECONDS CMD...: run CMD every 100 ms until it succeeds, for at
# most SECONDS. Returns non-zero on timeout.
e2e_wait_cmd() {
  local limit=$1 end
  shift
  end=$(( $(e2e_ms) + limit * 1000 ))
  while :; do
    if "$@"; then return 0; fi
    if [ "$(e2e_ms)" -ge "$end" ]; then return 1; fi
    sleep 0.1
  done
}

# --- payloads -----------------------------------------------------------------

e2e_uuid() { cat /proc/sys/kernel/random/uuid; }

# P100's words (src/core/vocab.c, through `kycd vocabulary`): the payload
# helpers below refuse a value P100 does not document, so a test cannot
# invent one by accident; a test of undocumented values says so by using
# the *_undocumented forms.
# p100_known FIELD VALUE: whether P100 documents VALUE for FIELD (a field of
# `kycd vocabulary`).
p100_known() {
  if [ -z "${E2E__VOCAB:-}" ]; then
    E2E__VOCAB=$("$TEST_KYCD_BIN" vocabulary --p100) || e2e_abort "kycd vocabulary failed"
  fi
  grep -qxF "$1"$'\t'p100$'\t'"$2" <<<"$E2E__VOCAB"
}
# p100_word FIELD VALUE: prints VALUE if P100 documents it for FIELD, or
# aborts the test.
p100_word() {
  if ! p100_known "$1" "$2"; then
    echo "test data: '$2' is not a value P100 documents for $1 (kycd vocabulary)" >&2
    e2e_abort "test data: '$2' is not P100's $1"
  fi
  printf '%s' "$2"
}

# kyc_body USER VSTATUS ASTATUS [REASON]: P100's values only.
kyc_body() {
  p100_word verificationStatus "$2" >/dev/null
  p100_word attemptStatus "$3" >/dev/null
  kyc_body_undocumented "$@"
}
# kyc_body_undocumented USER VSTATUS ASTATUS [REASON]: any values.
kyc_body_undocumented() {
  if [ -n "${4:-}" ]; then
    printf '{"externalUserId":"%s","verificationStatus":"%s","attemptStatus":"%s","rejectionReason":"%s"}' "$1" "$2" "$3" "$4"
  else
    printf '{"externalUserId":"%s","verificationStatus":"%s","attemptStatus":"%s"}' "$1" "$2" "$3"
  fi
}
# status_body USER STATUS (POA, KYC file added, user status): a value one
# of the three documents; status_body_undocumented: any value.
status_body() {
  p100_known poaVerificationStatus.status "$2" || p100_known kycFileAdded.status "$2" ||
    p100_known userStatus.status "$2" || p100_word "a webhook's status" "$2" >/dev/null
  status_body_undocumented "$@"
}
status_body_undocumented() { printf '{"externalUserId":"%s","status":"%s"}' "$1" "$2"; }

E2E_KYC_PATH=/webhooks/p100/kyc-verification-status
E2E_POA_PATH=/webhooks/p100/poa-verification-status
E2E_FILE_PATH=/webhooks/p100/kyc-file-added
E2E_USER_PATH=/webhooks/p100/user-status

events_count() { sql "SELECT count(*) FROM kyc.webhook_events"; }

# --- private clusters (for tests that stop the database) ---------------------

# A port for a private cluster: random, below the kernel's ephemeral range
# (32768 and up) and away from pg-local's default scan (55432 and up): the
# cluster is stopped and started again on it, and nobody else must take it
# meanwhile (another test's cluster would, from the default scan).

# e2e_private_pg_drop [DIR [CONNINFO]]: remove a private cluster now
# (default: PRIV_DIR, PRIV_PG) and forget it and its databases, so that the
# cleanup at exit does not look for them.
e2e_private_pg_drop() {
  local dir=${1:-$PRIV_DIR} pg=${2:-$PRIV_PG} keep=() item
  pg_local_stop "$dir" >/dev/null 2>&1 || echo "could not remove cluster $dir" >&2
  for item in "${E2E_PG_DIRS[@]}"; do [ "$item" = "$dir" ] || keep+=("$item"); done
  E2E_PG_DIRS=("${keep[@]}")
  keep=()
  for item in "${E2E_DBS[@]}"; do [ "${item%|*}" = "$pg" ] || keep+=("$item"); done
  E2E_DBS=("${keep[@]}")
}

# e2e_private_pg: a new private cluster with a fresh database (E2E_DB_URL);
# sets PRIV_DIR and PRIV_PG.
e2e_private_pg() {
  # shellcheck source=deploy/pg-local.sh
  source "$TEST_KYCD_SRC/deploy/pg-local.sh"
  local ok=0 port
  for _ in 1 2 3; do
    port=$(e2e_free_port) || break
    if pg_local_start "" "$port" >"$E2E_TMP/pg-start.log" 2>&1; then ok=1; break; fi
  done
  [ "$ok" = 1 ] || { cat "$E2E_TMP/pg-start.log"; e2e_abort "cannot start a private PostgreSQL"; }
  PRIV_DIR=$PGLOCAL_DIR
  PRIV_PG=$PGLOCAL_CONNINFO
  E2E_PG_DIRS+=("$PRIV_DIR")
  echo "private cluster $PRIV_DIR ($PRIV_PG)"
  e2e_fresh_db "$PRIV_PG"
}

# --- P100's retry horizon -------------------------------------------------------

# P100 retries a webhook five times over two minutes, then gives up
# (docs/p100-api.md, "Webhooks"); the test senders retry every 200 ms for
# longer. tests/tools/p100_horizon.py reads their --times files (one line a
# delivery: first attempt, the 200) and counts what P100 would have lost: a
# 200 after the horizon (the last attempt at 120 s plus the answer P100
# waits for), or no 200 at all after trying that long. Computed from the
# recorded times: no test waits two minutes for it.
E2E_HORIZON=$E2E_LIB_DIR/../tools/p100_horizon.py

# p100_lost_check MAX WHAT TIMES_FILE... [-- p100_horizon.py args]: prints the
# helper's line with the horizon used, asserts that at most MAX deliveries
# would have been lost (and that the helper read the files); sets P100_LOST,
# P100_IN_TIME, P100_UNFINISHED, P100_SLOWEST_MS and P100_HORIZON_LINE.
p100_lost_check() {
  local max=$1 what=$2 out rc=0 lost
  shift 2
  local files=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); shift; done
  if [ "${1:-}" = -- ]; then shift; args=("$@"); fi
  out=$(python3 "$E2E_HORIZON" "${args[@]}" "${files[@]}" 2>"$E2E_TMP/horizon.err") || rc=$?
  P100_HORIZON_LINE=$(grep '^p100_horizon ' <<<"$out" || true)
  echo "$what: $P100_HORIZON_LINE"
  sed 's/^/  /' "$E2E_TMP/horizon.err"
  lost=$(grep -oE ' lost=[0-9]+' <<<"$P100_HORIZON_LINE" | cut -d= -f2 || true)
  P100_LOST=${lost:-?}
  P100_IN_TIME=$(grep -oE ' in_time=[0-9]+' <<<"$P100_HORIZON_LINE" | cut -d= -f2 || true)
  P100_UNFINISHED=$(grep -oE ' unfinished=[0-9]+' <<<"$P100_HORIZON_LINE" | cut -d= -f2 || true)
  P100_SLOWEST_MS=$(grep -oE ' slowest_ms=[0-9]+' <<<"$P100_HORIZON_LINE" | cut -d= -f2 || true)
  if [ "$rc" != 0 ] || [ -z "$lost" ]; then
    fail "$what: p100_horizon.py could not read ${files[*]} (exit $rc)"
    return 0
  fi
  local horizon
  horizon=$(grep -oE 'horizon_ms=[0-9]+' <<<"$P100_HORIZON_LINE" | cut -d= -f2)
  assert_eq 1 "$([ "$lost" -le "$max" ] && echo 1 || echo 0)" \
    "$what: deliveries P100 would have lost (200 later than ${horizon} ms after the first attempt, or none): $lost (at most $max)"
}

# p100_horizon_selftest: the helper on made-up times, so that an assertion
# built on it is known to be able to fail: a 200 exactly at the horizon is
# in time, one a millisecond later is lost, a sender given up is lost, one
# stopped early is only unfinished.
p100_horizon_selftest() {
  local f=$E2E_TMP/horizon-selftest.times out
  printf '%s\n' "h-ok 1 0 450 200 1" "h-edge 1 1000 131000 200 650" "h-late 1 2000 132001 200 651" \
    "h-stop 2 0 5000 stopped 25" >"$f"
  out=$(python3 "$E2E_HORIZON" "$f" 2>&1) || true
  printf '  selftest: %s\n' "${out//$'\n'/$'\n'  selftest: }"
  assert_contains "$out" "horizon_ms=130000 (last_attempt_ms=120000 + answer_wait_ms=10000) deliveries=4 in_time=2 lost=1 late=1 given_up=0 unfinished=1" \
    "p100_horizon.py: one 200 a millisecond after the 130 s horizon is one lost delivery"
  assert_contains "$out" "lost h-late step 1: first_ms=2000 done_ms=132001 took_ms=130001" \
    "p100_horizon.py names the late delivery"
  printf '%s\n' "h-gone 1 0 1210 lost 5" >"$f"
  out=$(python3 "$E2E_HORIZON" --scale 0.01 "$f" 2>&1) || true
  assert_contains "$out" "deliveries=1 in_time=0 lost=1 late=0 given_up=1" \
    "p100_horizon.py: a delivery the sender gave up is lost, however early"
  printf '%s\n' "h-bad 1 0" >"$f"
  if python3 "$E2E_HORIZON" "$f" >/dev/null 2>&1; then
    fail "p100_horizon.py refuses a malformed line"
  else
    pass "p100_horizon.py refuses a malformed line"
  fi
}
