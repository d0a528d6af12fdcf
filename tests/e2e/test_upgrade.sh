#!/usr/bin/env bash
# shellcheck disable=SC2016  # ${Version} is dpkg-query's; the sh -c script takes $1...
# kycd-test: once
# End-to-end: an upgrade from the previous commit's package to this one's,
# with deliveries in the spool, under a real systemd. docs/operations.md's
# "Upgrade" is the procedure tested here.
#
#   1. the old package: the commit KYCD_UPGRADE_FROM (default HEAD~1) of
#      TEST_KYCD_SRC, checked out into the temp dir (a `git clone --shared`:
#      nothing of the developer's checkout changes), configured Release
#      without the tests, built with -j2 on the CivetWeb source the test's
#      build already fetched (nothing downloaded), and cpack'd; the new
#      package: cpack of TEST_KYCD_BUILD. The new version must sort above
#      the old one (dpkg --compare-versions), or it would be no upgrade;
#   2. systemd as PID 1 in a podman container (runc, host network, so it
#      reaches the test's private PostgreSQL on 127.0.0.1), from a Debian 12
#      image made offline from the mmdebstrap rootfs test_container.sh caches,
#      plus systemd and the package's libraries (cached as an image);
#   3. old package installed with dpkg, configured as an operator would
#      (certificates, secrets, /etc/kycd/kycd.conf edited), `kycd migrate`
#      with the owner's role, `systemctl enable --now kycd`; deliveries with
#      the database up are stored; then the database stops: deliveries are
#      answered 200 from the spool (segments on disk);
#   4. `dpkg -i` of the new package while they are spooled: its postinst
#      restarts the service (a new main PID, running the new version, as
#      its /status says); deliveries still answered 200 into the spool;
#   5. the database comes back with a schema older than the new binary's
#      (for real when the old commit has fewer migrations; otherwise made so
#      by removing the newest migration's record, as test_startdown.sh does):
#      kycd keeps spooling, replays nothing, and says why
#      (kycd_db_schema_mismatch 1); deliveries answered 200 meanwhile;
#   6. `kycd migrate` (the simulated case: the record put back, then migrate):
#      the running kycd replays its spool without a restart; every delivery
#      answered 200 is in kyc.webhook_events exactly once, nothing else is,
#      and the spool is empty;
#   7. rollback: the old package installed again, the service restarted on it;
#   8. the other order: the old kycd stopped with deliveries in its spool,
#      the database back a release older, the new package installed (a
#      stopped service stays stopped) and the service started before
#      `kycd migrate`: it refuses, systemd keeps starting it every 2 s,
#      webhooks get no answer, the spool stays; after `kycd migrate` the
#      next start replays it, every 200 stored once;
#   9. `dpkg -r` stops the service and keeps the spool folder.
# Each phase prints its duration.
#
# Where podman cannot run containers, or systemd cannot boot in one, it
# prints why in one line and exits 77 (ctest shows it as skipped; tests/run.sh
# fails the run unless TEST_ALLOW_SKIP names it).
#
# Must never: install anything into this machine's dpkg database (the
# packages go into the container only), leave a container behind, change
# the developer's checkout, print a secret.
#
# Environment: TEST_KYCD_BIN, TEST_KYCD_BUILD, TEST_KYCD_SRC, TEST_PG
# (lib.sh); KYCD_UPGRADE_FROM (a commit of TEST_KYCD_SRC; default HEAD~1);
# TEST_CONTAINER_CACHE (default: container-cache beside TEST_KYCD_BIN,
# shared with test_container.sh).

# shellcheck source=tests/e2e/podman.sh
source "$(dirname "${BASH_SOURCE[0]}")/podman.sh"
podman_or_skip test_upgrade

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"

[ "$(id -u)" = 0 ] || e2e_abort "needs root (podman with systemd, runc)"
[ -n "${TEST_KYCD_BUILD:-}" ] || e2e_abort "TEST_KYCD_BUILD (the build tree) is not set"

