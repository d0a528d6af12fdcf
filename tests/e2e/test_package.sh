#!/usr/bin/env bash
# kycd-test: once
# End-to-end: the Debian package. Built with CPack from the test's build tree
# (TEST_KYCD_BUILD) into the temp dir; `cmake --install` of the same tree
# under another prefix, into the temp dir, gives the unit and configuration
# that prefix's paths and keeps an existing kycd.conf. Lintian: no error, and
# every warning and note it still reports is listed in docs/operations.md's "Deploy".
# Then it is installed into this machine with dpkg: the kycd user, the
# folders and their modes, `kycd version` and `kycd config --check` from
# /usr/bin/kycd, run as the kycd user on the packaged /etc/kycd/kycd.conf
# against the test database; `dpkg -r` keeps the configuration and spool, `dpkg -P` keeps what
# is the operator's (with a warning) and otherwise leaves nothing: the file
# list of every path the package touches equals the one taken before.
# The service across install, upgrade and removal: with systemd made to look
# running (a private /run holding /run/systemd/system, in a mount namespace)
# and deb-systemd-invoke and systemctl replaced by stubs on PATH that record
# their calls, a first install starts nothing, an upgrade to a newer version
# try-restarts the service (and the old prerm does not stop it), a removal
# stops it, and a purge removes a dangling enable link; without systemd no
# call is made.
#
# It installs as root into the real system: it refuses to run where a kycd
# package is already installed, and its exit trap purges the package and
# removes the user it made, whatever happened. Other tests use the build
# tree's kycd, never /usr/bin/kycd, so they are not disturbed.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || e2e_abort "needs root (dpkg -i into this machine)"
[ -n "${TEST_KYCD_BUILD:-}" ] || e2e_abort "TEST_KYCD_BUILD (the build tree) is not set"
if dpkg-query -W -f='${db:Status-Abbrev}' kycd 2>/dev/null | grep -q '^[ih]'; then
  e2e_abort "a kycd package is installed on this machine: this test would replace it"
fi

# Every path the package, its scripts or kycd itself may create.
TOUCHED=(/usr/bin/kycd /lib/systemd/system/kycd.service /usr/share/doc/kycd
         /usr/share/man/man8/kycd.8.gz /usr/share/man/man5/kycd.conf.5.gz /etc/kycd
         /var/lib/kycd /var/lib/dpkg/info/kycd.list /var/lib/dpkg/info/kycd.md5sums
         /var/lib/dpkg/info/kycd.conffiles /var/lib/dpkg/info/kycd.postinst
         /var/lib/dpkg/info/kycd.prerm /var/lib/dpkg/info/kycd.postrm
         /etc/systemd/system/multi-user.target.wants/kycd.service)
snapshot() {
  local p
  for p in "${TOUCHED[@]}"; do
    [ -e "$p" ] || continue
    find "$p" -printf '%p %m %u:%g %s\n' 2>/dev/null
  done | sort
}
user_before=$(getent passwd kycd || true)
group_before=$(getent group kycd || true)

pkg_cleanup() {
  if dpkg-query -W kycd >/dev/null 2>&1; then
    dpkg --purge kycd >/dev/null 2>&1 || echo "$E2E_NAME: could not purge kycd" >&2
  fi
  rm -rf /etc/kycd /var/lib/kycd
  if [ -z "$user_before" ] && getent passwd kycd >/dev/null; then userdel kycd 2>/dev/null; fi
  if [ -z "$group_before" ] && getent group kycd >/dev/null; then groupdel kycd 2>/dev/null; fi
}
# lib.sh's exit handler runs after ours and reads the script's exit code from $?.
pkg_on_exit() {
  local rc=$?
  trap - ERR
  set +e
  pkg_cleanup
  (exit "$rc")
  e2e__cleanup
}
trap pkg_on_exit EXIT

