#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds discovery in Release mode and runs `discoveryd
# server` on the embedded store (no other server needed). Arguments, when given, are passed to
# discoveryd instead (e.g. `scripts/run.sh server --replicas 2`, `scripts/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDISCOVERY_BUILD_TESTS=OFF -DDISCOVERY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/release --target discoveryd discovery

discoveryd="$PWD/build/release/cmd/discoveryd/discoveryd"
# As the packaged units start it: malloc's heaps in transparent huge pages (docs/decisions.md D51).
export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}"
if [ $# -gt 0 ]; then
  exec "$discoveryd" "$@"
fi

# The server's data directory when --data-dir is not given: $XDG_DATA_HOME/discovery, else
# ~/.local/share/discovery, for root too (/var/lib/discovery belongs to the Debian package).
if [ -n "${DISCOVERY_DATA_DIR:-}" ]; then
  data_dir="$DISCOVERY_DATA_DIR"
elif [[ "${XDG_DATA_HOME:-}" == /* ]]; then
  data_dir="$XDG_DATA_HOME/discovery"
else
  data_dir="$HOME/.local/share/discovery"
fi

# An admin machine token for the CLI, signed with the secret the server uses (generated once
# into the data directory). A token file of someone else's is left alone; one that this script
# wrote for a server whose secret is gone (e.g. an earlier data directory) is replaced.
token_file="${HOME}/.config/discovery/.token"
config_file="${HOME}/.config/discovery/config.yaml"
config_marker='# written by discovery scripts/run.sh'
if [ -s "$token_file" ] && [ -f "$config_file" ] && grep -qF "$config_marker" "$config_file"; then
  saved="$(sed -n 's/^machine_token: *//p' "$token_file")"
  if [ -n "$saved" ] && ! printf '%s\n' "$saved" | "$discoveryd" token verify - >/dev/null 2>&1; then
    stale="$token_file.stale.$(date +%Y%m%d%H%M%S)"
    mv "$token_file" "$stale"
    echo "run.sh: $token_file was not signed with the secret in $data_dir; moved it to $stale"
  fi
fi
if [ ! -s "$token_file" ]; then
  # `token create` never creates the secret; on a first start, create it as the server would.
  if [ ! -s "$data_dir/token-secret" ]; then
    (umask 077 && mkdir -p "$data_dir" &&
      head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data_dir/token-secret" &&
      echo >>"$data_dir/token-secret")
  fi
  token="$("$discoveryd" token create admin --admin)"
  mkdir -p "$(dirname "$token_file")"
  (umask 077 && printf 'machine_token: %s\n' "$token" >"$token_file")
  echo "run.sh: wrote an admin machine token to $token_file"
fi

# The CLI talks TLS unless told otherwise; this server listens in plaintext on localhost only.
if [ ! -e "$config_file" ]; then
  mkdir -p "$(dirname "$config_file")"
  printf '%s: the local server speaks plaintext gRPC\naddress: localhost:3001\ninsecure: true\n' "$config_marker" >"$config_file"
  echo "run.sh: wrote $config_file (address: localhost:3001, insecure: true) for the CLI"
elif ! grep -Eq '^(insecure|ca-cert):' "$config_file"; then
  echo "run.sh: $config_file has neither insecure nor ca-cert; use 'discovery --insecure ...' with this server"
fi

cat >&2 <<MSG
run.sh: starting discoveryd on the embedded store in $data_dir
  gRPC  localhost:3001    HTTP localhost:3002 (REST, http_sd, /metrics, /healthz, /readyz)
  An admin token (signed with the server's secret) at any time:
    $discoveryd token create admin --admin
  Try:
    build/release/cmd/discovery/discovery server register prometheus1.example.com --labels=environment=test
    build/release/cmd/discovery/discovery server list
    curl -s -H "Authorization: Bearer \$($discoveryd token create admin --admin)" localhost:3002/v1/servers
  Stop with Ctrl-C.
MSG
exec "$discoveryd" server
