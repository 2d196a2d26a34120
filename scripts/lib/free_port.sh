# shellcheck shell=bash
# Sourced by the scripts that start daemons on ports of their own (bench/fleet_smoke.sh,
# tests/package/package_test.sh), which run on shared machines where the default ports may be
# taken.

# free_port: prints a TCP port no socket uses. It lies below the kernel's ephemeral range, so no
# outgoing connection (nor one lingering in TIME_WAIT after earlier tests) can hold it as its
# local port when the daemon binds it a moment later.
free_port() {
  local port low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((low > 12000)) || low=32768
  while :; do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
      { ! command -v ss >/dev/null || [ -z "$(ss -Htan "sport = :$port" 2>/dev/null)" ]; }; then
      echo "$port"
      return
    fi
  done
}