e2e_section "build the package"
before=$(snapshot)
assert_eq "" "$before" "none of the package's paths exist before"
out=$(cd "$E2E_TMP" && timeout 300 cpack -G DEB -B "$E2E_TMP/deb" \
  --config "$TEST_KYCD_BUILD/CPackConfig.cmake" 2>&1) || e2e_abort "cpack failed: $(e2e__clip "$out")"
deb=$(ls "$E2E_TMP"/deb/kycd_*_*.deb)
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libssl3 libpq5 libcjson1 libcurl4 libc6 adduser; do
  assert_match "$depends" "(^|, )$lib( |,|$)" "Depends names $lib ($depends)"
done
contents=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
for f in "-rwxr-xr-x ./usr/bin/kycd" "-rw-r--r-- ./lib/systemd/system/kycd.service" \
         "-rw-r----- ./etc/kycd/kycd.conf" "-rw-r--r-- ./usr/share/man/man8/kycd.8.gz" \
         "-rw-r--r-- ./usr/share/man/man5/kycd.conf.5.gz" "-rw-r--r-- ./usr/share/doc/kycd/copyright" \
         "-rw-r--r-- ./usr/share/doc/kycd/changelog.Debian.gz" \
         "-rw-r--r-- ./usr/share/doc/kycd/README.md.gz"; do
  assert_contains "$contents" "$f" "the package holds ${f#* }"
done
# Every page of docs/ the README sends a reader to is installed beside it.
for page in "$TEST_KYCD_SRC"/docs/*.md; do
  assert_contains "$contents" "-rw-r--r-- ./usr/share/doc/kycd/$(basename "$page").gz" \
    "the package holds /usr/share/doc/kycd/$(basename "$page").gz"
done
for f in postinst prerm postrm; do
  assert_contains "$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)" "./$f" "the package has a $f"
done
assert_eq "/etc/kycd/kycd.conf" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" \
  "/etc/kycd/kycd.conf is its one conffile"
unit=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/kycd.service)
assert_contains "$unit" "ExecStart=/usr/bin/kycd serve --config /etc/kycd/kycd.conf" \
  "the unit runs the installed binary"
assert_contains "$unit" "User=kycd" "as the kycd user"

e2e_section "cmake --install under another prefix"
root=$E2E_TMP/destdir
out=$(DESTDIR=$root timeout 120 cmake --install "$TEST_KYCD_BUILD" --prefix /opt/kycd 2>&1) ||
  fail "cmake --install: $(e2e__clip "$out")"
assert_contains "$(cat "$root/opt/kycd/lib/systemd/system/kycd.service")" \
  "ExecStart=/opt/kycd/bin/kycd serve --config /opt/kycd/etc/kycd/kycd.conf" "the unit names the prefix's paths"
assert_contains "$(cat "$root/opt/kycd/etc/kycd/kycd.conf")" "webhook_tokens_file = /opt/kycd/etc/kycd/secrets/" \
  "and so does the configuration"
for f in bin/kycd share/man/man5/kycd.conf.5.gz share/man/man8/kycd.8.gz share/doc/kycd/README.md.gz \
         share/doc/kycd/operations.md.gz share/doc/kycd/configuration.md.gz; do
  assert_eq "yes" "$([ -f "$root/opt/kycd/$f" ] && echo yes)" "installs $f"
done
echo "# the operator's" >>"$root/opt/kycd/etc/kycd/kycd.conf"
out=$(DESTDIR=$root timeout 120 cmake --install "$TEST_KYCD_BUILD" --prefix /opt/kycd 2>&1) ||
  fail "cmake --install (again): $(e2e__clip "$out")"
assert_eq "# the operator's" "$(tail -1 "$root/opt/kycd/etc/kycd/kycd.conf")" "a second install keeps an existing kycd.conf"
assert_eq "yes" "$([ -f "$root/opt/kycd/etc/kycd/kycd.conf.example" ] && echo yes)" "and puts the example beside it"

e2e_section "lintian"
lint=$(timeout 300 lintian --allow-root -I "$deb" 2>&1) || true
assert_eq "" "$(grep '^E: ' <<<"$lint" || true)" "lintian reports no error"
readme_deploy=$(sed -n '/^## Deploy$/,/^## Day-to-day/p' "$TEST_KYCD_SRC/docs/operations.md")
unlisted=''
while read -r tag; do
  [ -n "$tag" ] || continue
  grep -qF -- "\`$tag\`" <<<"$readme_deploy" || unlisted="$unlisted $tag"
done < <(sed -nE 's/^[WI]: kycd: ([a-z0-9.+-]+).*/\1/p' <<<"$lint" | sort -u)
assert_eq "" "$unlisted" "every tag lintian reports is explained in docs/operations.md's Deploy ($(grep -c '^[WI]:' <<<"$lint") lines)"

