#!/usr/bin/env bash
# Runs the scale-out deployment on this machine, all on loopback, for trying out fault scenarios
# by hand: a 3-member etcd cluster, two `discoveryd server` replicas sharing it and one
# `discoveryd exporter` writing file_sd files for prometheus1.example.com. Builds the binaries
# like scripts/run.sh. Everything stops and every directory is removed after --for seconds
# (default 600) or on Ctrl-C. The automated version of this is tests/integration/cluster_fault_test.cc
# (and bench/cluster_bench.cc for latency and throughput).
#
# Usage: scripts/cluster.sh [--for SECONDS] [--base-port PORT]
#   etcd members   client PORT+1..3, peer PORT+11..13
#   replicas       gRPC PORT+101, PORT+102; HTTP PORT+201, PORT+202
#   exporter       HTTP PORT+300, files under the printed directory
set -euo pipefail
cd "$(dirname "$0")/.."

duration=600
base=24000
while [ $# -gt 0 ]; do
  case "$1" in
    --for) duration="$2"; shift 2 ;;
    --base-port) base="$2"; shift 2 ;;
    *) echo "cluster.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDISCOVERY_BUILD_TESTS=OFF -DDISCOVERY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/release --target discoveryd discovery
discoveryd="$PWD/build/release/cmd/discoveryd/discoveryd"

root="$(mktemp -d "${TMPDIR:-/tmp}/discovery-cluster-XXXXXX")"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$root"
  echo "cluster.sh: stopped; removed $root" >&2
}
trap cleanup EXIT INT TERM

initial=""
endpoints=""
for i in 1 2 3; do
  initial+="${initial:+,}etcd$i=http://127.0.0.1:$((base + 10 + i))"
  endpoints+="${endpoints:+,}http://127.0.0.1:$((base + i))"
done
for i in 1 2 3; do
  etcd --name "etcd$i" --data-dir "$root/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((base + i))" \
    --advertise-client-urls "http://127.0.0.1:$((base + i))" \
    --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
    --initial-cluster "$initial" --initial-cluster-state new \
    --initial-cluster-token "$root" >"$root/etcd$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >&2

secret="$(head -c 32 /dev/urandom | base64)"
export DISCOVERY_TOKEN_SECRET="$secret"
store=(--store=etcd "--etcd-endpoints=$endpoints")
for r in 1 2; do
  "$discoveryd" server "${store[@]}" --data-dir "$root/replica$r" \
    --grpc-listen "127.0.0.1:$((base + 100 + r))" --http-listen "127.0.0.1:$((base + 200 + r))" \
    >"$root/replica$r.log" 2>&1 &
  pids+=($!)
done
for r in 1 2; do
  for _ in $(seq 150); do
    curl -fs "http://127.0.0.1:$((base + 200 + r))/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
token="$("$discoveryd" token create admin --admin)"
(umask 077 && printf 'machine_token: %s\n' "$token" >"$root/token")
curl -fsS -H "Authorization: Bearer $token" -d '{"name":"prometheus1.example.com"}' \
  "http://127.0.0.1:$((base + 201))/v1/servers" >/dev/null
"$discoveryd" "${store[@]}" exporter --server prometheus1.example.com --directory "$root/file_sd" \
  --http-listen "127.0.0.1:$((base + 300))" >"$root/exporter.log" 2>&1 &
pids+=($!)

cat >&2 <<MSG
cluster.sh: running for ${duration}s (Ctrl-C stops earlier); logs and data in $root
  etcd        $endpoints   (pids ${pids[0]} ${pids[1]} ${pids[2]})
  replica 1   gRPC 127.0.0.1:$((base + 101))  HTTP http://127.0.0.1:$((base + 201))  (pid ${pids[3]})
  replica 2   gRPC 127.0.0.1:$((base + 102))  HTTP http://127.0.0.1:$((base + 202))  (pid ${pids[4]})
  exporter    http://127.0.0.1:$((base + 300))/metrics, files in $root/file_sd  (pid ${pids[5]})
  admin token $token
Try:
  build/release/cmd/discovery/discovery --insecure --address 127.0.0.1:$((base + 101)) --token-path $root/token service register -e http://10.0.0.1:9100/metrics node
  TOKEN=$token
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$((base + 202))/v1/sd/prometheus1.example.com/default
  ETCDCTL_API=3 etcdctl --endpoints=$endpoints endpoint status -w table   # who leads
  kill -STOP <etcd pids> ... kill -CONT <etcd pids>                        # a partition
MSG
sleep "$duration" &
wait $! || true