CACHE=${TEST_CONTAINER_CACHE:-$(dirname "$TEST_KYCD_BIN")/container-cache}
BASE_TAR=$CACHE/debian-12-minbase.tar
BASE_IMG=localhost/kycd-base:12
NAME=kycd-upgrade-$$
SHARE=$E2E_TMP/share # mounted read-only at /mnt/share in the container
JOURNAL=$E2E_TMP/journal.log
DELIVERIES=$E2E_TMP/deliveries # "user status" per webhook sent
e2e_logfmt_track "$JOURNAL"

upgrade_cleanup() {
  if "${P[@]}" container exists "$NAME" 2>/dev/null; then
    "${P[@]}" exec "$NAME" journalctl -u kycd -o cat --no-pager >"$JOURNAL" 2>/dev/null || true
    "${P[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  fi
}
# lib.sh's exit handler runs after ours (the container goes first) and
# reads the script's exit code from $?.
upgrade_on_exit() {
  local rc=$?
  trap - ERR
  set +e
  upgrade_cleanup
  (exit "$rc")
  e2e__cleanup
}
trap upgrade_on_exit EXIT

phase_t0=$(e2e_ms)
phases=''
# phase NAME: the section line, and the previous phase's duration (all of
# them again at the end).
phase() {
  local now took
  now=$(e2e_ms)
  if [ -n "${phase_name:-}" ]; then
    took="$(( (now - phase_t0) / 1000 )).$(( (now - phase_t0) % 1000 / 100 )) s"
    phases="$phases"$'\n'"  $took  $phase_name"
    echo "  ($phase_name: $took)"
  fi
  phase_name=$1
  phase_t0=$now
  if [ "$1" != end ]; then e2e_section "$1"; fi
}
# in_box CMD...: a command in the container (bounded); its output on stdout.
in_box() { timeout 120 "${P[@]}" exec "$NAME" "$@"; }

# ------------------------------------------------------------------------------
phase "the old package (build and cpack) and the new one (cpack)"
from=$(git -C "$TEST_KYCD_SRC" rev-parse --verify -q "${KYCD_UPGRADE_FROM:-HEAD~1}^{commit}") ||
  e2e_abort "no commit '${KYCD_UPGRADE_FROM:-HEAD~1}' in $TEST_KYCD_SRC (a shallow clone? set KYCD_UPGRADE_FROM)"
civetweb=$(sed -n 's/^KYCD_CIVETWEB_SRC:PATH=//p' "$TEST_KYCD_BUILD/CMakeCache.txt")
[ -n "$civetweb" ] || civetweb=$TEST_KYCD_BUILD/_deps/civetweb-1.15
[ -f "$civetweb/src/civetweb.c" ] || e2e_abort "no CivetWeb source at $civetweb (the test build fetches it)"
old_src=$E2E_TMP/old-src
git clone -q --shared --no-checkout "$TEST_KYCD_SRC" "$old_src" || e2e_abort "git clone --shared failed"
git -C "$old_src" checkout -q --detach "$from" || e2e_abort "cannot check out $from"
t0=$(e2e_ms)
if ! { timeout 300 cmake -S "$old_src" -B "$E2E_TMP/old-build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
         "-DKYCD_CIVETWEB_SRC=$civetweb" && timeout 600 cmake --build "$E2E_TMP/old-build" -j2; } \
       >"$E2E_TMP/old-build.log" 2>&1; then
  tail -n 30 "$E2E_TMP/old-build.log" | sed 's/^/  old build: /'
  e2e_abort "the build of $from failed"
fi
echo "  built $(git -C "$TEST_KYCD_SRC" log -1 --format='%h %s' "$from" | cut -c 1-70) in $(( ($(e2e_ms) - t0) / 1000 )) s (Release, no tests, -j2)"
mkdir -p "$SHARE"
chmod 700 "$SHARE"
for which in old new; do
  if [ "$which" = old ]; then cfg=$E2E_TMP/old-build/CPackConfig.cmake; else cfg=$TEST_KYCD_BUILD/CPackConfig.cmake; fi
  out=$(cd "$E2E_TMP" && timeout 300 cpack -G DEB -B "$E2E_TMP/deb-$which" --config "$cfg" 2>&1) ||
    e2e_abort "cpack ($which) failed: $(e2e__clip "$out")"
  cp "$E2E_TMP"/deb-$which/kycd_*.deb "$SHARE/kycd-$which.deb"