e2e_section "install"
out=$(timeout 120 dpkg -i "$deb" 2>&1) || e2e_abort "dpkg -i failed: $(e2e__clip "$out")"
pass "dpkg -i"
assert_ne "" "$(getent passwd kycd)" "the kycd user exists"
assert_match "$(getent passwd kycd)" '^kycd:x:[0-9]+:[0-9]+:.*:/var/lib/kycd:/usr/sbin/nologin$' \
  "a system user without a login shell"
assert_eq "700 kycd:kycd" "$(stat -c '%a %U:%G' /var/lib/kycd)" "/var/lib/kycd is kycd's, 0700"
assert_eq "750 root:kycd" "$(stat -c '%a %U:%G' /etc/kycd)" "/etc/kycd: root:kycd 0750"
assert_eq "750 root:kycd" "$(stat -c '%a %U:%G' /etc/kycd/secrets)" "/etc/kycd/secrets: root:kycd 0750"
assert_eq "640 root:kycd" "$(stat -c '%a %U:%G' /etc/kycd/kycd.conf)" "/etc/kycd/kycd.conf: root:kycd 0640"
if out=$(timeout 60 systemd-analyze verify /lib/systemd/system/kycd.service 2>&1); then
  pass "systemd-analyze verify accepts the installed unit, its man pages included${out:+ (said: $(e2e__clip "$out"))}"
else
  fail "systemd-analyze verify /lib/systemd/system/kycd.service: $(e2e__clip "$out")"
fi
assert_eq "ok" "$(man -w kycd.conf >/dev/null 2>&1 && man -w 8 kycd >/dev/null 2>&1 && echo ok)" \
  "man finds kycd(8) and kycd.conf(5)"

e2e_section "the installed kycd, as the kycd user, on the packaged configuration"
# What an operator does: certificates and secrets where the example names them.
e2e_certs
install -d -o root -g kycd -m 0750 /etc/kycd/tls
install -o root -g kycd -m 0640 "$E2E_CERT" /etc/kycd/tls/server.pem
install -o root -g kycd -m 0640 "$E2E_KEY" /etc/kycd/tls/server.key
install -o root -g kycd -m 0640 "$E2E_CHAIN" /etc/kycd/tls/chain.pem
install -o root -g kycd -m 0640 "$E2E_TOKEN_FILE" /etc/kycd/secrets/webhook_tokens
printf 'unused-with-trust-auth\n' | install -o root -g kycd -m 0640 /dev/stdin /etc/kycd/secrets/database_password
printf 'test-api-key\n' | install -o root -g kycd -m 0640 /dev/stdin /etc/kycd/secrets/p100_api_key
as_kycd=$E2E_TMP/as-kycd
printf '#!/bin/sh\nexec /usr/sbin/runuser -u kycd -- /usr/bin/kycd "$@"\n' >"$as_kycd"
chmod 755 "$as_kycd"
build_bin=$TEST_KYCD_BIN
TEST_KYCD_BIN=$as_kycd
e2e_fresh_db
TEST_KYCD_BIN=$build_bin e2e_migrate
e2e_kycd_cmd --bare -- version
assert_eq 0 "$E2E_RC" "/usr/bin/kycd version: exit 0"
assert_contains "$(cat "$E2E_OUT")" "$("$build_bin" version | head -1)" "the version of the build tree's kycd"
port=$(e2e_free_port)
# The file's database and listener are this test's (the environment overrides the file).
e2e_kycd_cmd --bare "KYCD_DATABASE_URL=$E2E_DB_URL" "KYCD_LISTEN=127.0.0.1:$port" -- \
  config --check --config /etc/kycd/kycd.conf
