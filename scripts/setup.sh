#!/usr/bin/env bash
# Installs every Debian package discovery needs to build, test and run. Idempotent; safe to re-run.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git ca-certificates curl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  prometheus-cpp-dev libssl-dev libcurl4-openssl-dev libsqlite3-dev sqlite3 libboost-dev
  libre2-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
  clang clang-format clang-tidy libclang-rt-14-dev
  etcd-server etcd-client prometheus
  # the Debian package: CPack runs dpkg-shlibdeps (dpkg-dev) and file; its postinst runs adduser
  dpkg-dev file adduser
  glewlwyd dbconfig-no-thanks
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The build fetches Swagger UI (npm package swagger-ui-dist) with npm. Any npm will do, so an npm
# that came with a Node.js from elsewhere (e.g. NodeSource's, not a Debian package) is kept.
command -v npm >/dev/null 2>&1 || missing+=(npm)

sudo_cmd=()
[ "$(id -u)" = 0 ] || sudo_cmd=(sudo)

if [ ${#missing[@]} -gt 0 ]; then
  # glewlwyd (the OIDC provider of the integration tests) must not configure a database of its
  # own: without this answer its postinst fails.
  echo "glewlwyd glewlwyd/config_type select No configuration" | "${sudo_cmd[@]}" debconf-set-selections
  echo "setup: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# etcd's own .proto files come from Debian's etcd Go source package. Installing it would pull a
# whole Go toolchain, so only its archive is unpacked into a cache folder the build reads.
etcd_proto_root="${DISCOVERY_ETCD_PROTO_ROOT:-/var/cache/discovery/etcd-protos}"
if [ ! -f "$etcd_proto_root/usr/share/gocode/src/go.etcd.io/etcd/etcdserver/etcdserverpb/rpc.proto" ]; then
  echo "setup: unpacking etcd protos into $etcd_proto_root" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq golang-etcd-server-dev >/dev/null 2>&1 || {
     "${sudo_cmd[@]}" apt-get update -qq && apt-get download -qq golang-etcd-server-dev; })
  "${sudo_cmd[@]}" mkdir -p "$etcd_proto_root"
  "${sudo_cmd[@]}" dpkg-deb -x "$tmp"/golang-etcd-server-dev_*.deb "$etcd_proto_root"
fi
echo "setup: ok" >&2
