#!/usr/bin/env bash
# Makes tests/data/previous-release/: an embedded store written by a previous release's
# discoveryd and that release's answers to every read of it (upgrade_test.cc opens the store with
# the current discoveryd and expects the same answers). Run once per release with that release's
# binary, e.g. built from its commit:
#   git worktree add /tmp/prev <commit> && cmake -S /tmp/prev -B /tmp/prev/build -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release -DDISCOVERY_BUILD_TESTS=OFF && cmake --build /tmp/prev/build \
#     --target discoveryd
#   tests/upgrade/make_previous_release_data.sh /tmp/prev/build/cmd/discoveryd/discoveryd <commit>
set -euo pipefail
cd "$(dirname "$0")/../.."
discoveryd="$1"
release="$2"
out=tests/data/previous-release
work=$(mktemp -d /tmp/previous-release.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
secret=upgrade-secret
"$discoveryd" server --data-dir "$work/data" --grpc-listen "127.0.0.1:$(free_port)" \
  --http-listen "127.0.0.1:$http_port" --token-secret "$secret" --token-issuer discovery.test \
  >"$work/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$http_port"
until curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; do sleep 0.2; done
token=$("$discoveryd" token create upgrade --admin --token-secret "$secret" --token-issuer discovery.test)
post() { curl -fsS -o /dev/null -H "Authorization: Bearer $token" -d "$2" "$base$1"; }

post /v1/namespaces '{"name":"probes","export":2}'
post /v1/namespaces '{"name":"quiet","export":0}'
post /v1/servers '{"name":"prom1.example.com","labels":{"site":"a","tier":"front"}}'
post /v1/servers '{"name":"prom2.example.com","labels":{"site":"b"}}'
post /v1/servers '{"name":"prom3.example.com","labels":{"site":"a"}}'
for i in $(seq 1 40); do
  post /v1/services "{\"name\":\"node\",\"endpoint\":\"http://host$i.example.com:9100/metrics\",\"labels\":{\"team\":\"t$((i % 3))\",\"dc\":\"dc$((i % 2))\"}}"
done
post /v1/services '{"name":"app","endpoint":"https://app.example.com:8443/admin/metrics?format=prometheus&x=1","selector":"site=a","description":"with a query and a selector"}'
post /v1/services '{"name":"unicode","endpoint":"http://u.example.com:9100/metrics","labels":{"owner":"Zoë <ops&dev>"}}'
post /v1/services '{"name":"probe","namespace":"probes","endpoint":"https://www.example.com/health","labels":{"module":"http_2xx"}}'
post /v1/services '{"name":"probe","namespace":"probes","endpoint":"https://shop.example.com/","selector":"site=b"}'
post /v1/services '{"name":"hidden","namespace":"quiet","endpoint":"http://quiet.example.com:9100/metrics"}'
# A service removed again: the store keeps its history.
post /v1/services '{"name":"gone","endpoint":"http://gone.example.com:9100/metrics"}'
curl -fsS -o /dev/null -X DELETE -H "Authorization: Bearer $token" \
  "$base/v1/services/default?id=http://gone.example.com:9100/metrics"

get() { curl -fsS -H "Authorization: Bearer $token" "$base$1"; }
{
  printf '{"release":"%s"' "$release"
  for path in /v1/namespaces /v1/servers "/v1/services?namespace=default" "/v1/services?namespace=probes" \
    "/v1/services?namespace=quiet"; do
    printf ',"%s":%s' "$path" "$(get "$path")"
  done
  for server in prom1.example.com prom2.example.com prom3.example.com; do
    for ns in default probes quiet; do
      printf ',"/v1/sd/%s/%s":%s' "$server" "$ns" "$(get "/v1/sd/$server/$ns")"
    done
  done
  printf '}\n'
} | python3 -m json.tool --indent 1 >"$work/answers.json"

kill -TERM "$pid"
wait "$pid" || true
pid=
mkdir -p "$out"
# A clean shutdown folds the write-ahead log into the database file.
[ ! -e "$work/data/discovery.db-wal" ] || [ ! -s "$work/data/discovery.db-wal" ] ||
  { echo "the WAL was not checkpointed at shutdown" >&2; exit 1; }
cp "$work/data/discovery.db" "$out/discovery.db"
cp "$work/answers.json" "$out/answers.json"
echo "wrote $out (release $release)" >&2
