#!/usr/bin/env bash
# kycd-test: once
# The container image (deploy/container/Containerfile), built and run for
# real with podman: a Debian 12 base rootfs made by mmdebstrap from the
# machine's apt sources (no registry needed; cached under the build folder,
# so a second run only rebuilds kycd's layer), `podman import`, `podman
# build`, then `podman run` (runc, host network, explicit ulimits: see
# ../shared/build-notes.md). Asserted: the image is at most 100 MiB, with
# the OCI labels (title, description, version, revision, licenses); it holds
# kycd, its libraries, CA certificates and kycd's folders, and no shell, curl
# or package manager; it runs kycd as a non-root user (999) with the spool on
# a volume; `kycd migrate` and `kycd serve` run from the
# image with configuration from the environment and secrets (the webhook
# tokens, the database URL) as mounted files; a webhook over TLS reaches the
# test PostgreSQL; /readyz answers 200; the HEALTHCHECK (`kycd health`, no
# curl in the image) passes; SIGTERM (podman stop) ends it with exit code
# 0 and the "stopped" line. TEST_KYCD_DEB=path/kycd_*.deb builds the image
# from the package instead of the binary.
#
# Where podman cannot run containers, it prints why in one line and exits 77
# (ctest shows it as skipped).
#
# Must never: leave a container, volume or test image behind, listen outside
# 127.0.0.1, print a secret.
#
# Environment: TEST_KYCD_BIN, TEST_PG (lib.sh); TEST_KYCD_DEB (optional);
# TEST_CONTAINER_CACHE (default: container-cache beside TEST_KYCD_BIN).

# shellcheck source=tests/e2e/podman.sh
source "$(dirname "${BASH_SOURCE[0]}")/podman.sh"
podman_or_skip test_container

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE=${TEST_CONTAINER_CACHE:-$(dirname "$TEST_KYCD_BIN")/container-cache}
BASE_TAR=$CACHE/debian-12-minbase.tar
BASE_IMG=localhost/kycd-base:12
IMG=localhost/kycd:e2e-$$
NAME=kycd-e2e-$$
VOL=kycd-e2e-spool-$$
CLOG=$E2E_TMP/container.log
e2e_logfmt_track "$CLOG"

container_cleanup() {
  "${P[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  "${P[@]}" volume rm -f "$VOL" >/dev/null 2>&1 || true
  "${P[@]}" rmi -f "$IMG" >/dev/null 2>&1 || true
}
# lib.sh's EXIT trap runs after ours: clean the container up first.
trap 'rc=$?; container_cleanup; (exit "$rc"); e2e__cleanup' EXIT

# ------------------------------------------------------------------------------
e2e_section "base image: mmdebstrap (cached) + podman import"
t0=$(e2e_ms)
mkdir -p "$CACHE"
podman_rootfs "$BASE_TAR"
if ! "${P[@]}" image exists "$BASE_IMG" ||
   [ "$("${P[@]}" image inspect --format '{{index .Labels "kycd.rootfs"}}' "$BASE_IMG" 2>/dev/null)" != "$(stat -c %Y "$BASE_TAR")" ]; then
  "${P[@]}" import --change "LABEL kycd.rootfs=$(stat -c %Y "$BASE_TAR")" "$BASE_TAR" "$BASE_IMG" >/dev/null ||
    e2e_abort "podman import of $BASE_TAR failed"
fi
base_ms=$(( $(e2e_ms) - t0 ))
pass "base image $BASE_IMG ready in $base_ms ms"

# ------------------------------------------------------------------------------
e2e_section "podman build"
CTX=$E2E_TMP/context
mkdir -p "$CTX"
if [ -n "${TEST_KYCD_DEB:-}" ]; then
  cp -- "$TEST_KYCD_DEB" "$CTX/"
  from="the package $(basename "$TEST_KYCD_DEB")"
  version=$(dpkg-deb -f "$TEST_KYCD_DEB" Version)
  version=${version%-*}
else
  cp -- "$TEST_KYCD_BIN" "$CTX/kycd"
  from="the binary $TEST_KYCD_BIN"
  version=$("$TEST_KYCD_BIN" version | awk '{ print $2 }')
fi
revision=$(git -C "$TEST_KYCD_SRC" rev-parse HEAD 2>/dev/null) || revision=unknown
t0=$(e2e_ms)
if "${P[@]}" build --format docker "${F[@]}" --build-arg BASE="$BASE_IMG" -t "$IMG" \
     --build-arg VERSION="$version" --build-arg REVISION="$revision" \
     -f "$TEST_KYCD_SRC/deploy/container/Containerfile" "$CTX" >"$E2E_TMP/build.log" 2>&1; then
  build_ms=$(( $(e2e_ms) - t0 ))
  pass "podman build from $from in $build_ms ms"
else
  tail -n 30 "$E2E_TMP/build.log" | sed 's/^/  build: /'
  e2e_abort "podman build failed"
