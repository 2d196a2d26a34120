#!/usr/bin/env bash
# CI's smoke run of the fleet benchmarks: `discovery_fleet_bench` at its default N (100,000
# services) against a throw-away single-member etcd, so the code of every fleet figure in the
# README runs on each CI run. It checks outcomes only (every benchmark ran, no registration or
# http_sd request failed); the ratios it prints are information, not thresholds, since CI's
# machine is shared.
#   bench/fleet_smoke.sh BUILD_DIR      (a Release build with -DDISCOVERY_BUILD_BENCHMARKS=ON)
set -euo pipefail

# shellcheck source=scripts/lib/free_port.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/free_port.sh"

build=${1:?usage: bench/fleet_smoke.sh BUILD_DIR}
bench_binary="$build/bench/discovery_fleet_bench"
[ -x "$bench_binary" ] || {
  echo "fleet_smoke: $bench_binary is missing (build the discovery_fleet_bench target)" >&2
  exit 1
}

tmp=$(mktemp -d /tmp/discovery-fleet-smoke.XXXXXX)
etcd_pid=
cleanup() {
  if [ -n "$etcd_pid" ]; then
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

client_port=$(free_port)
peer_port=$(free_port)
etcd --name smoke --data-dir "$tmp/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" \
  --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "smoke=http://127.0.0.1:$peer_port" \
  --quota-backend-bytes=8589934592 >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$client_port/health" 2>/dev/null | grep -q '"health":"true"'; then
    break
  fi
  kill -0 "$etcd_pid" 2>/dev/null || {
    echo "fleet_smoke: etcd exited:" >&2
    tail -n 20 "$tmp/etcd.log" >&2
    exit 1
  }
  sleep 0.1
done

echo "fleet_smoke: $bench_binary, etcd at 127.0.0.1:$client_port" >&2
# The in-process daemons log every registration; keep that out of CI's output unless it fails.
status=0
DISCOVERY_BENCH_ETCD_ENDPOINTS="http://127.0.0.1:$client_port" \
  "$bench_binary" --benchmark_counters_tabular=false >"$tmp/bench.out" 2>"$tmp/bench.log" ||
  status=$?
cat "$tmp/bench.out"
if [ "$status" != 0 ]; then
  echo "fleet_smoke: discovery_fleet_bench exited with $status; its log ends:" >&2
  tail -n 40 "$tmp/bench.log" >&2
  exit 1
fi

# Every benchmark must have run (a skipped one prints ERROR OCCURRED) and lost nothing.
expected=$("$bench_binary" --benchmark_list_tests | wc -l)
ran=$(grep -c '^BM_' "$tmp/bench.out" || true)
problems=$(grep -E 'ERROR OCCURRED|(^| )(failures|write_failures|http_errors)=[1-9]' \
  "$tmp/bench.out" || true)
if [ "$ran" != "$expected" ] || [ -n "$problems" ]; then
  echo "fleet_smoke: $ran of $expected benchmarks reported; problems:" >&2
  printf '%s\n' "$problems" >&2
  tail -n 40 "$tmp/bench.log" >&2
  exit 1
fi
echo "fleet_smoke: all $ran fleet benchmarks ran at the default size; no failed registration or request" >&2
