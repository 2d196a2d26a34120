#!/usr/bin/env bash
# http_sd of a 10,000-target namespace from discoveryd against nginx serving the very same bytes
# from a file, side by side in one run (docs/decisions.md D30): identity (nginx: the plain file) and
# gzip (nginx: gzip_static with the same compressed bytes discoveryd sends). wrk with the same
# connections and duration alternates between the two servers; the median of the rounds is printed
# with the ratio, and the bytes on the wire per refresh.
#
# Usage: bench/http_sd_vs_nginx.sh [build-dir] [rounds] [seconds]
#   build-dir  a Release build holding cmd/discoveryd/discoveryd (default build/bench)
# Needs nginx and wrk (Debian packages nginx-light and wrk; installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/bench}"
rounds="${2:-5}"
seconds="${3:-5}"
discoveryd="$build/cmd/discoveryd/discoveryd"
[ -x "$discoveryd" ] || { echo "no $discoveryd: build the discoveryd target in Release first" >&2; exit 1; }
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends nginx-light wrk
fi

work=$(mktemp -d /tmp/http_sd_bench.XXXXXX)
chmod 755 "$work"  # nginx's workers run as www-data
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port); http_port=$(free_port); nginx_port=$(free_port)
secret=bench-secret
"$discoveryd" server --data-dir "$work/data" --grpc-listen "127.0.0.1:$grpc_port" \
  --http-listen "127.0.0.1:$http_port" --token-secret "$secret" >"$work/discoveryd.log" 2>&1 &
pids+=($!)
until curl -fsS -o /dev/null "http://127.0.0.1:$http_port/readyz" 2>/dev/null; do sleep 0.2; done
token=$("$discoveryd" token create bench --admin --token-secret "$secret")
auth="authorization: bearer $token"
curl -fsS -H "$auth" -d '{"name":"prom1"}' "http://127.0.0.1:$http_port/v1/servers" >/dev/null
echo "registering 10,000 services..." >&2
for i in $(seq 0 9999); do
  printf '{"name":"node%d","endpoint":"http://host%d.example.com:9100/metrics","labels":{"team":"t%d","dc":"dc%d"}}\n' \
    $((i % 50)) "$i" $((i % 16)) $((i % 4))
done | xargs -P 8 -d '\n' -I{} curl -fsS -o /dev/null -H "$auth" -d '{}' "http://127.0.0.1:$http_port/v1/services"

url="http://127.0.0.1:$http_port/v1/sd/prom1/default"
mkdir -p "$work/www/v1/sd/prom1"
curl -fsS -H "$auth" "$url" -o "$work/www/v1/sd/prom1/default"
curl -fsS -H "$auth" -H 'Accept-Encoding: gzip' "$url" -o "$work/www/v1/sd/prom1/default.gz"
identity_bytes=$(stat -c %s "$work/www/v1/sd/prom1/default")
gzip_bytes=$(stat -c %s "$work/www/v1/sd/prom1/default.gz")
targets=$(grep -o '"targets"' "$work/www/v1/sd/prom1/default" | wc -l)
compress_ms=$(python3 - "$work/www/v1/sd/prom1/default" <<'PY'
import sys, time, zlib
data = open(sys.argv[1], 'rb').read()
start = time.perf_counter()
for _ in range(20):
    c = zlib.compressobj(6, zlib.DEFLATED, 31); c.compress(data); c.flush()
print(f"{(time.perf_counter() - start) / 20 * 1000:.1f}")
PY
)

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  gzip_static on;
  etag on;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
  }
}
NGINX
chmod -R a+rX "$work/www"
nginx -c "$work/nginx.conf"
# Both must answer 200 with the same bytes, or the comparison means nothing.
for encoding in identity gzip; do
  extra=()
  [ "$encoding" = gzip ] && extra=(-H 'Accept-Encoding: gzip')
  ours=$(curl -fsS -H "$auth" "${extra[@]}" "$url" | sha256sum)
  theirs=$(curl -fsS "${extra[@]}" "http://127.0.0.1:$nginx_port/v1/sd/prom1/default" | sha256sum)
  [ "$ours" = "$theirs" ] || { echo "nginx and discoveryd differ ($encoding)" >&2; exit 1; }
done

run() {  # run URL [header]: requests per second
  local args=(-t1 -c16 -d"${seconds}s" -H "$auth")
  [ $# -gt 1 ] && args+=(-H "$2")
  wrk "${args[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for encoding in identity gzip; do
  header=()
  [ "$encoding" = gzip ] && header=("Accept-Encoding: gzip")
  ours=(); theirs=()
  for _ in $(seq "$rounds"); do
    ours+=("$(run "$url" "${header[@]}")")
    theirs+=("$(run "http://127.0.0.1:$nginx_port/v1/sd/prom1/default" "${header[@]}")")
  done
  o=$(printf '%s\n' "${ours[@]}" | median)
  t=$(printf '%s\n' "${theirs[@]}" | median)
  printf '%-8s discoveryd %8.0f req/s   nginx %8.0f req/s   ratio %.2f   (median of %d rounds of %ss, wrk -t1 -c16)\n' \
    "$encoding" "$o" "$t" "$(echo "$o / $t" | bc -l)" "$rounds" "$seconds"
done
printf 'body: %d target groups, %d bytes identity, %d bytes gzip on the wire per refresh; gzip -6 of the body takes %s ms (once per body version)\n' \
  "$targets" "$identity_bytes" "$gzip_bytes" "$compress_ms"
