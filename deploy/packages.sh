# shellcheck shell=bash
# The Debian 12 packages kycd needs, in two sets, and the one install step
# that tests/run.sh and deploy/demo.sh share.
#
# As a library (`source deploy/packages.sh`; sets no shell options):
#   KYCD_BUILD_PACKAGES            building kycd and p100-sim and running them
#                                  with a local PostgreSQL: what deploy/demo.sh
#                                  needs (cmocka too: p100-sim is built from
#                                  tests/, which CMake configures with cmocka)
#   KYCD_TEST_PACKAGES             what the test suite needs besides: the
#                                  sanitizer and fuzz builds, valgrind, wrk,
#                                  HAProxy, Prometheus, podman and its helpers,
#                                  lintian and the man tools, systemd-analyze
#   KYCD_PACKAGES                  both (the old name)
#   kycd_install_packages NAME [build|test]
#                                  installs whichever of the set is missing:
#                                  build: KYCD_BUILD_PACKAGES only; test (the
#                                  default): both, and the commands of
#                                  KYCD_COMMANDS. As root: apt-get update +
#                                  install, noninteractive. As any other user:
#                                  prints the one `sudo apt-get install ...`
#                                  line to stderr and returns 1. NAME prefixes
#                                  its messages ("NAME: ..."). Returns non-zero
#                                  on any failure; never exits the caller's
#                                  shell.

KYCD_BUILD_PACKAGES=(build-essential cmake pkgconf libssl-dev libcjson-dev libpq-dev
                     libcurl4-openssl-dev libcmocka-dev postgresql-15 postgresql-client-15
                     curl openssl xz-utils ca-certificates iproute2)
KYCD_TEST_PACKAGES=(wrk clang libclang-rt-14-dev valgrind clang-format python3 systemd
                    haproxy podman runc mmdebstrap uidmap
                    dpkg-dev lintian man-db groff-base adduser
                    prometheus python3-yaml)
KYCD_PACKAGES=("${KYCD_BUILD_PACKAGES[@]}" "${KYCD_TEST_PACKAGES[@]}")

# Commands some tests need, and the Debian package that provides each when
# the machine has none (a machine may carry its own: Node.js from
# NodeSource, kubectl from Google's SDK). No test skips for want of one.
KYCD_COMMANDS=(kubectl:kubernetes-client node:nodejs npm:npm pgbench:postgresql-15 git:git)

kycd_install_packages() {
  local name=${1:-packages} set=${2:-test} p status c
  local missing=() want=()
  case $set in
    build) want=("${KYCD_BUILD_PACKAGES[@]}") ;;
    test) want=("${KYCD_PACKAGES[@]}") ;;
    *) echo "$name: unknown package set '$set' (build or test)" >&2; return 2 ;;
  esac
  for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [ "${status:0:2}" = ii ] || missing+=("$p")
  done
  if [ "$set" = test ]; then
    for c in "${KYCD_COMMANDS[@]}"; do
      command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
    done
  fi
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "$name: all required Debian packages ($set set) are installed"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "$name: missing Debian packages; install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "$name: installing ${missing[*]}"
  # Each step is checked here: a caller's `set -e` does not reach inside a
  # function called as `kycd_install_packages X || exit 1`.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null || return 1
}