done
old_v=$(dpkg-deb -f "$SHARE/kycd-old.deb" Version)
new_v=$(dpkg-deb -f "$SHARE/kycd-new.deb" Version)
if dpkg --compare-versions "$new_v" gt "$old_v"; then
  pass "the new package's version $new_v sorts above the old one's, $old_v"
else
  e2e_abort "the new package's version $new_v does not sort above $old_v: no upgrade to test"
fi
assert_match "$new_v" '^[0-9]+\.[0-9]+\.[0-9]+\+git[0-9]+-[0-9]+$' "the new version carries the commit count"
old_ver_line=$(dpkg-deb --fsys-tarfile "$SHARE/kycd-old.deb" | tar -xO ./usr/bin/kycd >"$E2E_TMP/kycd-old" &&
               chmod 755 "$E2E_TMP/kycd-old" && "$E2E_TMP/kycd-old" version)
new_ver_line=$("$TEST_KYCD_BIN" version)
old_schema=$(sed -nE 's/.*\(schema ([0-9]+),.*/\1/p' <<<"$old_ver_line")
new_schema=$(sed -nE 's/.*\(schema ([0-9]+),.*/\1/p' <<<"$new_ver_line")
echo "  old: $old_ver_line"
echo "  new: $new_ver_line"
assert_contains "$new_ver_line" "kycd ${new_v%-*} " "kycd version names the package's version"
assert_contains "$(dpkg-deb --fsys-tarfile "$SHARE/kycd-new.deb" | tar -xO ./usr/share/man/man8/kycd.8.gz | zcat)" \
  "kycd ${new_v%-*}" "and so does kycd(8)"
assert_contains "$(dpkg-deb --fsys-tarfile "$SHARE/kycd-new.deb" | tar -xO ./usr/share/doc/kycd/changelog.Debian.gz | zcat | head -n 1)" \
  "kycd ($new_v)" "and the installed changelog's first entry"

# ------------------------------------------------------------------------------
phase "systemd in a container"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock" # one maker of the cached images at a time
flock -w 900 9 || e2e_abort "the container cache stays locked"
podman_rootfs "$BASE_TAR"
if ! "${P[@]}" image exists "$BASE_IMG"; then
  "${P[@]}" import -q "$BASE_TAR" "$BASE_IMG" >/dev/null || e2e_abort "podman import failed"
fi
# The image: systemd and what the package depends on (its Depends, read from
# the package, so a new library is installed too), tagged by that list.
deps=$(dpkg-deb -f "$SHARE/kycd-new.deb" Depends | sed -E 's/ *\([^)]*\)//g; s/ *\|[^,]*//g; s/,/ /g')
deps=$({ echo systemd systemd-sysv; echo "$deps"; } | tr ' ' '\n' | grep . | sort -u | tr '\n' ' ')
tag=$(printf '%s' "$deps" | sha256sum | cut -c 1-12)
IMG=localhost/kycd-upgrade-systemd:$tag
if ! "${P[@]}" image exists "$IMG"; then
  printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends %s >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*\n' \
    "$BASE_IMG" "$deps" >"$E2E_TMP/Containerfile"
  if ! timeout 600 "${P[@]}" build "${F[@]}" -q -t "$IMG" -f "$E2E_TMP/Containerfile" "$E2E_TMP/share" \
       >"$E2E_TMP/image.log" 2>&1; then
    tail -n 20 "$E2E_TMP/image.log" | sed 's/^/  podman build: /'
    e2e_abort "could not build the systemd image"
  fi
fi
exec 9>&-
if ! out=$("${P[@]}" run -d --name "$NAME" --systemd=always "${F[@]}" -v "$SHARE:/mnt/share:ro" "$IMG" /sbin/init 2>&1); then
  echo "SKIP: test_upgrade: podman cannot start systemd here: $(head -n 1 <<<"$out")"
  trap - EXIT
  "${P[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  rm -rf -- "$E2E_TMP"
  exit 77
fi
booted() { [[ $(in_box systemctl is-system-running 2>/dev/null) =~ ^(running|degraded)$ ]]; }
if e2e_wait_cmd 60 booted; then
  pass "systemd is PID 1 in the container: $(in_box systemctl is-system-running 2>&1 || true)"