fi
size=$("${P[@]}" image inspect --format '{{.Size}}' "$IMG")
echo "  image size: $((size / 1024 / 1024)) MiB ($size bytes, podman image inspect --format '{{.Size}}')"
if [ "$size" -le $((100 * 1024 * 1024)) ]; then
  pass "the image is at most 100 MiB: $((size / 1024 / 1024)) MiB"
else
  fail "the image is $((size / 1024 / 1024)) MiB, over 100 MiB"
fi
label() { "${P[@]}" image inspect --format "{{index .Labels \"org.opencontainers.image.$1\"}}" "$IMG"; }
assert_eq kycd "$(label title)" "OCI label title"
assert_eq "$version" "$(label version)" "OCI label version: the binary's"
assert_eq "$revision" "$(label revision)" "OCI label revision: the source's commit"
for l in description licenses; do
  if [ -n "$(label "$l")" ]; then pass "OCI label $l: $(label "$l")"; else fail "no OCI label $l"; fi
done
assert_eq kycd "$("${P[@]}" image inspect --format '{{.Config.User}}' "$IMG")" "the image runs as the kycd user"
assert_contains "$("${P[@]}" image inspect --format '{{json .Config.Volumes}}' "$IMG")" '"/var/spool/kycd"' \
  "the spool folder is a volume"