assert_eq 0 "$E2E_RC" "config --check on /etc/kycd/kycd.conf: exit 0 ($(e2e__clip "$(cat "$E2E_OUT")"))"
assert_contains "$(cat "$E2E_OUT")" "kycd: configuration ok" "configuration ok"
# What the runbook tells on-call to run sees what the service sees: the
# settings are in the file, not in the unit's environment.
assert_eq "" "$(grep -E '^Environment=KYCD_' /lib/systemd/system/kycd.service || true)" \
  "the unit sets no KYCD_* variable: its settings are in /etc/kycd/kycd.conf"
e2e_kycd_cmd --bare -- spool dead-letters --config /etc/kycd/kycd.conf
assert_eq 0 "$E2E_RC" "kycd spool dead-letters --config /etc/kycd/kycd.conf, by hand: exit 0"
assert_contains "$(cat "$E2E_OUT")" "/var/lib/kycd/spool" "... on the service's spool (not 'no spool configured')"
TEST_KYCD_BIN=$build_bin

e2e_section "dpkg -r keeps the configuration and the spool"
printf 'KYS1' >/var/lib/kycd/probe # a file of kycd's, as a spool would be
chown kycd:kycd /var/lib/kycd/probe
out=$(timeout 120 dpkg -r kycd 2>&1) || fail "dpkg -r: $(e2e__clip "$out")"
assert_eq "rc" "$(dpkg-query -W -f='${db:Status-Abbrev}' kycd | tr -d ' ')" "the package is removed, its configuration kept"
for p in /usr/bin/kycd /lib/systemd/system/kycd.service /usr/share/doc/kycd /usr/share/man/man8/kycd.8.gz; do
  assert_eq "gone" "$([ -e "$p" ] || echo gone)" "$p is gone"
done
for p in /etc/kycd/kycd.conf /etc/kycd/secrets/webhook_tokens /etc/kycd/tls/server.key /var/lib/kycd/probe; do
  assert_eq "kept" "$([ -e "$p" ] && echo kept)" "$p is kept"
done

e2e_section "dpkg -P keeps the operator's files and an unreplayed spool, with a warning"
mkdir -p /var/lib/kycd/spool
printf 'KYS1' >/var/lib/kycd/spool/seg-0000000000000001.log
out=$(timeout 120 dpkg -P kycd 2>&1) || fail "dpkg -P: $(e2e__clip "$out")"
assert_eq "" "$(dpkg-query -W -f='${db:Status-Abbrev}' kycd 2>/dev/null || true)" "the package is purged"
assert_eq "gone" "$([ -e /etc/kycd/kycd.conf ] || echo gone)" "the conffile is gone"
assert_contains "$out" "kept /etc/kycd/secrets" "says it kept the operator's secrets"
assert_eq "kept" "$([ -e /etc/kycd/secrets/webhook_tokens ] && echo kept)" "and kept them"
assert_contains "$out" "kept /var/lib/kycd" "says it kept a spool with segments"
assert_eq "kept" "$([ -e /var/lib/kycd/spool/seg-0000000000000001.log ] && echo kept)" "and kept it"
assert_ne "" "$(getent passwd kycd)" "the kycd user stays (as Debian keeps system users)"
rm -rf /etc/kycd /var/lib/kycd