else
  fail "systemd did not finish booting within 60 s: $(in_box systemctl is-system-running 2>&1 || true)"
fi
assert_eq systemd "$(in_box cat /proc/1/comm)" "PID 1 is systemd"

# ------------------------------------------------------------------------------
phase "the old package: install, migrate, start"
e2e_private_pg
ROLE=kycd_upgrade
# The cluster role the analysts' grants name (sql/002), as e2e_two_roles makes it.
as_super "CREATE ROLE kyc_analyst NOLOGIN" "$PRIV_PG" >/dev/null
as_super "CREATE ROLE $ROLE LOGIN NOSUPERUSER" "$PRIV_PG" >/dev/null
db=$(sql "SELECT current_database()")
as_super "ALTER DATABASE \"$db\" OWNER TO $ROLE" "$PRIV_PG" >/dev/null
as_super "ALTER SCHEMA public OWNER TO $ROLE" "$E2E_DB_URL" >/dev/null
out=$(in_box dpkg -i /mnt/share/kycd-old.deb 2>&1) || e2e_abort "dpkg -i (old) failed: $(e2e__clip "$out")"
assert_eq "$old_v" "$(in_box dpkg-query -W -f='${Version}' kycd)" "the old package, $old_v, is installed"
e2e_certs
cp "$E2E_CERT" "$SHARE/server.pem"
cp "$E2E_KEY" "$SHARE/server.key"
cp "$E2E_CHAIN" "$SHARE/chain.pem"
cp "$E2E_TOKEN_FILE" "$SHARE/webhook_tokens"
E2E_PORT=$(e2e_free_port)
E2E_ADMIN_PORT=$(e2e_free_port)
pg_port=$(cat "$PRIV_DIR/port")
# What an operator does after installing: certificates, secrets, the file.
in_box sh -ec '
  install -d -o root -g kycd -m 0750 /etc/kycd/tls
  for f in server.pem server.key chain.pem; do install -o root -g kycd -m 0640 /mnt/share/$f /etc/kycd/tls/$f; done
  install -o root -g kycd -m 0640 /mnt/share/webhook_tokens /etc/kycd/secrets/webhook_tokens
  echo unused-with-trust-auth | install -o root -g kycd -m 0640 /dev/stdin /etc/kycd/secrets/database_password
  echo unused-reconcile-off | install -o root -g kycd -m 0640 /dev/stdin /etc/kycd/secrets/p100_api_key
  sed -i -E -e "s|^database_url = .*|database_url = host=127.0.0.1 port=$1 dbname=$2 user=$3|" \
    -e "s|^listen = .*|listen = 127.0.0.1:$4|" -e "s|^#?admin_listen = .*|admin_listen = 127.0.0.1:$5|" \
    -e "s|^reconcile = .*|reconcile = off|" -e "s|^db_timeout = .*|db_timeout = 2s|" /etc/kycd/kycd.conf
' sh "$pg_port" "$db" "$ROLE" "$E2E_PORT" "$E2E_ADMIN_PORT" || e2e_abort "could not configure kycd in the container"
out=$(in_box kycd migrate --config /etc/kycd/kycd.conf 2>&1) || e2e_abort "kycd migrate (old) failed: $(e2e__clip "$out")"
assert_eq "$old_schema" "$(sql "SELECT max(version) FROM kyc.schema_migrations")" "kycd migrate: the old schema, $old_schema"
assert_eq "$ROLE" "$(sql "SELECT tableowner FROM pg_tables WHERE schemaname = 'kyc' AND tablename = 'schema_migrations'")" \
  "migrated as the owner's role"
out=$(in_box systemctl enable --now kycd 2>&1) || fail "systemctl enable --now kycd: $(e2e__clip "$out")"
active() { [ "$(in_box systemctl is-active kycd 2>/dev/null)" = active ]; }
e2e_wait_cmd 20 active || e2e_abort "kycd.service is not active: $(in_box systemctl status kycd --no-pager 2>&1 | tail -n 5)"
main_pid() { in_box systemctl show -p MainPID --value kycd; }
old_pid=$(main_pid)
pass "kycd.service is active (main PID $old_pid in the container)"
status_version() { admin_get /status >/dev/null; json_str version "$(resp_body)"; }
assert_eq "${old_v%-*}" "$(status_version)" "the service runs the old version ($(status_version))"

