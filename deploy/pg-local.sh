#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and local runs, in a private
# folder under /tmp. Nothing of the system's PostgreSQL setup is touched.
#
# - initdb refuses to run as root, so as root every server command runs as the
#   `postgres` user (runuser -u postgres --), from inside the cluster folder:
#   the postgres user only ever needs to reach that folder, never the repo.
#   As any other user the commands run as that user.
# - The server listens only on 127.0.0.1 and on a unix socket in the cluster
#   folder itself, on a given port or the first free one from 55432 upward.
# - Authentication is `trust` (only local clients can reach it). Durability
#   settings (fsync, synchronous_commit, full_page_writes) keep their defaults:
#   the product promises durability and its tests must not cheat. Only initdb
#   runs with --no-sync, which does not affect the running server.
#
# Layout of DIR: data/ (PGDATA), log (server log), port, .s.PGSQL.<port>
# (the socket), .pg-local (marker: pg_local_stop only ever removes a folder
# that has it).
#
# As a library (`source deploy/pg-local.sh`; sets no shell options):
#   pg_local_start [DIR [PORT]]    initdb + start. DIR empty or absent: a new
#                                  mktemp -d folder under /tmp. Exports
#                                  PGLOCAL_DIR, PGLOCAL_PORT, PGLOCAL_SOCKET
#                                  (the socket's folder, usable as libpq host)
#                                  and PGLOCAL_CONNINFO
#                                  ("host=127.0.0.1 port=P user=postgres dbname=postgres").
#   pg_local_stop [DIR]                 stop (pg_ctl -m fast) and rm -rf DIR
#   pg_local_stop_server_only [DIR]     stop, keep the data ("database down")
#   pg_local_start_server_only [DIR]    start it again, same port and data
#   pg_local_restart [DIR]              both of the above
# DIR defaults to $PGLOCAL_DIR in all but pg_local_start. All return non-zero
# on failure (with a message on stderr) and never exit the caller's shell.
#
# As a command (prints PGLOCAL_*=... lines for eval on start):
#   deploy/pg-local.sh start [DIR [PORT]]
#   deploy/pg-local.sh stop DIR | stop-server DIR | start-server DIR | restart DIR
#   e.g.  eval "$(deploy/pg-local.sh start)"; psql "$PGLOCAL_CONNINFO"; deploy/pg-local.sh stop "$PGLOCAL_DIR"
#
# Environment: PGLOCAL_PGBIN (default /usr/lib/postgresql/15/bin).

: "${PGLOCAL_PGBIN:=/usr/lib/postgresql/15/bin}"

_pg_local_err() { echo "pg-local: $*" >&2; }

