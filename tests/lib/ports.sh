# shellcheck shell=bash
# One way to pick a free TCP port for a test server, sourced by
# tests/e2e/lib.sh, tests/e2e/test_sim.sh and tests/bench/*.sh.
#
# kycd_free_port: prints a port below the kernel's ephemeral range (client
# sockets take theirs from it: the flood test opens thousands) that no
# socket uses, listening or connected; non-zero after 100 tries. Another
# process may still take it before the caller binds it: callers retry.
kycd_free_port() {
  local port i lo=32768
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$lo" -gt 12000 ] || lo=32768
  for i in $(seq 1 100); do
    port=$((10000 + RANDOM % (lo - 10000)))
    if [ -z "$(ss -Htan "sport = :$port" 2>/dev/null)" ]; then echo "$port"; return 0; fi
  done
  echo "no free port found" >&2
  return 1
}