# deliver N: N KYC webhooks, one new user each; the statuses, counted ("5x200 ").
deliver() {
  local u st out=''
  for _ in $(seq 1 "$1"); do
    u=up-$(e2e_uuid)
    st=$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")
    echo "$u $st" >>"$DELIVERIES"
    out="$out$st"$'\n'
  done
  printf '%s' "$out" | sort | uniq -c | awk '{printf "%sx%s ", $1, $2}'
}
spool_segments() { in_box sh -c 'ls /var/lib/kycd/spool/seg-*.log 2>/dev/null | wc -l'; }
spool_records() { admin_get /status >/dev/null; python3 -c 'import json,sys; print(json.load(sys.stdin)["spool"]["records"])' <"$E2E_RESP_BODY"; }

assert_eq "5x200 " "$(deliver 5)" "5 webhooks with the database up: 200"
assert_eq 5 "$(sql "SELECT count(*) FROM kyc.webhook_events")" "stored at once"

# ------------------------------------------------------------------------------
phase "the database away: deliveries into the spool"
# When it comes back, it is first the operator's alone (kycd's role may not
# log in), so the test sees the schema before the new kycd does.
as_super "ALTER ROLE $ROLE NOLOGIN" "$PRIV_PG" >/dev/null
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
assert_eq "10x200 " "$(deliver 10)" "10 webhooks with the database down: 200 (the old kycd's spool)"
assert_ne 0 "$(spool_segments)" "the spool has segments on disk ($(spool_segments))"
assert_eq 10 "$(spool_records)" "the old kycd's /status: 10 records in the spool"

# ------------------------------------------------------------------------------
phase "dpkg -i the new package, the deliveries spooled"
out=$(in_box dpkg --force-confdef --force-confold -i /mnt/share/kycd-new.deb 2>&1) ||
  fail "dpkg -i (new) failed: $(e2e__clip "$out")"
assert_eq "$new_v" "$(in_box dpkg-query -W -f='${Version}' kycd)" "upgraded to $new_v"
e2e_wait_cmd 20 active || fail "kycd.service not active after the upgrade: $(in_box systemctl status kycd --no-pager 2>&1 | tail -n 5)"
new_pid=$(main_pid)
assert_ne "$old_pid" "$new_pid" "postinst restarted the service (main PID $old_pid -> $new_pid)"
assert_eq 0 "$(in_box systemctl show -p NRestarts --value kycd)" "restarted by the package, not by Restart= (no crash loop)"
assert_eq "/usr/bin/kycd serve --config /etc/kycd/kycd.conf " "$(in_box sh -c "tr '\\0' ' ' </proc/$new_pid/cmdline")" \
  "the new process is the unit's ExecStart"
assert_eq "${new_v%-*}" "$(status_version)" "and it is the new version (its /status)"
assert_contains "$(in_box kycd version)" "kycd ${new_v%-*} " "kycd version: the new version"
assert_ne 0 "$(spool_segments)" "the spool's segments are still there"
assert_eq 10 "$(spool_records)" "the new kycd took over the old one's 10 spooled records"
assert_eq "5x200 " "$(deliver 5)" "5 more webhooks, database still down: 200"

# ------------------------------------------------------------------------------
phase "the database back, its schema older than the new kycd"
pg_local_start_server_only "$PRIV_DIR" >/dev/null || e2e_abort "cannot start the private PostgreSQL again"
saved=''
if [ "$old_schema" -lt "$new_schema" ]; then
  echo "  the old commit has schema $old_schema, the new one $new_schema: a real migration follows"
else
  # The same schema: make the database look one migration older, as a
  # release that brings a migration would find it.
  saved=$(sql "DELETE FROM kyc.schema_migrations WHERE version = $new_schema RETURNING name || '|' || sha256")
  [ -n "$saved" ] || e2e_abort "no record of migration $new_schema"
  echo "  the same schema ($new_schema) in both: its newest migration's record removed for now"