e2e_section "install, remove, purge: nothing left behind"
out=$(timeout 120 dpkg -i "$deb" 2>&1) || e2e_abort "dpkg -i (again) failed: $(e2e__clip "$out")"
assert_contains "$(snapshot)" "/usr/bin/kycd 755 root:root" "installed again (the existing user reused)"
out=$(timeout 120 dpkg -r kycd 2>&1 && timeout 120 dpkg -P kycd 2>&1) || fail "dpkg -r, -P: $(e2e__clip "$out")"
assert_not_contains "$out" "kept" "no warning: nothing of the operator's"
after=$(snapshot)
assert_eq "$before" "$after" "the package's paths are as before (diff: $(e2e__clip "$(diff <(echo "$before") <(echo "$after") || true)"))"

e2e_section "the service across install, upgrade and removal (systemd stubbed)"
stub=$E2E_TMP/stub-bin
calls=$E2E_TMP/systemd-calls
mkdir -p "$stub"
for t in deb-systemd-invoke systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$t" "$calls" >"$stub/$t"
  chmod 755 "$stub/$t"
done
# A newer version of the same package: only the version differs.
unp=$E2E_TMP/unpacked
dpkg-deb -R "$deb" "$unp"
old_version=$(dpkg-deb -f "$deb" Version)
new_version="${old_version%-*}-$(( ${old_version##*-} + 1 ))"
sed -i "s/^Version: .*/Version: $new_version/" "$unp/DEBIAN/control"
deb2=$E2E_TMP/kycd_${new_version}_newer.deb
dpkg-deb --root-owner-group -b "$unp" "$deb2" >/dev/null || e2e_abort "could not build the newer package"
# with_systemd CMD...: CMD with systemd looking as if it ran (a private /run
# in a mount namespace) and the stubs first on PATH.
with_systemd() {
  unshare -m sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"' sh \
    env "PATH=$stub:$PATH" "$@"
}
step() { # step WHAT CMD...: run it with systemd, the calls it made in $got
  local what=$1
  shift
  : >"$calls"
  out=$(with_systemd timeout 120 "$@" 2>&1) || fail "$what: $(e2e__clip "$out")"
  got=$(tr '\n' ';' <"$calls")
}
step "dpkg -i" dpkg -i "$deb"
assert_eq "systemctl --system daemon-reload;" "$got" "a first install reloads systemd and starts nothing"
step "dpkg -i (upgrade)" dpkg -i "$deb2"
assert_eq "$new_version" "$(dpkg-query -W -f='${Version}' kycd)" "upgraded to $new_version"
assert_contains "$got" "deb-systemd-invoke try-restart kycd.service;" "the upgrade try-restarts the service ($got)"
assert_not_contains "$got" "stop" "and does not stop it first"
[ -d /etc/systemd/system/multi-user.target.wants ] || e2e_abort "no /etc/systemd/system/multi-user.target.wants"
ln -sf /lib/systemd/system/kycd.service /etc/systemd/system/multi-user.target.wants/kycd.service
step "dpkg -r" dpkg -r kycd
assert_contains "$got" "deb-systemd-invoke stop kycd.service;" "removing stops the service ($got)"
assert_eq "link" "$([ -L /etc/systemd/system/multi-user.target.wants/kycd.service ] && echo link)" \
  "removing keeps the operator's enable link"
step "dpkg -P" dpkg -P kycd
assert_eq "gone" "$([ -L /etc/systemd/system/multi-user.target.wants/kycd.service ] || echo gone)" \
  "purging removes the dangling enable link"
: >"$calls"
out=$(PATH="$stub:$PATH" timeout 120 dpkg -i "$deb" 2>&1 && PATH="$stub:$PATH" timeout 120 dpkg -i "$deb2" 2>&1 &&
      PATH="$stub:$PATH" timeout 120 dpkg -r kycd 2>&1) || fail "dpkg without systemd: $(e2e__clip "$out")"
assert_eq "" "$(cat "$calls")" "without systemd running, install, upgrade and remove call nothing"