assert_contains "$("${P[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMG")" '"/usr/bin/kycd","health"' \
  "the image's HEALTHCHECK is kycd health (the admin listener's /healthz)"
# What the image holds: its files as `podman export` lists them (the image
# has no shell to ask).
TREE=$E2E_TMP/image-tree
cid=$("${P[@]}" create "$IMG") || e2e_abort "podman create failed"
"${P[@]}" export -o "$TREE.tar" "$cid"
"${P[@]}" rm -f "$cid" >/dev/null 2>&1 || true
tar --numeric-owner -tvf "$TREE.tar" >"$TREE"
has() { awk -v p="$1" '{ n = $6; sub(/\/$/, "", n) } n == p { print $1, $2; f = 1 } END { exit !f }' "$TREE"; }
assert_eq "-rwxr-xr-x 0/0" "$(has usr/bin/kycd)" "/usr/bin/kycd, root-owned"
assert_eq "drwx------ 999/999" "$(has var/spool/kycd)" "/var/spool/kycd: kycd's (999:999), 0700"
assert_eq "-rw-r--r-- 0/0" "$(has etc/kycd/kycd.conf)" "/etc/kycd/kycd.conf"
for d in etc/kycd/tls run/secrets/kycd; do
  assert_eq "drwxr-xr-x 0/0" "$(has "$d")" "/$d"
done
if has etc/ssl/certs/ca-certificates.crt >/dev/null; then pass "the CA bundle for P100's TLS"; else fail "no /etc/ssl/certs/ca-certificates.crt"; fi
assert_eq "kycd:x:999:999" "$(tar -xOf "$TREE.tar" etc/passwd | grep '^kycd:' | cut -d: -f1-4)" \
  "/etc/passwd: kycd is 999:999"
assert_eq "kycd:x:999:" "$(tar -xOf "$TREE.tar" etc/group | grep '^kycd:')" "/etc/group: kycd is 999"
echo "  files in the image: $(wc -l <"$TREE")"
for absent in usr/bin/curl bin/sh usr/bin/sh usr/bin/bash usr/bin/apt-get usr/bin/dpkg; do
  if has "$absent" >/dev/null; then fail "the image holds /$absent"; else pass "no /$absent in the image"; fi
done

# ------------------------------------------------------------------------------
e2e_section "podman run: migrate, serve, a webhook over TLS, /readyz, SIGTERM"
e2e_fresh_db
e2e_certs
# What a Secret mount gives: the files, readable by the container's user.
SEC=$E2E_TMP/secrets
TLS=$E2E_TMP/tls
mkdir -p "$SEC" "$TLS"
cp -- "$E2E_TOKEN_FILE" "$SEC/webhook_tokens"
printf '%s\n' "$E2E_DB_URL" >"$SEC/database_url"
cat -- "$E2E_CERT" "$E2E_CHAIN" >"$TLS/tls.crt"
cp -- "$E2E_KEY" "$TLS/tls.key"
chmod 0755 "$SEC" "$TLS"
chmod 0444 "$SEC"/* "$TLS"/*
PORT=$(e2e_free_port)
ADMIN_PORT=$(e2e_free_port)
RUN_ENV=(-e KYCD_LISTEN="127.0.0.1:$PORT" -e KYCD_WEBHOOK_TOKENS_FILE=/run/secrets/kycd/webhook_tokens
         -e KYCD_DATABASE_URL_FILE=/run/secrets/kycd/database_url -e KYCD_RECONCILE=off)
RUN_VOL=(-v "$SEC:/run/secrets/kycd:ro" -v "$TLS:/etc/kycd/tls:ro" -v "$VOL:/var/spool/kycd")
RUN_ENV+=(-e KYCD_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT")

if out=$(timeout 120 "${P[@]}" run --rm "${F[@]}" "${RUN_ENV[@]}" "${RUN_VOL[@]}" "$IMG" migrate 2>&1); then
  pass "kycd migrate from the image: $(tail -n 1 <<<"$out" | cut -c 1-160)"
else
  printf '%s\n' "$out" | tail -n 10 | sed 's/^/  migrate: /'
  e2e_abort "kycd migrate from the image failed"
fi
printf '%s\n' "$out" >"$E2E_TMP/logfmt.cmd.migrate"

"${P[@]}" run -d --name "$NAME" "${F[@]}" "${RUN_ENV[@]}" "${RUN_VOL[@]}" "$IMG" >/dev/null ||
  e2e_abort "podman run failed"
clog() { "${P[@]}" logs "$NAME" >"$CLOG" 2>&1 || true; }
listening() { clog; grep -q 'msg=listening' "$CLOG"; }
if e2e_wait_cmd 30 listening; then
  pass "kycd serve in the container listens on 127.0.0.1:$PORT"
else
  clog; tail -n 20 "$CLOG" | sed 's/^/  container: /'
  e2e_abort "the container's kycd did not log 'listening' within 30 s"
fi
# A command run by hand in the container sees what the service sees: the
# image's settings are a file (KYCD_CONFIG), not variables of the service.
assert_contains "$("${P[@]}" exec "$NAME" kycd config 2>&1)" "spool_dir = /var/spool/kycd" \
  "podman exec ... kycd config: the image's spool_dir, from /etc/kycd/kycd.conf"
assert_contains "$("${P[@]}" exec "$NAME" kycd spool dead-letters 2>&1)" "/var/spool/kycd" \
  "podman exec ... kycd spool dead-letters: on the service's spool"
# No `id` in the image: the uid of the container's first process, as the
# kernel has it (rootful podman, no user namespace: the container's uid).
cpid=$("${P[@]}" inspect --format '{{.State.Pid}}' "$NAME")
uid=$(awk '/^Uid:/ { print $2 "/" $3 }' "/proc/$cpid/status")
assert_eq 999/999 "$uid" "kycd runs as the non-root user kycd, uid 999 (the manifests' runAsUser), in the container"
assert_eq kycd "$("${P[@]}" top "$NAME" user | tail -n +2 | sort -u | tr -d ' ')" \
  "podman top: its user is kycd (the image's /etc/passwd)"
assert_contains "$("${P[@]}" inspect --format '{{range .Mounts}}{{.Destination}}={{.Type}} {{end}}' "$NAME")" \
  "/var/spool/kycd=volume" "the spool is on the named volume $VOL"
E2E_PORT=$PORT
assert_eq 200 "$(get /readyz)" "/readyz answers 200 from the container"
E2E_ADMIN_PORT=$ADMIN_PORT
assert_eq 200 "$(admin_get /readyz)" "the admin listener's /readyz answers 200 from the container"
assert_contains "$(resp_body)" '"database":"up"' "admin /readyz: the database is up"
assert_contains "$(resp_body)" '"spool":{' "admin /readyz: the spool (the volume) is in use"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body ctr-1 NOT_VERIFIED PENDING)")" \
  "a webhook over TLS to the container is answered 200"
assert_eq "1 NOT_VERIFIED/PENDING" \
  "$(sql "SELECT count(*) || ' ' || max(verification_status || '/' || attempt_status) FROM kyc.verifications WHERE external_user_id = 'ctr-1'")" \
  "it is stored in the test PostgreSQL"
assert_eq 401 "$(E2E_AUTH="Bearer wrong-token-0123456789" post "$E2E_KYC_PATH" "$(kyc_body ctr-2 NOT_VERIFIED PENDING)")" \
  "a wrong token is refused (the tokens come from the mounted file)"
if e2e_wait_cmd 20 "${P[@]}" healthcheck run "$NAME"; then
  pass "podman healthcheck run: the HEALTHCHECK passes"
else
  fail "the HEALTHCHECK does not pass within 20 s"
fi

t0=$(e2e_ms)
"${P[@]}" stop -t 20 "$NAME" >/dev/null
stop_ms=$(( $(e2e_ms) - t0 ))
rc=$("${P[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
clog
assert_eq 0 "$rc" "podman stop (SIGTERM): kycd exits 0 ($stop_ms ms)"
if grep -q 'msg=stopped' "$CLOG"; then pass "the container logs the 'stopped' line"; else fail "no 'stopped' line: $(tail -n 3 "$CLOG")"; fi
assert_eq "" "$(grep -l -F -- "$E2E_TOKEN" "$CLOG" "$E2E_TMP/logfmt.cmd.migrate" "$E2E_TMP/build.log" || true)" \
  "the webhook token is in no container log"
echo "figures: container: base_ms=$base_ms build_ms=$build_ms image_mib=$((size / 1024 / 1024)) stop_ms=$stop_ms"
