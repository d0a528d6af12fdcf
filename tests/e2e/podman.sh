# What the container tests (test_container.sh, test_upgrade.sh) share:
# podman with runc (crun refuses this host's hybrid cgroups), the host's
# network, explicit limits; and the check that it can run here, made before
# anything is set up: `podman_or_skip NAME` exits 77 (the test is skipped,
# tests/run.sh says why) when podman, runc or mmdebstrap is missing or podman
# cannot run containers; podman_rootfs makes the shared base rootfs.
# shellcheck shell=bash
P=(podman --runtime runc)
# shellcheck disable=SC2034  # used by the tests that source this
F=(--network host --ulimit nproc=4096:4096 --ulimit nofile=4096:4096)
podman_or_skip() {
  local why='' out
  if ! command -v podman >/dev/null 2>&1; then
    why="podman is not installed"
  elif ! command -v runc >/dev/null 2>&1; then
    why="runc is not installed"
  elif ! command -v mmdebstrap >/dev/null 2>&1; then
    why="mmdebstrap is not installed"
  elif ! out=$("${P[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>&1); then
    why="podman cannot run here: $(head -n 1 <<<"$out")"
  fi
  if [ -n "$why" ]; then
    echo "SKIP: $1: $why (deploy/packages.sh lists podman, runc, mmdebstrap, uidmap)"
    exit 77
  fi
}

# podman_rootfs TAR: the Debian 12 minbase rootfs both tests build their
# images from, made by mmdebstrap once into TAR (the cache; the caller holds
# whatever lock its cache needs); aborts the test when it cannot be made.
podman_rootfs() {
  local tar=$1
  [ -s "$tar" ] && return 0
  if ! timeout 600 mmdebstrap --quiet --variant=minbase --format=tar --include=ca-certificates bookworm \
       "$tar.part.tar" >"$E2E_TMP/mmdebstrap.log" 2>&1; then
    tail -n 20 "$E2E_TMP/mmdebstrap.log" | sed 's/^/  mmdebstrap: /'
    rm -f -- "$tar.part.tar"
    e2e_abort "mmdebstrap could not make the Debian 12 rootfs"
  fi
  mv -- "$tar.part.tar" "$tar"
  echo "  made $tar ($(du -h "$tar" | cut -f1))"
}
