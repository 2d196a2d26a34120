#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds discovery in Release mode and runs discoveryd.
# Arguments are passed to discoveryd.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDISCOVERY_BUILD_TESTS=OFF -DDISCOVERY_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/release --target discoveryd discovery
if [ $# -eq 0 ]; then
  set -- --help
fi
exec build/release/cmd/discoveryd/discoveryd "$@"