# Run a PostgreSQL command as the cluster's owner, from inside DIR ($1).
_pg_local_run() {
  local dir=$1; shift
  if [ "$(id -u)" = 0 ]; then
    (cd "$dir" && runuser -u postgres -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

# Is anything listening on TCP port $1?
_pg_local_port_busy() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# Print the first free port at or above $1 (up to 200 tries).
_pg_local_free_port() {
  local port=$1 last=$(( $1 + 200 ))
  while [ "$port" -lt "$last" ]; do
    if ! _pg_local_port_busy "$port"; then echo "$port"; return 0; fi
    port=$((port + 1))
  done
  _pg_local_err "no free TCP port in $1..$((last - 1))"
  return 1
}

# Resolve DIR ($1 or $PGLOCAL_DIR) to an absolute path of a pg-local folder.
_pg_local_dir() {
  local dir=${1:-${PGLOCAL_DIR:-}}
  if [ -z "$dir" ]; then _pg_local_err "no DIR given and PGLOCAL_DIR is not set"; return 1; fi
  if [ ! -f "$dir/.pg-local" ]; then _pg_local_err "$dir is not a pg-local cluster folder"; return 1; fi
  (cd "$dir" && pwd -P)
}

_pg_local_export() {
  local dir=$1 port
  port=$(cat "$dir/port") || return 1
  export PGLOCAL_DIR=$dir
  export PGLOCAL_PORT=$port
  export PGLOCAL_SOCKET=$dir
  export PGLOCAL_CONNINFO="host=127.0.0.1 port=$port user=postgres dbname=postgres"
}

# Write the server settings that differ from initdb's defaults.
_pg_local_write_conf() {
  local dir=$1 port=$2
  echo "$port" >"$dir/port" || return 1
  # shellcheck disable=SC2016  # $1 is expanded by that sh
  _pg_local_run "$dir" sh -c 'cat >"$1"' sh "$dir/data/pg-local.conf" <<EOF || return 1
# written by deploy/pg-local.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
EOF
}

_pg_local_pg_ctl_start() {
  local dir=$1
  _pg_local_run "$dir" "$PGLOCAL_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 120 start >/dev/null
}

pg_local_start() {
  local dir=${1:-}
  if [ -n "$dir" ]; then _pg_local_setup "$dir" "${2:-}"; return; fi
  # A folder made here is removed again if the start fails (its log was
  # already printed), so a failed start leaves nothing behind.
  dir=$(mktemp -d /tmp/kycd-pg.XXXXXX) || return 1
  if ! _pg_local_setup "$dir" "${2:-}"; then
    _pg_local_run "$dir" "$PGLOCAL_PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf -- "$dir"
    return 1
  fi
}

_pg_local_setup() {
  local dir=$1 want_port=${2:-} port locale tries
  if [ ! -x "$PGLOCAL_PGBIN/initdb" ]; then
    _pg_local_err "no $PGLOCAL_PGBIN/initdb (install postgresql-15, or set PGLOCAL_PGBIN)"
    return 1
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    _pg_local_err "running as root but there is no postgres user (install postgresql-15)"
    return 1
  fi

  mkdir -p "$dir" || return 1
  if [ -n "$(ls -A "$dir")" ]; then _pg_local_err "$dir is not empty"; return 1; fi
  dir=$(cd "$dir" && pwd -P) || return 1
  chmod 755 "$dir" || return 1
  : >"$dir/.pg-local" || return 1
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir" || return 1
    if ! runuser -u postgres -- test -w "$dir"; then
      _pg_local_err "the postgres user cannot reach $dir (a parent folder is not searchable by it); use a folder under /tmp"
      return 1
    fi
  fi

  # C.UTF-8 ships with Debian's libc; fall back to the plain C locale elsewhere.
  if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then locale=C.UTF-8; else locale=C; fi
  if ! _pg_local_run "$dir" "$PGLOCAL_PGBIN/initdb" -D "$dir/data" -U postgres -A trust \
         -E UTF8 --locale="$locale" --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    _pg_local_err "initdb failed in $dir"
    return 1
  fi
  _pg_local_run "$dir" sh -c "echo \"include = 'pg-local.conf'\" >>\"\$1\"" sh "$dir/data/postgresql.conf" || return 1

  # A port picked here can be taken by someone else before the server binds
  # it; then try the next free one (only when no port was asked for).
  port=${want_port:-55432}
  tries=0
  while :; do
    if [ -z "$want_port" ]; then port=$(_pg_local_free_port "$port") || return 1; fi
    _pg_local_write_conf "$dir" "$port" || return 1
    if _pg_local_pg_ctl_start "$dir"; then break; fi
    tries=$((tries + 1))
    if [ -n "$want_port" ] || [ "$tries" -ge 5 ] || ! grep -q 'could not bind\|could not create any TCP/IP sockets' "$dir/log"; then
      tail -n 20 "$dir/log" >&2
      _pg_local_err "could not start PostgreSQL in $dir (log: $dir/log)"
      return 1
    fi
    port=$((port + 1))
  done
  _pg_local_export "$dir"
}

pg_local_stop_server_only() {
  local dir
  dir=$(_pg_local_dir "${1:-}") || return 1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  if ! _pg_local_run "$dir" "$PGLOCAL_PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null; then
    # Last resort: the postmaster's PID (first line of postmaster.pid).
    local pid
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) || pid=
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      _pg_local_err "pg_ctl stop failed; sending SIGQUIT to postmaster $pid"
      kill -QUIT "$pid" 2>/dev/null || true
      local _
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then _pg_local_err "postmaster $pid did not stop"; return 1; fi
    fi
  fi
}

pg_local_start_server_only() {
  local dir
  dir=$(_pg_local_dir "${1:-}") || return 1
  if ! _pg_local_pg_ctl_start "$dir"; then
    tail -n 20 "$dir/log" >&2
    _pg_local_err "could not start PostgreSQL in $dir (log: $dir/log)"
    return 1
  fi
  _pg_local_export "$dir"
}

pg_local_restart() {
  pg_local_stop_server_only "${1:-}" && pg_local_start_server_only "${1:-}"
}

pg_local_stop() {
  local dir
  dir=$(_pg_local_dir "${1:-}") || return 1
  pg_local_stop_server_only "$dir" || return 1
  case $dir in
    /|/tmp|/root|/home|"$HOME") _pg_local_err "refusing to remove $dir"; return 1 ;;
  esac
  rm -rf -- "$dir" || return 1
  if [ "${PGLOCAL_DIR:-}" = "$dir" ]; then
    unset PGLOCAL_DIR PGLOCAL_PORT PGLOCAL_SOCKET PGLOCAL_CONNINFO
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  usage="usage: pg-local.sh start [DIR [PORT]] | stop DIR | stop-server DIR | start-server DIR | restart DIR"
  cmd=${1:-}
  case $cmd in
    start)
      pg_local_start "${2:-}" "${3:-}"
      for v in PGLOCAL_DIR PGLOCAL_PORT PGLOCAL_SOCKET PGLOCAL_CONNINFO; do
        printf 'export %s=%q\n' "$v" "${!v}"
      done ;;
    stop)         pg_local_stop "${2:?$usage}" ;;
    stop-server)  pg_local_stop_server_only "${2:?$usage}" ;;
    start-server) pg_local_start_server_only "${2:?$usage}" ;;
    restart)      pg_local_restart "${2:?$usage}" ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
fi