fi
assert_eq 5 "$(sql "SELECT count(*) FROM kyc.webhook_events")" "nothing replayed while kycd's role cannot log in"
as_super "ALTER ROLE $ROLE LOGIN" "$PRIV_PG" >/dev/null
metric() { admin_get /metrics >/dev/null; awk -v m="$1" '$1 == m {print $2}' "$E2E_RESP_BODY"; }
mismatch() { [ "$(metric kycd_db_schema_mismatch)" = 1 ]; }
if e2e_wait_cmd 20 mismatch; then
  pass "the new kycd sees the older schema (kycd_db_schema_mismatch 1)"
else
  fail "kycd_db_schema_mismatch not 1 within 20 s: $(metric kycd_db_schema_mismatch)"
fi
assert_eq "5x200 " "$(deliver 5)" "5 webhooks while the schema is older: 200 (spooled)"
assert_eq 5 "$(sql "SELECT count(*) FROM kyc.webhook_events")" "nothing written into the older schema"
assert_eq 20 "$(spool_records)" "all 20 wait in the spool"

# ------------------------------------------------------------------------------
phase "kycd migrate: the spool drains"
if [ -n "$saved" ]; then
  sql "INSERT INTO kyc.schema_migrations (version, name, sha256) VALUES ($new_schema, '${saved%%|*}', '${saved##*|}')" >/dev/null
fi
out=$(in_box kycd migrate --config /etc/kycd/kycd.conf 2>&1) || fail "kycd migrate (new): $(e2e__clip "$out")"
assert_eq "$new_schema" "$(sql "SELECT max(version) FROM kyc.schema_migrations")" "the schema is the new kycd's, $new_schema"
sent=$(awk '$2 == 200' "$DELIVERIES" | wc -l)
if e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events" "$sent" 30; then
  pass "the spool drained: $sent deliveries stored"
else
  fail "$E2E_SQL_LAST of $sent deliveries stored within 30 s"
fi
acked=$(awk '$2 == 200 {print $1}' "$DELIVERIES" | sort)
stored=$(sql "SELECT external_user_id FROM kyc.webhook_events ORDER BY 1")
assert_eq "$acked" "$stored" "every delivery answered 200 is stored, and nothing else ($(wc -l <<<"$acked") users)"
assert_eq "" "$(sql "SELECT external_user_id FROM kyc.webhook_events GROUP BY 1 HAVING count(*) > 1")" "none twice"
spool_empty() { [ "$(spool_records)" = 0 ]; }
if e2e_wait_cmd 10 spool_empty; then pass "the spool is empty"; else fail "the spool still holds $(spool_records) records"; fi
assert_eq "$new_pid" "$(main_pid)" "replayed by the running kycd, without a restart"
assert_eq "5x200 " "$(deliver 5)" "and new webhooks are stored at once: 200"
assert_eq "$(awk '$2 == 200' "$DELIVERIES" | wc -l)" "$(sql "SELECT count(*) FROM kyc.webhook_events")" "stored"

# ------------------------------------------------------------------------------
phase "rollback: the old package again"
out=$(in_box dpkg --force-confdef --force-confold -i /mnt/share/kycd-old.deb 2>&1) ||
  fail "dpkg -i (old, a downgrade) failed: $(e2e__clip "$out")"
e2e_wait_cmd 20 active || fail "kycd.service not active after the rollback"
back_pid=$(main_pid)
assert_ne "$new_pid" "$back_pid" "the service was restarted on the old package"
assert_eq "${old_v%-*}" "$(status_version)" "it runs the old version again, on the newer or same schema"
assert_eq "3x200 " "$(deliver 3)" "3 webhooks: 200"
assert_eq "$(awk '$2 == 200' "$DELIVERIES" | wc -l)" "$(sql "SELECT count(*) FROM kyc.webhook_events")" "stored"

# ------------------------------------------------------------------------------
phase "the other order: the new package on an older schema, the database up"
# The old kycd stopped with deliveries in its spool (the database away);
# the database back looking a release older than both binaries (the
# records from the old one's newest migration on removed, for now); the new
# package installed, the service started before `kycd migrate`: it refuses,
# systemd starts it again every 2 s, the spool stays as it is; after
# `kycd migrate` the next start replays it.
as_super "ALTER ROLE $ROLE NOLOGIN" "$PRIV_PG" >/dev/null
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
assert_eq "4x200 " "$(deliver 4)" "4 webhooks with the database down: 200 (spooled)"
assert_eq 4 "$(spool_records)" "4 records in the old kycd's spool"
out=$(in_box systemctl stop kycd 2>&1) || fail "systemctl stop kycd: $(e2e__clip "$out")"
pg_local_start_server_only "$PRIV_DIR" >/dev/null || e2e_abort "cannot start the private PostgreSQL again"
saved=$(sql "DELETE FROM kyc.schema_migrations WHERE version >= $old_schema
             RETURNING format('(%s, %L, %L)', version, name, sha256)" | paste -sd, -)
as_super "ALTER ROLE $ROLE LOGIN" "$PRIV_PG" >/dev/null
out=$(in_box dpkg --force-confdef --force-confold -i /mnt/share/kycd-new.deb 2>&1) ||
  fail "dpkg -i (new, onto the older schema) failed: $(e2e__clip "$out")"
assert_eq inactive "$(in_box systemctl is-active kycd 2>/dev/null || true)" "a stopped service stays stopped across the upgrade"
if in_box systemctl start kycd >/dev/null 2>&1; then
  fail "systemctl start kycd succeeded on the older schema"
else
  pass "systemctl start kycd fails: the schema is older than the new kycd's"
fi
retried() { [ "$(in_box systemctl show -p NRestarts --value kycd)" -ge 2 ]; }
if e2e_wait_cmd 20 retried; then
  pass "systemd keeps starting it ($(in_box systemctl show -p NRestarts -p ActiveState -p SubState kycd | tr '\n' ' '))"
else
  fail "no restarts by systemd: $(in_box systemctl show -p NRestarts -p ActiveState -p SubState kycd | tr '\n' ' ')"
fi
assert_contains "$(in_box journalctl -u kycd -o cat --no-pager -n 20)" "run \`kycd migrate\` first" "its log says: run kycd migrate first"
assert_eq 000 "$(post "$E2E_KYC_PATH" "$(kyc_body "down-$(e2e_uuid)" NOT_VERIFIED PENDING)")" \
  "a webhook meanwhile gets no answer (P100 retries it)"
assert_ne 0 "$(spool_segments)" "the spool's segments are on disk, untouched ($(in_box ls /var/lib/kycd/spool | tr '\n' ' '))"
assert_eq "$(( $(awk '$2 == 200' "$DELIVERIES" | wc -l) - 4 ))" "$(sql "SELECT count(*) FROM kyc.webhook_events")" \
  "the 4 spooled deliveries are not in the database yet"
sql "INSERT INTO kyc.schema_migrations (version, name, sha256) VALUES $saved" >/dev/null
out=$(in_box kycd migrate --config /etc/kycd/kycd.conf 2>&1) || fail "kycd migrate: $(e2e__clip "$out")"
if e2e_wait_cmd 20 active; then
  pass "after kycd migrate, systemd's next start succeeds by itself"
else
  fail "kycd.service not active 20 s after kycd migrate: $(in_box systemctl is-active kycd 2>/dev/null || true)"
fi
assert_eq "${new_v%-*}" "$(status_version)" "the new version runs"
sent=$(awk '$2 == 200' "$DELIVERIES" | wc -l)
if e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events" "$sent" 30; then
  pass "the spool drained: all $sent deliveries answered 200 stored"
else
  fail "$E2E_SQL_LAST of $sent deliveries stored within 30 s"
fi
assert_eq "$(awk '$2 == 200 {print $1}' "$DELIVERIES" | sort)" "$(sql "SELECT external_user_id FROM kyc.webhook_events ORDER BY 1")" \
  "each exactly once, nothing else"
if e2e_wait_cmd 10 spool_empty; then pass "the spool is empty"; else fail "the spool still holds $(spool_records) records"; fi

# ------------------------------------------------------------------------------
phase "dpkg -r stops the service"
out=$(in_box dpkg -r kycd 2>&1) || fail "dpkg -r: $(e2e__clip "$out")"
assert_eq inactive "$(in_box systemctl is-active kycd 2>/dev/null || true)" "the service is stopped"
assert_eq kept "$(in_box test -d /var/lib/kycd/spool && echo kept)" "the spool folder is kept"
phase end
echo "phase durations:$phases"
